"""The channel manager: dial, negotiate, pin, watch, redial, re-check.

One manager owns the grpc channel to one endpoint. It is the only module that
talks to grpc: services hand it an RPC and a request, it picks the pinned
version's method path, waits for READY, applies the deadline, maps errors and
makes cancellation behave under anyio.

Life of a connection::

    CONNECTING --negotiated--> READY --lost--> RECONNECTING --Version ok--> READY
                                               RECONNECTING --pinned gone--> RESTART_REQUIRED
    any --close()--> CLOSED

Why it is built this way (measured facts, see the project notes):
- a grpc channel whose server died idles until kicked and then backs off on
  its own schedule (1 s first, up to 120 s), so every redial attempt uses a
  fresh channel with a local subchannel pool (no inherited backoff) and
  tenacity decides when to try;
- between attempts the socket file is watched, so a runtime that comes back
  is dialled within about 10 ms instead of at the next backoff step;
- a runtime answers "not ready" for a while after creating its socket
  (containerd restores its pods first), so retries stay at the first step
  while it does;
- a reconnect is never trusted before ``Version`` on the pinned version
  answers again: that is how RESTART_REQUIRED is detected;
- read-only calls that the lost connection broke (UNAVAILABLE, or CANCELLED
  by a runtime shutting down, or cancelled by grpc when a redial replaced their
  channel) are sent again once READY, within their own deadline; calls that
  change state are not, and raise ``Unavailable``;
- UNAVAILABLE while the channel still says READY may be the runtime's own
  answer: one probe (shared by every call failing meanwhile) tells a broken
  connection from a runtime that said so, which is then raised as it is, with
  no redial and no resend (otherwise: a resend-and-redial loop until the
  deadline).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
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

from aiocri._proto.runtime.v1 import api_pb2
from aiocri._rpc import RPC, RPCS
from aiocri.endpoint import Endpoint, check_socket
from aiocri.errors import (
    ClientClosed,
    ConnectFailed,
    CRIError,
    DeadlineExceeded,
    EndpointError,
    NoSupportedVersion,
    NotACRIRuntime,
    RestartRequired,
    Unavailable,
    UnsupportedByVersion,
    from_rpc_error,
)
from aiocri.versions import VERSIONS, CRIVersion

__all__ = [
    "ChannelManager",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionStats",
    "RedialPolicy",
]

log = logging.getLogger("aiocri.channel")

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # the kubelet's default
# What the kubelet sends as its own API version in VersionRequest.
_CLIENT_API_VERSION = "0.1.0"
_SOCKET_POLL = 0.01  # seconds between socket-file checks while the runtime is down
_FRESH_SOCKET_WINDOW = 1.0  # seconds of fast retries after a sign of the runtime's return

# Read-only unary RPCs: safe to send again after the connection broke under them
# (streams are never re-opened here: their reader decides).
_RETRY_SAFE = frozenset(
    name
    for name, rpc in RPCS.items()
    if not rpc.server_streaming
    and (name.startswith("List") or name.endswith(("Status", "Stats", "FsInfo"))
         or name in {"Version", "RuntimeConfig"})
)
#: How long one probe's verdict on a READY channel answers for other failing calls.
_PROBE_REUSE = 0.5
#: Probe answers meaning "nothing usable answered": the runtime is down or the
#: connection broke. UNIMPLEMENTED alone means "not this version"; any other answer
#: is a runtime that is there but not ready (containerd: UNKNOWN "server is not
#: initialized yet" while it restores its pods).
_CONNECTION_TROUBLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    RESTART_REQUIRED = "restart_required"
    CLOSED = "closed"

    @property
    def terminal(self) -> bool:
        return self in (ConnectionState.RESTART_REQUIRED, ConnectionState.CLOSED)


ConnectionEventKind = Literal["state", "redial_attempt", "newer_version_available", "renegotiated"]


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """Something that happened to a connection, for subscribers and logs."""

    kind: ConnectionEventKind
    state: ConnectionState
    endpoint: str
    pinned: str | None
    attempt: int = 0
    error: CRIError | None = None
    #: CRI versions the runtime answered on (filled after a version check).
    served: tuple[str, ...] = ()
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class RedialPolicy:
    """How to dial and redial: tenacity's exponential backoff with jitter.

    ``connect_timeout`` bounds start-up (a dead socket is retried that long);
    ``give_up_after`` bounds an outage (None: never give up, like the kubelet).
    """

    initial: float = 0.02
    maximum: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.02
    attempt_timeout: float = 2.0
    connect_timeout: float = 10.0
    give_up_after: float | None = None


@dataclass
class ConnectionStats:
    """Counters a user can read (``client.stats``)."""

    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    redials: int = 0
    redial_attempts: int = 0
    state: ConnectionState = ConnectionState.CONNECTING
    state_since: float = field(default_factory=time.monotonic)

    @property
    def time_in_state(self) -> float:
        return time.monotonic() - self.state_since


class _AttemptFailed(Exception):
    """One dial attempt failed in a way worth retrying."""

    def __init__(self, error: CRIError) -> None:
        super().__init__(str(error))
        self.error = error


class _Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: deque[ConnectionEvent] = deque(maxlen=size)
        self.wake = anyio.Event()


class EventBroadcast:
    """Fan-out of events to subscribers, bounded per subscriber (oldest dropped)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._subscribers: list[_Subscriber] = []
        self._closed = False

    def publish(self, event: ConnectionEvent) -> None:
        for sub in self._subscribers:
            sub.queue.append(event)
            sub.wake.set()

    def close(self) -> None:
        self._closed = True
        for sub in self._subscribers:
            sub.wake.set()

    async def subscribe(self) -> AsyncIterator[ConnectionEvent]:
        sub = _Subscriber(self._size)
        self._subscribers.append(sub)
        try:
            while True:
                while sub.queue:
                    yield sub.queue.popleft()
                if self._closed:
                    return
                sub.wake = anyio.Event()
                await sub.wake.wait()
        finally:
            self._subscribers.remove(sub)


