"""The channel manager: dial, negotiate, pin, watch, redial, re-check.

One manager owns the connection to one endpoint and is the only code that
talks to grpc. Each successful dial makes a new immutable
:class:`~aiocri._connection.Connection` (a generation); calls run on the
current one, and a failed call asks :func:`aiocri._verdict.decide` whether to
raise the runtime's answer, probe the connection, or declare it lost (then
read-only calls are sent again on the next generation). A supervisor task
waits for the loss, redials with tenacity and re-checks the pinned version
before trusting the new connection::

    CONNECTING --negotiated--> READY --lost--> RECONNECTING --Version ok--> READY
                                               RECONNECTING --pinned gone--> RESTART_REQUIRED
    any --aclose()--> CLOSED

Why it is built this way (facts measured here, see the project notes): a
channel whose runtime died idles, then backs off on grpc's own schedule, so
every redial uses a fresh channel with a private subchannel pool and the socket
file is watched between attempts; a runtime answers "not ready" for a while
after it creates its socket, so retries stay at the first step while it does;
a runtime that keeps breaking fresh connections gets redials spaced by the
policy's backoff, never a storm.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import anyio
import anyio.lowlevel
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

from aiocri._connection import Connection, close_channel
from aiocri._events import (
    ConnectionEvent,
    ConnectionEventKind,
    ConnectionState,
    ConnectionStats,
    EventBroadcast,
    Subscription,
)
from aiocri._policy import RedialPolicy
from aiocri._proto.runtime.v1 import api_pb2
from aiocri._rpc import RPC, RPCS
from aiocri._tasks import TaskSet
from aiocri._verdict import Link, ProbeOutcome, Verdict, decide
from aiocri.endpoint import Endpoint, check_socket, nothing_listens
from aiocri.errors import (
    ClientClosed,
    ConnectFailed,
    CRIError,
    DeadlineExceeded,
    EndpointError,
    InternalError,
    NoSupportedVersion,
    NotACRIRuntime,
    RestartRequired,
    Unavailable,
    UnsupportedByVersion,
    from_rpc_error,
)
from aiocri.versions import VERSIONS, CRIVersion

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ChannelManager",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionStats",
    "EventBroadcast",
    "RedialPolicy",
]

log = logging.getLogger("aiocri.channel")

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # the kubelet's default
# What the kubelet sends as its own API version in VersionRequest.
_CLIENT_API_VERSION = "0.1.0"
_SOCKET_POLL = 0.01  # seconds between socket-file checks while the runtime is down
_FRESH_SOCKET_WINDOW = 1.0  # seconds of fast retries after the socket file changed
#: The pace of dials while the runtime answers "not ready" (containerd restoring its
#: pods): often enough to be back soon after it is ready, not a connection storm.
_NOT_READY_PACE = 0.1
#: A generation that lived at least this long was healthy: its loss is not a flap.
_STABLE = 5.0

# Read-only unary RPCs: safe to send again after the connection broke under them.
_RETRY_SAFE = frozenset(
    name
    for name, rpc in RPCS.items()
    if not rpc.server_streaming
    and (name.startswith("List") or name.endswith(("Status", "Stats", "FsInfo"))
         or name in {"Version", "RuntimeConfig"})
)
#: Probe answers meaning "nothing usable answered" during a dial.
_CONNECTION_TROUBLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class _AttemptFailed(Exception):
    """One dial attempt failed in a way worth retrying."""

    def __init__(self, error: CRIError) -> None:
        super().__init__(str(error))
        self.error = error


class ChannelManager:
    """Owns the connection to one endpoint; see the module docstring.

    :meth:`open` dials and negotiates (in the caller's task) and starts the
    supervisor; :meth:`aclose`, from any task, fails waiting and in-flight calls
    with :class:`ClientClosed`, ends every task and closes every channel.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        versions: tuple[CRIVersion, ...],
        probe: Literal["Version", "ImageFsInfo"] = "Version",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        policy: RedialPolicy | None = None,
        on_version_loss: Literal["fail", "renegotiate"] = "fail",
        fail_fast: bool = False,
        events: EventBroadcast | None = None,
        on_terminal: Callable[[CRIError], None] | None = None,
    ) -> None:
        if on_version_loss not in ("fail", "renegotiate"):
            raise ValueError("on_version_loss must be 'fail' or 'renegotiate'")
        self.endpoint = endpoint
        self.versions = versions
        self.policy = policy or RedialPolicy()
        self.on_version_loss = on_version_loss
        self.fail_fast = fail_fast
        self.stats = ConnectionStats()
        self._probe = RPCS[probe]
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
        self._state = ConnectionState.CONNECTING
        #: The READY generation (None while not READY): the call path reads only this.
        self._live: Connection | None = None
        #: The newest generation, lost or not.
        self._current: Connection | None = None
        self._connections: list[Connection] = []
        self._generation = 0
        self._first_answer: api_pb2.VersionResponse | None = None
        self._answer: api_pb2.VersionResponse | None = None
        self._pinned: CRIVersion | None = None
        self._changed = anyio.Event()
        self._terminal_error: CRIError | None = None
        self._terminal = anyio.Event()
        self._on_terminal = on_terminal
        self._events = events if events is not None else EventBroadcast()
        self._tasks = TaskSet(f"aiocri {endpoint}", self._crashed)
        self._socket_identity = _identity(endpoint.path) if endpoint.path else None
        self._fast_retry_from = -math.inf
        self._connected_at = -math.inf
        self._flaps = 0

    # -- public face -----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def generation(self) -> int:
        """Grows by one on every successful connect, redial or renegotiation."""
        return self._generation

    @property
    def pinned(self) -> CRIVersion | None:
        return self._pinned

    @property
    def version_response(self) -> api_pb2.VersionResponse | None:
        """What the runtime last answered to the version check."""
        return self._answer

    @property
    def terminal_error(self) -> CRIError | None:
        return self._terminal_error

    def events(self) -> Subscription:
        """Typed events from now on; ends when the connection is terminal."""
        return self._events.subscribe()

    async def wait_terminal(self) -> CRIError:
        """Wait until RESTART_REQUIRED or CLOSED; return the error calls now get."""
        await self._terminal.wait()
        assert self._terminal_error is not None
        return self._terminal_error

    async def open(self) -> None:
        """Dial and negotiate (retrying a dead socket), then start the supervisor."""
        if self._state is not ConnectionState.CONNECTING:
            raise RuntimeError("a ChannelManager is opened once")
        check_socket(self.endpoint)  # bad input fails before any dial
        try:
            await self._negotiate()
        except BaseException:
            await self.aclose()
            raise
        if self._terminal_error is not None:  # closed by another task meanwhile
            await self.aclose()
            raise self._terminal_error
        self._tasks.spawn(self._supervise(), "supervisor")

    async def aclose(self) -> None:
        """Fail waiting, in-flight and later calls with ClientClosed; end every task;
        close every channel. Any task may call it, any number of times."""
        if self._state is not ConnectionState.CLOSED:
            self._enter_terminal(
                ConnectionState.CLOSED,
                ClientClosed("the client was closed", endpoint=str(self.endpoint)),
            )
        with anyio.CancelScope(shield=True):
            # Channels first: closing one ends grpc's connectivity watch and fails
            # the calls still on it (they raise ClientClosed).
            connections, self._connections = self._connections, []
            for conn in connections:
                await conn.aclose()
            await self._tasks.aclose()
            # No reference to a channel may outlive the client: grpc.aio releases its
            # poller (bound to this event loop) only when the last channel is collected.
            self._current = self._live = None

    # -- the call path -----------------------------------------------------------

    async def unary(self, rpc: RPC, request: Message | None, timeout: float | None,
                    decode: Callable[[bytes], Any] | None = None) -> Any:
        """Send one unary RPC on the pinned version; see the module docstring.

        ``decode`` parses the response instead of the RPC's own message class
        (the poller's lean list views, :mod:`aiocri._lean`).
        """
        self.stats.calls += 1
        if request is None:
            request = rpc.request_type()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            conn = self._live
            if conn is None:
                conn = await self._wait_ready(rpc, deadline)
            fn = conn.unary.get(rpc.name) if decode is None else conn.decoded(rpc, decode)
            if fn is None:
                unsupported = self._unsupported(rpc, conn)
                del conn  # a raised error's traceback keeps this frame
                raise unsupported
            remaining = None if deadline is None else deadline - time.monotonic()
            conn.users += 1
            try:
                call = fn(request, timeout=remaining)
                try:
                    return await call
                except grpc.aio.AioRpcError as exc:
                    failure: grpc.aio.AioRpcError | None = exc
                except asyncio.CancelledError:
                    await _abandon(call)
                    if not _cancelled_by_grpc():
                        raise
                    failure = None  # grpc cancelled it: we closed its channel
                except BaseException:
                    await _abandon(call)
                    raise
            finally:
                conn.release()
            error = await self._failed(conn, rpc, failure, deadline,
                                       read_only=rpc.name in _RETRY_SAFE)
            # A raised error's traceback keeps this frame: let it hold no channel.
            del conn, fn, call, failure
            if error is not None:
                raise error

    async def stream(
        self, rpc: RPC, request: Message | None, timeout: float | None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Open a server-streaming RPC and yield its messages (``decode``: as in unary()).

        Streams are never reopened here: a broken stream raises, its reader decides.
        """
        self.stats.calls += 1
        if request is None:
            request = rpc.request_type()
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self._live
        if conn is None:
            conn = await self._wait_ready(rpc, deadline)
        fn = conn.streams.get(rpc.name) if decode is None else conn.decoded(rpc, decode)
        if fn is None:
            unsupported = self._unsupported(rpc, conn)
            del conn  # a raised error's traceback keeps this frame
            raise unsupported
        remaining = None if deadline is None else deadline - time.monotonic()
        conn.users += 1
        call = fn(request, timeout=remaining)
        responses = call.__aiter__()
        del fn
        failure: grpc.aio.AioRpcError | None = None
        try:
            while True:
                try:
                    item = await responses.__anext__()
                except StopAsyncIteration:
                    return
                except grpc.aio.AioRpcError as exc:
                    failure = exc
                    break
                except asyncio.CancelledError:
                    await _abandon(call)
                    if not _cancelled_by_grpc():
                        raise
                    break
                yield item
        except BaseException:
            await _abandon(call)
            raise
        finally:
            conn.release()
            del call, responses
        error = await self._failed(conn, rpc, failure, deadline, read_only=False)
        del conn, failure
        raise error or self._terminal_error or Unavailable(
            "the connection to the runtime broke under the stream",
            code=grpc.StatusCode.UNAVAILABLE, method=rpc.name, endpoint=str(self.endpoint))

    async def _failed(self, conn: Connection, rpc: RPC, exc: grpc.aio.AioRpcError | None,
                      deadline: float | None, *, read_only: bool) -> CRIError | None:
        """What a failed call raises, or None to send it again (see aiocri._verdict)."""
        if exc is None:
            code, link = grpc.StatusCode.CANCELLED, Link.GONE
        else:
            code = exc.code()
            self.stats.errors[code.name] += 1
            link = conn.link()
        if self._terminal_error is not None:
            return self._terminal_error
        verdict = decide(code, link, ProbeOutcome.NONE, read_only=read_only)
        if verdict is Verdict.PROBE:
            outcome = await conn.probe(deadline)
            if self._terminal_error is not None:
                return self._terminal_error
            verdict = decide(code, Link.READY, outcome, read_only=read_only)
        endpoint = str(self.endpoint)
        if verdict is Verdict.RAISE:
            assert exc is not None
            return from_rpc_error(exc, method=rpc.name, endpoint=endpoint)
        conn.declare_lost(f"{rpc.name} failed with {code.name}")
        in_time = deadline is None or time.monotonic() < deadline
        if verdict is Verdict.LOST_RESEND and not self.fail_fast and in_time:
            return None
        details = "" if exc is None else exc.details() or ""
        if verdict is Verdict.LOST_RESEND and exc is not None:
            return from_rpc_error(exc, method=rpc.name, endpoint=endpoint)
        return Unavailable(
            "the connection to the runtime broke while the call was in flight; "
            "it may or may not have reached the runtime",
            code=code, details=details, method=rpc.name, endpoint=endpoint,
            hint="check the object's state before sending the call again",
        )

    def _unsupported(self, rpc: RPC, conn: Connection) -> CRIError:
        return UnsupportedByVersion(
            f"{rpc.name} is not part of CRI {conn.version.name}, the version this client pinned",
            method=rpc.name,
            endpoint=str(self.endpoint),
        )

    async def _wait_ready(self, rpc: RPC, deadline: float | None) -> Connection:
        while True:
            conn = self._live
            if conn is not None:
                return conn
            if self._terminal_error is not None:
                raise self._terminal_error
            if self.fail_fast:
                raise Unavailable(
                    f"runtime is {self._state.value}",
                    code=grpc.StatusCode.UNAVAILABLE,
                    method=rpc.name,
                    endpoint=str(self.endpoint),
                    hint="retry later, or connect with fail_fast=False to wait for the redial",
                )
            wait = math.inf if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                raise DeadlineExceeded(
                    f"runtime still {self._state.value} when the deadline expired",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    method=rpc.name,
                    endpoint=str(self.endpoint),
                )
            changed = self._changed
            with anyio.move_on_after(wait):
                await changed.wait()

    # -- negotiation -------------------------------------------------------------

    async def _negotiate(self) -> None:
        """Start-up: find the first version that answers, retrying a dead socket."""
        policy = self.policy
        async for attempt in self._retrying(stop_before_delay(policy.connect_timeout), start=True):
            with attempt:
                if self._terminal_error is not None:
                    raise self._terminal_error  # closed by another task meanwhile
                channel = self._new_channel()
                attempts: dict[str, str] = {}
                try:
                    for version in self.versions:
                        try:
                            response = await self._check(channel, version)
                        except grpc.aio.AioRpcError as exc:
                            if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                                raise self._attempt_failed(exc) from None
                            answer = f"{exc.code().name} {exc.details() or ''}"
                            attempts[version.name] = answer.strip()
                            continue
                        if self._install(version, response, channel) is None:
                            await close_channel(channel)  # closed by another task
                        else:
                            log.info("%s: pinned CRI %s (%s)", self.endpoint, version.name,
                                     _runtime_name(response))
                        return
                except BaseException:
                    await close_channel(channel)
                    raise
                await close_channel(channel)
                raise NoSupportedVersion(
                    "the runtime serves none of the CRI versions this client speaks",
                    attempts=attempts,
                    endpoint=str(self.endpoint),
                    all_versions=len(attempts) == len(VERSIONS),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt_failed(self, exc: grpc.aio.AioRpcError) -> _AttemptFailed:
        """A check answered neither OK nor UNIMPLEMENTED: retry (start-up and redial)."""
        return _AttemptFailed(
            from_rpc_error(exc, method=self._probe.name, endpoint=str(self.endpoint)))

    async def _check(self, channel: grpc.aio.Channel, version: CRIVersion) -> Any:
        """The probe (Version, or ImageFsInfo for an image endpoint) on ``version``."""
        probe = self._probe
        fn = channel.unary_unary(
            version.path(probe),
            request_serializer=probe.request_type.SerializeToString,
            response_deserializer=probe.response_type.FromString,
        )
        request = (
            api_pb2.VersionRequest(version=_CLIENT_API_VERSION)
            if probe.name == "Version"
            else probe.request_type()
        )
        call = fn(request, timeout=self.policy.attempt_timeout)
        try:
            return await call
        except grpc.aio.AioRpcError:
            raise
        except BaseException:
            await _abandon(call)
            raise

    def _new_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.endpoint.target, options=self._options)

    def _install(self, version: CRIVersion, response: Message,
                 channel: grpc.aio.Channel) -> Connection | None:
        """Make the next generation on ``channel`` and go READY (None: already terminal)."""
        if self._state.terminal:
            return None  # the caller closes the channel
        self._generation += 1
        conn = Connection(self._generation, channel, version, response, check=self._check,
                          spawn=self._tasks.spawn, on_lost=self._on_lost)
        if isinstance(response, api_pb2.VersionResponse):
            self._answer = response
            if self._first_answer is None:
                self._first_answer = response
        old, self._current = self._current, conn
        self._pinned = version
        self._connections = [c for c in self._connections if not c.closed] + [conn]
        if old is not None:
            old.retire()
        self._live = conn
        self._connected_at = time.monotonic()
        self._socket_identity = _identity(self.endpoint.path) if self.endpoint.path else None
        self._set_state(ConnectionState.READY)
        return conn

    # -- supervision ---------------------------------------------------------------

    def _on_lost(self, conn: Connection, reason: str) -> None:
        """A generation was declared lost (by a call, a probe or the channel watch)."""
        self.stats.losses += 1
        if conn is self._live:
            self._live = None
            log.info("%s: connection generation %d lost: %s", self.endpoint,
                     conn.generation, reason)
            self._set_state(ConnectionState.RECONNECTING)

    async def _supervise(self) -> None:
        while not self._state.terminal:
            conn = self._current
            assert conn is not None
            await self._wait_lost(conn)
            if self._state.terminal:
                return
            await self._pace()
            await self._redial()

    async def _wait_lost(self, conn: Connection) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_channel, conn)
            await conn.lost.wait()
            tg.cancel_scope.cancel()

    async def _watch_channel(self, conn: Connection) -> None:
        """Declare ``conn`` lost when its channel leaves READY, at any moment.

        Any change counts, even if the channel is READY again when we look: a
        reconnect grpc made on its own must be re-checked before it is trusted.
        """
        channel = conn.channel
        state = channel.get_state(try_to_connect=True)
        if state is grpc.ChannelConnectivity.READY:
            try:
                await channel.wait_for_state_change(state)
            except BaseException:
                await anyio.lowlevel.checkpoint()
                raise
            state = channel.get_state()
        conn.declare_lost(f"the channel went {state.name}")

    async def _pace(self) -> None:
        """Space redials when fresh connections keep breaking at once (a flapping
        runtime, or one answering CANCELLED): the policy's backoff, growing per
        flap; a socket that changes (a real restart) ends the wait at once."""
        if time.monotonic() - self._connected_at < _STABLE:
            self._flaps += 1
        else:
            self._flaps = 0
        if self._flaps:
            await self._sleep_watching_socket(self.policy.backoff(self._flaps))

    async def _redial(self) -> None:
        policy = self.policy
        give_up = policy.give_up_after
        stop = stop_never if give_up is None else stop_before_delay(give_up)
        started = time.monotonic()
        try:
            async for attempt in self._retrying(stop, start=False):
                with attempt:
                    await self._redial_once(attempt.retry_state.attempt_number)
        except _AttemptFailed as exc:
            self._enter_terminal(
                ConnectionState.CLOSED,
                ConnectFailed(
                    f"gave up redialling after {time.monotonic() - started:.1f} s "
                    f"({exc.error.message})",
                    endpoint=str(self.endpoint),
                    hint="restart the client once the runtime is back, or allow a longer "
                         "outage with connect(..., redial=RedialPolicy(give_up_after=...))",
                ),
            )

    async def _redial_once(self, attempt: int) -> None:
        if self._state.terminal:
            return
        self.stats.redial_attempts += 1
        previous = self._current
        assert previous is not None
        pinned = previous.version
        try:
            check_socket(self.endpoint)
        except EndpointError as exc:
            raise _AttemptFailed(exc) from None
        channel = self._new_channel()
        try:
            response = await self._check(channel, pinned)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                try:
                    await self._version_lost(channel, pinned)
                except BaseException:
                    await close_channel(channel)
                    raise
                return
            await close_channel(channel)
            raise self._attempt_failed(exc) from None
        except BaseException:
            await close_channel(channel)
            raise
        conn = self._install(pinned, response, channel)
        if conn is None:
            await close_channel(channel)
            return
        self.stats.redials += 1
        log.info("%s: reconnected after %d attempt(s); CRI %s still served",
                 self.endpoint, attempt, pinned.name)
        self._tasks.spawn(self._announce_newer(conn), "newer-version check")

    async def _announce_newer(self, conn: Connection) -> None:
        pinned = conn.version
        newer = self.versions[: self.versions.index(pinned)] if pinned in self.versions else ()
        if not newer:
            return
        conn.users += 1
        try:
            served = [v.name for v in newer if await self._answers(conn.channel, v)]
        finally:
            conn.release()
        if served and conn is self._live:
            log.info("%s: runtime now also serves CRI %s; staying on %s",
                     self.endpoint, ", ".join(served), pinned.name)
            self._publish("newer_version_available", served=(pinned.name, *served))

    async def _answers(self, channel: grpc.aio.Channel, version: CRIVersion) -> bool:
        try:
            await self._check(channel, version)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False
        return True

    async def _version_lost(self, channel: grpc.aio.Channel, pinned: CRIVersion) -> None:
        """The redialled runtime answered UNIMPLEMENTED for the pinned version."""
        answers: dict[str, Any] = {}
        for version in VERSIONS.values():
            if version is pinned:
                continue
            try:
                answers[version.name] = await self._check(channel, version)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    # No verdict from a runtime that did not really answer.
                    raise self._attempt_failed(exc) from None
        served = list(answers)
        usable = [v for v in self.versions if v.name in answers]
        if self.on_version_loss == "renegotiate" and usable:
            if self._install(usable[0], answers[usable[0].name], channel) is None:
                await close_channel(channel)
                return
            self.stats.redials += 1
            log.warning("%s: runtime dropped CRI %s; renegotiated to %s",
                        self.endpoint, pinned.name, usable[0].name)
            self._publish("renegotiated", served=tuple(served))
            return
        await close_channel(channel)
        after = next((r for r in answers.values()
                      if isinstance(r, api_pb2.VersionResponse)), None)
        self._enter_terminal(
            ConnectionState.RESTART_REQUIRED,
            RestartRequired(
                pinned=pinned.name,
                served=served,
                endpoint=str(self.endpoint),
                before=self._first_answer,
                after=after,
            ),
            served=tuple(served),
        )

    def _retrying(self, stop: Any, *, start: bool) -> AsyncRetrying:
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
            before_sleep=self._before_sleep if not start else None,
            retry_error_callback=None if not start else self._connect_gave_up,
            reraise=True,
        )

    def _connect_gave_up(self, retry_state: RetryCallState) -> Any:
        if self._terminal_error is not None:  # closed meanwhile: that is the answer
            raise self._terminal_error
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = exc.error if isinstance(exc, _AttemptFailed) else None
        details = error.details if error is not None else ""
        cls = NotACRIRuntime if _looks_foreign(details) else ConnectFailed
        path = self.endpoint.path
        if cls is ConnectFailed and path is not None and nothing_listens(path):
            raise ConnectFailed(
                f"nothing listens on {path} (a stale socket file?); tried for "
                f"{self.policy.connect_timeout:g} s",
                code=error.code if error else None,
                details=details,
                endpoint=str(self.endpoint),
                hint="start the runtime, or wait if it is restarting (allow more time "
                     "with connect(..., redial=RedialPolicy(connect_timeout=...))); if it "
                     "runs, it listens elsewhere and this file is left from an earlier run",
            )
        raise cls(
            f"could not reach a CRI runtime within {self.policy.connect_timeout:g} s "
            f"({retry_state.attempt_number} attempts)",
            code=error.code if error else None,
            details=details,
            endpoint=str(self.endpoint),
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
        self._publish("redial_attempt", attempt=n, error=error)

    async def _sleep_watching_socket(self, seconds: float) -> None:
        """Sleep for the backoff, but wake as soon as the socket file changes."""
        path = self.endpoint.path
        if path is None:
            with anyio.move_on_after(seconds):
                await self._terminal.wait()
            return
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0 and not self._state.terminal:
            await anyio.sleep(min(left, _SOCKET_POLL))
            now = _identity(path)
            if now != self._socket_identity:
                self._socket_identity = now
                if now is not None:
                    self._fast_retry_from = time.monotonic()
                    return

    # -- state ------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, **extra: Any) -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        self.stats.state = state
        self.stats.state_since = time.monotonic()
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        quiet = state in (ConnectionState.READY, ConnectionState.CLOSED)
        level = logging.INFO if quiet else logging.WARNING
        log.log(level, "%s: %s -> %s", self.endpoint, previous.value, state.value)
        self._publish("state", previous=previous, **extra)

    def _enter_terminal(self, state: ConnectionState, error: CRIError, **extra: Any) -> None:
        # RESTART_REQUIRED may still become CLOSED; CLOSED is the end.
        if self._state is ConnectionState.CLOSED or self._state is state:
            return
        self._terminal_error = error
        self._live = None
        self._set_state(state, error=error, **extra)
        self._terminal.set()
        if state is ConnectionState.RESTART_REQUIRED:
            log.error("%s: %s", self.endpoint, error)
        for conn in self._connections:
            conn.retire()  # closed once the calls still on them end
        self._events.close()
        if self._on_terminal is not None:
            self._on_terminal(error)

    def _crashed(self, exc: BaseException) -> None:
        """A background task of ours failed unexpectedly: a bug, made the terminal error."""
        error = InternalError(
            f"aiocri's background work failed ({type(exc).__name__}: {exc})",
            endpoint=str(self.endpoint),
        )
        error.__cause__ = exc
        self._enter_terminal(ConnectionState.CLOSED, error)

    def _publish(self, kind: ConnectionEventKind, **extra: Any) -> None:
        pinned = self._pinned
        self._events.publish(
            ConnectionEvent(
                kind=kind,
                state=self._state,
                endpoint=str(self.endpoint),
                pinned=None if pinned is None else pinned.name,
                generation=self._generation,
                **extra,
            )
        )


async def _abandon(call: grpc.aio.Call) -> None:
    # grpc.aio turns an anyio cancellation into a bare CancelledError that anyio
    # does not recognise; cancelling the RPC and passing one checkpoint lets
    # anyio's own cancellation take over.
    call.cancel()
    await anyio.lowlevel.checkpoint()


def _cancelled_by_grpc() -> bool:
    """Inside ``except CancelledError``: grpc cancelled the call (we closed its
    channel), not somebody cancelling the calling task (that counts in cancelling())."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


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


def _runtime_name(response: Any) -> str:
    if isinstance(response, api_pb2.VersionResponse):
        return f"{response.runtime_name} {response.runtime_version}".strip()
    return "image service"


def _looks_foreign(details: str) -> bool:
    # What grpc says when the peer is not an HTTP/2 gRPC server.
    text = details.lower()
    return any(s in text for s in ("http1", "protocol", "frame", "socket closed", "handshake"))
