"""Dialling one endpoint: fresh channels, the version check, retries, the socket watch.

The :class:`~aiocri.channel.ChannelManager` decides what a dial means (a new
generation, a renegotiation, RESTART_REQUIRED); this module only makes dials
happen at the right pace and says what each found.

Why it is built this way (facts measured here, see the project notes): a
channel whose runtime died idles, then backs off on grpc's own schedule, so
every dial uses a fresh channel with a private subchannel pool and the socket
file is watched between attempts; a runtime answers "not ready" for a while
after it creates its socket, so retries stay at the first step while it does;
a runtime that answers slowly (restoring its pods) gets a longer version check
on every dial that ran out of time; a runtime that keeps breaking fresh
connections gets redials spaced by the policy's backoff, never a storm.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import grpc
import grpc.aio
from google.protobuf.message import Message
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    stop_never,
    wait_exponential_jitter,
)

from aiocri._classify import ConnectFailure, classify
from aiocri._connection import abandon, close_channel
from aiocri._events import ConnectionStats
from aiocri._log import library_logger
from aiocri._policy import RedialPolicy
from aiocri._proto.runtime.v1 import api_pb2
from aiocri._rpc import RPC
from aiocri.endpoint import Endpoint, check_socket, greet
from aiocri.errors import (
    ConnectFailed,
    CRIError,
    EndpointError,
    NoSupportedVersion,
    NotACRIRuntime,
    from_rpc_error,
)
from aiocri.versions import VERSIONS, CRIVersion

__all__ = ["SLOW_CHECK_CAP", "DialStopped", "Dialed", "Dialer", "VersionGone", "slow_check_timeout"]

log = library_logger("aiocri.channel")

# What the kubelet sends as its own API version in VersionRequest.
_CLIENT_API_VERSION = "0.1.0"
_SOCKET_POLL = 0.01  # seconds between socket-file checks while the runtime is down
_FRESH_SOCKET_WINDOW = 1.0  # seconds of fast retries after the socket file changed
#: The pace of dials while the runtime answers "not ready" (containerd restoring its
#: pods): often enough to be back soon after it is ready, not a connection storm.
_NOT_READY_PACE = 0.1
#: A generation that lived at least this long was healthy: its loss is not a flap.
_STABLE = 5.0
#: The longest (s) a dial's version check waits for a runtime that answered slowly before.
SLOW_CHECK_CAP = 30.0
#: Dial answers meaning "nothing usable answered".
_CONNECTION_TROUBLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True, slots=True)
class Dialed:
    """A fresh channel on which ``version`` answered the check with ``answer``."""

    version: CRIVersion
    answer: Message
    channel: grpc.aio.Channel


@dataclass(frozen=True, slots=True)
class VersionGone:
    """The redialled runtime answered UNIMPLEMENTED for the pinned version;
    ``answers``: the other versions that answered OK, by name."""

    channel: grpc.aio.Channel
    answers: dict[str, Message]


class DialStopped(Exception):
    """The dialer was stopped (its manager closed) while dialling."""


class _AttemptFailed(Exception):
    """One dial attempt failed in a way worth retrying."""

    def __init__(self, error: CRIError) -> None:
        super().__init__(str(error))
        self.error = error


class Dialer:
    """Dials ``endpoint`` with ``probe`` as the version check (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, probe: RPC, policy: RedialPolicy,
                 max_message_size: int, stats: ConnectionStats,
                 on_retry: Callable[[int, CRIError | None], None]) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self._probe = probe
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_size),
            ("grpc.max_send_message_length", max_message_size),
            # A fresh pool per channel: a new channel must not inherit the
            # backoff of the one that just lost its runtime.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 20),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            # Idle channels go READY -> IDLE; we would read that as a loss.
            ("grpc.client_idle_timeout_ms", 2**31 - 1),
        ]
        self._stats = stats
        self._on_retry = on_retry
        self._stopped = anyio.Event()
        self._checks: set[anyio.CancelScope] = set()  # dial checks in flight
        self._slow = 0  # version checks in a row that ran out of time
        self._socket_identity = _identity(endpoint.path) if endpoint.path else None
        self._fast_retry_from = -math.inf
        self._connected_at = -math.inf
        self._flaps = 0

    def stop(self) -> None:
        """End every dial: a check in flight is abandoned at once, a wait between
        attempts ends, and the dial raises DialStopped."""
        self._stopped.set()
        for scope in list(self._checks):
            scope.cancel()

    def connected(self) -> None:
        """A dial's result was installed: remember when, and the socket it reached."""
        self._connected_at = time.monotonic()
        self._socket_identity = _identity(self.endpoint.path) if self.endpoint.path else None

    def new_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.endpoint.target, options=self._options)

    async def check(self, channel: grpc.aio.Channel, version: CRIVersion,
                    timeout: float | None = None) -> Any:
        """The version check (Version, or ImageFsInfo on an image endpoint) on
        ``version``; ``timeout`` defaults to the policy's attempt timeout."""
        probe = self._probe
        fn = channel.unary_unary(
            version.path(probe),
            request_serializer=probe.request_type.SerializeToString,
            response_deserializer=probe.response_type.FromString,
        )
        request = (api_pb2.VersionRequest(version=_CLIENT_API_VERSION)
                   if probe.name == "Version" else probe.request_type())
        call = fn(request, timeout=self.policy.attempt_timeout if timeout is None else timeout)
        try:
            return await call
        except grpc.aio.AioRpcError:
            raise
        except BaseException:
            await abandon(call)
            raise

    async def _dial_check(self, channel: grpc.aio.Channel, version: CRIVersion,
                          timeout: float) -> Any:
        """:meth:`check` for a dial, abandoned as soon as the dialer is stopped (a
        client closed while its connect waits for a slow runtime must not wait too)."""
        with anyio.CancelScope() as scope:
            self._checks.add(scope)
            try:
                if not self._stopped.is_set():
                    return await self.check(channel, version, timeout)
            finally:
                self._checks.discard(scope)
        raise DialStopped

    async def serves(self, channel: grpc.aio.Channel, version: CRIVersion) -> bool:
        try:
            await self.check(channel, version)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False
        return True

    # -- start-up ------------------------------------------------------------------

    async def negotiate(self, versions: tuple[CRIVersion, ...]) -> Dialed:
        """The first of ``versions`` that answers, retrying a dead or slow runtime
        for the policy's connect timeout; then a diagnosed ConnectFailed."""
        give_up = time.monotonic() + self.policy.connect_timeout
        attempts = 0
        try:
            async for attempt in self._retrying(stop_before_delay(self.policy.connect_timeout),
                                                report=False):
                with attempt:
                    attempts += 1
                    return await self._negotiate_once(versions, give_up)
        except _AttemptFailed as exc:
            raise await self._connect_failed(exc.error, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _negotiate_once(self, versions: tuple[CRIVersion, ...], give_up: float) -> Dialed:
        if self._stopped.is_set():
            raise DialStopped
        channel = self.new_channel()
        attempts: dict[str, str] = {}
        try:
            for version in versions:
                try:
                    answer = await self._dial_check(channel, version, self._check_time(give_up))
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                        raise self._attempt_failed(exc) from None
                    attempts[version.name] = f"{exc.code().name} {exc.details() or ''}".strip()
                    continue
                self._slow = 0
                return Dialed(version, answer, channel)
        except BaseException:
            await close_channel(channel)
            raise
        await close_channel(channel)
        raise NoSupportedVersion(
            "the runtime serves none of the CRI versions this client speaks",
            attempts=attempts, endpoint=str(self.endpoint),
            all_versions=len(attempts) == len(VERSIONS),
        )

    async def _connect_failed(self, error: CRIError, attempts: int) -> CRIError:
        """Why the start-up gave up, from facts (see :mod:`aiocri._classify`)."""
        if self._stopped.is_set():
            raise DialStopped
        waited = min(1.0, self.policy.attempt_timeout)
        failure = classify(await greet(self.endpoint, waited), error.code)
        endpoint, details = str(self.endpoint), error.details
        tried = f"tried for {self.policy.connect_timeout:g} s"
        more_time = "connect(..., redial=RedialPolicy(connect_timeout=...))"
        if failure is ConnectFailure.NOT_CRI:
            return NotACRIRuntime(
                f"what listens on {endpoint} is not a gRPC server (it does not answer "
                "HTTP/2)", code=error.code, details=details, endpoint=endpoint)
        what, hint = {
            ConnectFailure.NO_SOCKET: (
                f"the socket file went away ({tried})",
                "start the runtime, or check the path (is it the runtime's CRI socket?)"),
            ConnectFailure.NOT_LISTENING: (
                f"nothing listens on {self.endpoint.address}"
                f"{' (a stale socket file?)' if self.endpoint.path else ''}; {tried}",
                f"start the runtime, or wait if it is restarting (allow more time with "
                f"{more_time}); if it runs, it listens elsewhere and this file is left "
                "from an earlier run"),
            ConnectFailure.HUNG: (
                f"a process accepts connections on {self.endpoint.address} but answers "
                f"nothing ({tried}, then {waited:g} s for an HTTP/2 greeting)",
                "the runtime may be stopped (SIGSTOP), hung or swamped: check its process "
                "and its log"),
            ConnectFailure.SLOW: (
                f"the runtime did not answer its version check in time ({tried}, "
                f"{attempts} attempts)",
                f"it may be busy (restoring its pods): allow more time with {more_time}"),
            ConnectFailure.NOT_READY: (
                f"the runtime answered {error.code.name if error.code else '?'} to every "
                f"version check ({tried}): {error.message}",
                f"it may still be starting: check its log, or allow more time with "
                f"{more_time}"),
            ConnectFailure.UNREACHABLE: (
                f"could not reach a CRI runtime ({tried}, {attempts} attempts)",
                f"check that the runtime runs and serves this socket, or allow more time "
                f"with {more_time}"),
        }[failure]
        return ConnectFailed(what, code=error.code, details=details, endpoint=endpoint,
                             hint=hint)

    # -- redial --------------------------------------------------------------------

    async def redial(self, pinned: CRIVersion) -> Dialed | VersionGone:
        """Dial until the runtime answers the pinned version's check, or tells that
        it dropped it; ConnectFailed once the policy's give_up_after has passed."""
        give_up_after = self.policy.give_up_after
        stop = stop_never if give_up_after is None else stop_before_delay(give_up_after)
        started = time.monotonic()
        give_up = None if give_up_after is None else started + give_up_after
        try:
            async for attempt in self._retrying(stop, report=True):
                with attempt:
                    return await self._redial_once(pinned, give_up)
        except _AttemptFailed as exc:
            raise ConnectFailed(
                f"gave up redialling after {time.monotonic() - started:.1f} s "
                f"({exc.error.message})",
                endpoint=str(self.endpoint),
                hint="restart the client once the runtime is back, or allow a longer "
                     "outage with connect(..., redial=RedialPolicy(give_up_after=...))",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _redial_once(self, pinned: CRIVersion,
                           give_up: float | None) -> Dialed | VersionGone:
        if self._stopped.is_set():
            raise DialStopped
        self._stats.redial_attempts += 1
        try:
            check_socket(self.endpoint)
        except EndpointError as exc:
            raise _AttemptFailed(exc) from None
        channel = self.new_channel()
        try:
            try:
                answer = await self._dial_check(channel, pinned, self._check_time(give_up))
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    raise self._attempt_failed(exc) from None
                return VersionGone(channel, await self._other_answers(channel, pinned, give_up))
        except BaseException:
            await close_channel(channel)
            raise
        self._slow = 0
        return Dialed(pinned, answer, channel)

    async def _other_answers(self, channel: grpc.aio.Channel, pinned: CRIVersion,
                             give_up: float | None) -> dict[str, Message]:
        answers: dict[str, Message] = {}
        for version in VERSIONS.values():
            if version is pinned:
                continue
            try:
                answers[version.name] = await self._dial_check(channel, version,
                                                               self._check_time(give_up))
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    # No verdict from a runtime that did not really answer.
                    raise self._attempt_failed(exc) from None
        return answers

    async def pace(self) -> None:
        """Space redials when fresh connections keep breaking at once (a flapping
        runtime, or one answering CANCELLED): the policy's backoff, growing per
        flap; a socket that changes (a real restart) ends the wait at once."""
        if time.monotonic() - self._connected_at < _STABLE:
            self._flaps += 1
        else:
            self._flaps = 0
        if self._flaps:
            await self._sleep_watching_socket(self.policy.backoff(self._flaps))

    # -- retries -------------------------------------------------------------------

    def _check_time(self, give_up: float | None) -> float:
        """The next dial's check deadline: longer after slow answers, never past
        ``give_up`` (but never too short to be answered)."""
        seconds = slow_check_timeout(self.policy.attempt_timeout, self._slow)
        if give_up is None:
            return seconds
        return min(seconds, max(give_up - time.monotonic(), self.policy.initial))

    def _attempt_failed(self, exc: grpc.aio.AioRpcError) -> _AttemptFailed:
        """A check answered neither OK nor UNIMPLEMENTED: retry."""
        if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            self._slow += 1  # the next check waits longer
        else:
            self._slow = 0
        return _AttemptFailed(
            from_rpc_error(exc, method=self._probe.name, endpoint=str(self.endpoint)))

    def _retrying(self, stop: Any, *, report: bool) -> AsyncRetrying:
        policy = self.policy
        backoff = wait_exponential_jitter(
            multiplier=policy.initial, max=policy.maximum,
            exp_base=policy.multiplier, jitter=policy.jitter,
        )

        def wait(retry_state: RetryCallState) -> float:
            # A runtime creates its socket before it answers (containerd: 20 ms to
            # ~1 s, growing with its pods): right after the socket changed, retry at
            # the first step; while it answers "not ready", at a steady pace.
            if time.monotonic() - self._fast_retry_from < _FRESH_SOCKET_WINDOW:
                return policy.initial
            waited = float(backoff(retry_state))
            if _answered_not_ready(retry_state):
                return min(waited, max(policy.initial, _NOT_READY_PACE))
            return waited

        return AsyncRetrying(
            wait=wait,
            stop=stop,
            # Only our own failures: never CancelledError (tenacity would
            # retry it and outlive the caller's timeout).
            retry=retry_if_exception_type(_AttemptFailed),
            sleep=self._sleep_watching_socket,
            before_sleep=self._before_sleep if report else None,
            reraise=True,
        )

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        n = retry_state.attempt_number
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = exc.error if isinstance(exc, _AttemptFailed) else None
        # Powers of two only: one line per doubling keeps a long outage quiet.
        level = logging.INFO if n & (n - 1) == 0 else logging.DEBUG
        log.log(level, "%s: redial attempt %d failed (%s); next in %.2f s", self.endpoint, n,
                error.message if error else exc, retry_state.upcoming_sleep)
        self._on_retry(n, error)

    async def _sleep_watching_socket(self, seconds: float) -> None:
        """Sleep for the backoff, but wake as soon as the socket file changes."""
        path = self.endpoint.path
        if path is None:
            with anyio.move_on_after(seconds):
                await self._stopped.wait()
            return
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0 and not self._stopped.is_set():
            await anyio.sleep(min(left, _SOCKET_POLL))
            now = _identity(path)
            if now != self._socket_identity:
                self._socket_identity = now
                if now is not None:
                    self._fast_retry_from = time.monotonic()
                    return


def slow_check_timeout(base: float, slow_answers: int) -> float:
    """The deadline of a dial's version check after ``slow_answers`` checks in a row
    ran out of time: doubled each time up to :data:`SLOW_CHECK_CAP` (never below
    ``base``), so a runtime that answers slowly (restoring its pods) is waited for
    instead of redialled for ever."""
    return min(base * 2.0 ** min(slow_answers, 32), max(base, SLOW_CHECK_CAP))


def _answered_not_ready(retry_state: RetryCallState) -> bool:
    """The last attempt reached a runtime that answered, but not yet OK."""
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if not isinstance(exc, _AttemptFailed):
        return False
    code = exc.error.code
    return code is not None and code not in _CONNECTION_TROUBLE


def _identity(path: str) -> tuple[int, int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime)