class ChannelManager:
    """Owns the connection to one endpoint; see the module docstring.

    Use as an async context manager: entering dials and negotiates, leaving
    cancels the watcher, fails waiting calls with :class:`ClientClosed` and
    closes every channel.
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
        self._pinned: CRIVersion | None = None
        self._version: api_pb2.VersionResponse | None = None
        self._first_version: api_pb2.VersionResponse | None = None
        self._channel: grpc.aio.Channel | None = None
        self._generation = 0
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._streams: dict[str, grpc.aio.UnaryStreamMultiCallable[Any, Any]] = {}
        self._ready = anyio.Event()
        self._loss = anyio.Event()
        self._terminal_error: CRIError | None = None
        self._terminal = anyio.Event()
        self._events = events if events is not None else EventBroadcast()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._old_channels: list[grpc.aio.Channel] = []
        self._recheck_lock = anyio.Lock()
        self._probe_lock = anyio.Lock()
        #: The last verdict on a READY channel after UNAVAILABLE: (generation, at, lost).
        self._probed: tuple[int, float, bool] | None = None
        self._supervisor_scope = anyio.CancelScope()
        self._socket_identity = _identity(endpoint.path) if endpoint.path else None
        self._fast_retry_from = -math.inf

    # -- public face -----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def pinned(self) -> CRIVersion | None:
        return self._pinned

    @property
    def version_response(self) -> api_pb2.VersionResponse | None:
        """What the runtime last answered to the version check."""
        return self._version

    def events(self) -> AsyncIterator[ConnectionEvent]:
        """Typed events from now on; ends when the connection is terminal."""
        return self._events.subscribe()

    async def wait_terminal(self) -> CRIError:
        """Wait until RESTART_REQUIRED or CLOSED; return the error calls now get."""
        await self._terminal.wait()
        assert self._terminal_error is not None
        return self._terminal_error

    async def __aenter__(self) -> ChannelManager:
        check_socket(self.endpoint)  # bad input fails before any dial
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            await self._negotiate()
        except BaseException:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None
            await self._close_channels()
            raise
        self._task_group.start_soon(self._run_supervisor)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.close()
        tg, self._task_group = self._task_group, None
        if tg is None:
            return None
        return await tg.__aexit__(exc_type, exc, tb)

    async def close(self) -> None:
        """Fail waiting, in-flight and later calls with ClientClosed; stop the watcher;
        close the channels."""
        if self._state is not ConnectionState.CLOSED:
            self._enter_terminal(
                ConnectionState.CLOSED,
                ClientClosed("the client was closed", endpoint=str(self.endpoint)),
            )
        # Channels first: closing one completes grpc's pending connectivity
        # watch, which would otherwise outlive the event loop. Then cancel only
        # our own task: the task group's scope also holds the caller's
        # `async with` body, which close() must not cancel.
        await self._close_channels()
        self._supervisor_scope.cancel()

    # -- the invoke path ---------------------------------------------------------

    async def unary(self, rpc: RPC, request: Message | None, timeout: float | None,
                    decode: Callable[[bytes], Any] | None = None) -> Any:
        """Send one unary RPC on the pinned version; see the module docstring.

        ``decode`` parses the response instead of the RPC's own message class
        (the poller's lean list views, :mod:`aiocri._lean`).
        """
        stats = self.stats
        stats.calls += 1
        if request is None:
            request = rpc.request_type()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._state is not ConnectionState.READY:
                await self._wait_ready(rpc, deadline)
            fn = self._unary.get(rpc.name)
            if fn is None:
                raise self._unsupported(rpc)
            if decode is not None:
                fn = self._decoded(rpc, decode)
            generation = self._generation
            remaining = None if deadline is None else deadline - time.monotonic()
            call = fn(request, timeout=remaining)
            try:
                return await call
            except grpc.aio.AioRpcError as exc:
                error, broke = await self._call_failed(exc, rpc, generation, deadline)
            except asyncio.CancelledError:
                await self._abandon(call)
                if not _cancelled_by_grpc():
                    del call, fn  # see below
                    raise
                error, broke = self._call_dropped(rpc), True
            except BaseException:
                await self._abandon(call)
                del call, fn  # see below
                raise
            # A raised error's traceback keeps this frame: let it hold no
            # channel, or grpc.aio cannot release its poller at close().
            del call, fn
            # The connection broke under a read-only call: wait for the redial and
            # send it again. A runtime that itself answered UNAVAILABLE is believed.
            if not (broke and rpc.name in _RETRY_SAFE) or self.fail_fast:
                raise error
            if deadline is not None and time.monotonic() >= deadline:
                raise error

    async def stream(
        self, rpc: RPC, request: Message | None, timeout: float | None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Open a server-streaming RPC and yield its messages (``decode``: as in unary())."""
        self.stats.calls += 1
        if request is None:
            request = rpc.request_type()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._state is not ConnectionState.READY:
            await self._wait_ready(rpc, deadline)
        fn = self._streams.get(rpc.name)
        if fn is None:
            raise self._unsupported(rpc)
        if decode is not None:
            fn = self._decoded(rpc, decode)
        generation = self._generation
        remaining = None if deadline is None else deadline - time.monotonic()
        call = fn(request, timeout=remaining)
        responses = call.__aiter__()
        del fn
        error: CRIError | None = None
        try:
            while True:
                try:
                    item = await responses.__anext__()
                except StopAsyncIteration:
                    return
                except grpc.aio.AioRpcError as exc:
                    error, _ = await self._call_failed(exc, rpc, generation, deadline)
                    break
                except asyncio.CancelledError:
                    await self._abandon(call)
                    if not _cancelled_by_grpc():
                        raise
                    error = self._call_dropped(rpc)
                    break
                yield item
        except BaseException:
            await self._abandon(call)
            del call, responses  # as in unary()
            raise
        del call, responses
        raise error

    def _decoded(self, rpc: RPC, decode: Callable[[bytes], Any]) -> Any:
        # Made per call on the current channel (the poller's lists: a few per
        # period); the cached callables keep every other call free of this.
        assert self._channel is not None
        assert self._pinned is not None
        return _multicallable(self._channel, self._pinned, rpc, decode)

    async def _abandon(self, call: grpc.aio.Call) -> None:
        # grpc.aio turns an anyio cancellation into a bare CancelledError that
        # anyio does not recognise; cancelling the RPC and passing one
        # checkpoint lets anyio's own cancellation take over.
        call.cancel()
        await anyio.lowlevel.checkpoint()

    def _unsupported(self, rpc: RPC) -> CRIError:
        pinned = self._pinned.name if self._pinned else "?"
        return UnsupportedByVersion(
            f"{rpc.name} is not part of CRI {pinned}, the version this client pinned",
            method=rpc.name,
            endpoint=str(self.endpoint),
        )

    async def _wait_ready(self, rpc: RPC, deadline: float | None) -> None:
        while self._state is not ConnectionState.READY:
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
            ready = self._ready
            with anyio.move_on_after(wait):
                await ready.wait()

    async def _call_failed(
        self, exc: grpc.aio.AioRpcError, rpc: RPC, generation: int, deadline: float | None
    ) -> tuple[CRIError, bool]:
        """The error to raise, and whether the connection broke under the call."""
        code = exc.code()
        self.stats.errors[code.name] += 1
        if self._terminal_error is not None:
            return self._terminal_error, False
        error = from_rpc_error(exc, method=rpc.name, endpoint=str(self.endpoint))
        if code is grpc.StatusCode.UNAVAILABLE:
            if not await self._connection_lost(generation, deadline):
                return error, False  # the runtime's own answer: no redial, no resend
            self._report_loss(generation)
            return error, True
        if code is grpc.StatusCode.CANCELLED:
            # Our own cancellations raise CancelledError instead: the peer cancelled
            # (a runtime shutting down).
            self._report_loss(generation)
            return Unavailable(
                "the call was cancelled by the runtime",
                code=code,
                details=exc.details() or "",
                method=rpc.name,
                endpoint=str(self.endpoint),
            ), True
        if code is grpc.StatusCode.UNIMPLEMENTED and self.stats.redials:
            # After a reconnect, UNIMPLEMENTED may mean the runtime lost our
            # version: check before blaming the RPC.
            await self._recheck()
            if self._terminal_error is not None:
                return self._terminal_error, False
        return error, False

    def _call_dropped(self, rpc: RPC) -> CRIError:
        """grpc cancelled a call because we closed its channel: say why."""
        if self._terminal_error is not None:
            return self._terminal_error
        return Unavailable(
            "the connection was replaced (redial) while the call was in flight; "
            "it may or may not have reached the runtime",
            code=grpc.StatusCode.UNAVAILABLE,
            method=rpc.name,
            endpoint=str(self.endpoint),
        )

    def _report_loss(self, generation: int) -> None:
        # RECONNECTING at once: calls retried after this wait for the redial
        # instead of going back to the broken channel.
        if generation == self._generation and self._state is ConnectionState.READY:
            self._loss.set()
            self._set_state(ConnectionState.RECONNECTING)

    async def _connection_lost(self, generation: int, deadline: float | None) -> bool:
        """After UNAVAILABLE: did the connection break, or did the runtime answer so?

        A channel that still says READY is asked with the probe RPC; one verdict
        serves every call that fails meanwhile (1,000 calls failing at once make
        one probe, not 1,000). No verdict within the call's deadline counts as a
        loss (the call then fails with its error).
        """
        channel, pinned = self._channel, self._pinned
        if (generation != self._generation or channel is None or pinned is None
                or self._state is not ConnectionState.READY):
            return True  # already replaced, or being redialled
        if channel.get_state() is not grpc.ChannelConnectivity.READY:
            return True
        with anyio.move_on_after(math.inf if deadline is None else deadline - time.monotonic()):
            async with self._probe_lock:
                probed = self._probed
                if (probed is not None and probed[0] == generation
                        and time.monotonic() - probed[1] < _PROBE_REUSE):
                    return probed[2]
                try:
                    await self._check(channel, pinned)
                    lost = False
                except grpc.aio.AioRpcError as exc:
                    lost = exc.code() in _CONNECTION_TROUBLE
                self._probed = (generation, time.monotonic(), lost)
                return lost
        return True

    # -- negotiation ------------------------------------------------------------

    async def _negotiate(self) -> None:
        """Start-up: find the first version that answers, retrying a dead socket."""
        policy = self.policy
        async for attempt in self._retrying(stop_before_delay(policy.connect_timeout), start=True):
            with attempt:
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
                        self._pin(version, response, channel)
                        log.info("%s: pinned CRI %s (%s)", self.endpoint, version.name,
                                 _runtime_name(response))
                        self._set_state(ConnectionState.READY)
                        return
                except BaseException:
                    await channel.close(None)
                    raise
                await channel.close(None)
                raise NoSupportedVersion(
                    "the runtime serves none of the CRI versions this client speaks",
                    attempts=attempts,
                    endpoint=str(self.endpoint),
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt_failed(self, exc: grpc.aio.AioRpcError) -> _AttemptFailed:
        """A probe answered neither OK nor UNIMPLEMENTED: retry (start-up and redial)."""
        if exc.code() not in _CONNECTION_TROUBLE:
            # Something answered: a runtime that is starting. Retry at the first step.
            self._fast_retry_from = time.monotonic()
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
            await self._abandon(call)
            raise

    def _pin(self, version: CRIVersion, response: Message, channel: grpc.aio.Channel) -> None:
        if isinstance(response, api_pb2.VersionResponse):
            self._version = response
            if self._first_version is None:
                self._first_version = response
        self._pinned = version
        old, self._channel = self._channel, channel
        if old is not None and old is not channel:
            # grpc cancels the calls still on it: unary()/stream() raise Unavailable
            # for them (read-only unary calls are sent again on the new channel).
            self._old_channels.append(old)
            if self._task_group is not None:
                self._task_group.start_soon(self._close_old_channels)
        self._generation += 1
        self._loss = anyio.Event()
        self._unary = {}
        self._streams = {}
        for rpc in RPCS.values():
            if version.has(rpc):
                table: dict[str, Any] = self._streams if rpc.server_streaming else self._unary
                table[rpc.name] = _multicallable(channel, version, rpc,
                                                 rpc.response_type.FromString)

    def _new_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.endpoint.target, options=self._options)

    # -- watching and redialling ---------------------------------------------------

    async def _run_supervisor(self) -> None:
        with self._supervisor_scope:
            await self._supervise()

    async def _supervise(self) -> None:
        while not self._state.terminal:
            await self._wait_for_loss()
            if self._state.terminal:
                return
            self._set_state(ConnectionState.RECONNECTING)
            await self._redial()

    async def _wait_for_loss(self) -> None:
        """Return when the channel leaves READY or a call reported a loss."""
        channel = self._channel
        assert channel is not None
        loss = self._loss  # made in _pin: a report before this wait is kept
        async with anyio.create_task_group() as tg:

            async def watch_channel() -> None:
                state = channel.get_state(try_to_connect=True)
                while state is grpc.ChannelConnectivity.READY:
                    try:
                        await channel.wait_for_state_change(state)
                    except BaseException:
                        await anyio.lowlevel.checkpoint()
                        raise
                    state = channel.get_state()
                log.debug("%s: channel went %s", self.endpoint, state.name)
                tg.cancel_scope.cancel()

            async def watch_reports() -> None:
                await loss.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch_channel)
            tg.start_soon(watch_reports)

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
        self.stats.redial_attempts += 1
        pinned = self._pinned
        assert pinned is not None
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
                    await self._version_lost(channel)
                except BaseException:
                    await channel.close(None)
                    raise
                return
            await channel.close(None)
            raise self._attempt_failed(exc) from None
        except BaseException:
            await channel.close(None)
            raise
        self._pin(pinned, response, channel)
        self.stats.redials += 1
        log.info("%s: reconnected after %d attempt(s); CRI %s still served",
                 self.endpoint, attempt, pinned.name)
        self._set_state(ConnectionState.READY)
        await self._announce_newer(channel, pinned)

    async def _announce_newer(self, channel: grpc.aio.Channel, pinned: CRIVersion) -> None:
        newer = self.versions[: self.versions.index(pinned)] if pinned in self.versions else ()
        served = [v.name for v in newer if await self._answers(channel, v)]
        if served:
            log.info("%s: runtime now also serves CRI %s; staying on %s",
                     self.endpoint, ", ".join(served), pinned.name)
            self._publish("newer_version_available", served=(pinned.name, *served))

    async def _answers(self, channel: grpc.aio.Channel, version: CRIVersion) -> bool:
        try:
            await self._check(channel, version)
        except grpc.aio.AioRpcError:
            return False
        return True

    async def _version_lost(self, channel: grpc.aio.Channel) -> None:
        pinned = self._pinned
        assert pinned is not None
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
        after = next((r for r in answers.values()
                      if isinstance(r, api_pb2.VersionResponse)), None)
        usable = [v for v in self.versions if v.name in answers]
        if self.on_version_loss == "renegotiate" and usable:
            self._pin(usable[0], answers[usable[0].name], channel)
            self.stats.redials += 1
            log.warning("%s: runtime dropped CRI %s; renegotiated to %s",
                        self.endpoint, pinned.name, usable[0].name)
            self._set_state(ConnectionState.READY)
            self._publish("renegotiated", served=tuple(served))
            return
        await channel.close(None)
        self._enter_terminal(
            ConnectionState.RESTART_REQUIRED,
            RestartRequired(
                pinned=pinned.name,
                served=served,
                endpoint=str(self.endpoint),
                before=self._first_version,
                after=after,
            ),
            served=tuple(served),
        )

    async def _recheck(self) -> None:
        """Version check on the current channel (after an unexpected UNIMPLEMENTED)."""
        async with self._recheck_lock:
            channel, pinned = self._channel, self._pinned
            if channel is None or pinned is None or self._state.terminal:
                return
            try:
                await self._check(channel, pinned)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                    try:
                        await self._version_lost(channel)
                    except _AttemptFailed:
                        self._report_loss(self._generation)  # the redial decides

    def _retrying(self, stop: Any, *, start: bool) -> AsyncRetrying:
        policy = self.policy
        backoff = wait_exponential_jitter(
            multiplier=policy.initial, max=policy.maximum,
            exp_base=policy.multiplier, jitter=policy.jitter,
        )

        def wait(retry_state: RetryCallState) -> float:
            # A runtime creates its socket before it answers (containerd: 20 ms to
            # ~1 s, growing with its pods): after the socket changed or the runtime
            # answered "not ready", retry at the first step, not the grown backoff.
            if time.monotonic() - self._fast_retry_from < _FRESH_SOCKET_WINDOW:
                return policy.initial
            return float(backoff(retry_state))

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
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = exc.error if isinstance(exc, _AttemptFailed) else None
        details = error.details if error is not None else ""
        cls = NotACRIRuntime if _looks_foreign(details) else ConnectFailed
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
            await anyio.sleep(seconds)
            return
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
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
        if state is ConnectionState.READY:
            self._ready.set()
        elif previous is ConnectionState.READY:
            self._ready = anyio.Event()
        quiet = state in (ConnectionState.READY, ConnectionState.CLOSED)
        level = logging.INFO if quiet else logging.WARNING
        log.log(level, "%s: %s -> %s", self.endpoint, previous.value, state.value)
        self._publish("state", **extra)

    def _enter_terminal(self, state: ConnectionState, error: CRIError, **extra: Any) -> None:
        # RESTART_REQUIRED may still become CLOSED; CLOSED is the end.
        if self._state is ConnectionState.CLOSED or self._state is state:
            return
        self._terminal_error = error
        self._set_state(state, error=error, **extra)
        self._ready.set()  # wake every waiting call: they raise the terminal error
        self._terminal.set()
        if state is ConnectionState.RESTART_REQUIRED:
            log.error("%s: %s", self.endpoint, error)
        if self._task_group is not None and state is ConnectionState.RESTART_REQUIRED:
            self._task_group.start_soon(self._close_channels)
        self._events.close()

    def _publish(self, kind: ConnectionEventKind, **extra: Any) -> None:
        self._events.publish(
            ConnectionEvent(
                kind=kind,
                state=self._state,
                endpoint=str(self.endpoint),
                pinned=self._pinned.name if self._pinned else None,
                **extra,
            )
        )

    async def _close_old_channels(self) -> None:
        channels, self._old_channels = self._old_channels, []
        await _close(channels)

    async def _close_channels(self) -> None:
        channels = [c for c in (*self._old_channels, self._channel) if c is not None]
        self._old_channels = []
        self._channel = None
        # Drop every reference to the channels: grpc.aio releases its process-wide
        # poller (bound to this event loop) only when the last one is collected.
        self._unary = {}
        self._streams = {}
        await _close(channels)


def _multicallable(channel: grpc.aio.Channel, version: CRIVersion, rpc: RPC,
                   decode: Callable[[bytes], Any]) -> Any:
    """``rpc`` on ``version``'s method path, its responses parsed by ``decode``."""
    make = channel.unary_stream if rpc.server_streaming else channel.unary_unary
    return make(version.path(rpc), request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=decode)


async def _close(channels: list[grpc.aio.Channel]) -> None:
    with anyio.CancelScope(shield=True):
        for channel in channels:
            await channel.close(None)


def _cancelled_by_grpc() -> bool:
    """Inside ``except CancelledError``: grpc cancelled the call (we closed its
    channel), not somebody cancelling the calling task (that counts in cancelling())."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


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
