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

Dialling (fresh channels, the version check, retries, the socket watch) lives
in :mod:`aiocri._dialer`; what a probe's answer means in :mod:`aiocri._probe`;
why a connect gave up in :mod:`aiocri._classify`; the state, its announcements
and the terminal error in :mod:`aiocri._lifecycle`. This module only wires them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Literal

import anyio
import anyio.lowlevel
import grpc
import grpc.aio
from google.protobuf.message import Message

from aiocri._connection import Connection, abandon, close_channel
from aiocri._dialer import Dialed, Dialer, DialStopped, VersionGone
from aiocri._events import (
    ConnectionEvent,
    ConnectionState,
    ConnectionStats,
    EventBroadcast,
    Subscription,
)
from aiocri._lifecycle import Lifecycle
from aiocri._log import library_logger
from aiocri._observed import observe
from aiocri._policy import RedialPolicy
from aiocri._proto.runtime.v1 import api_pb2
from aiocri._rpc import RPC, RPCS
from aiocri._tasks import TaskSet
from aiocri._timeouts import MAX_TIMEOUT, check_timeout
from aiocri._verdict import Link, ProbeOutcome, Verdict, decide
from aiocri.endpoint import Endpoint, check_socket
from aiocri.errors import (
    ClientClosed,
    ConnectFailed,
    CRIError,
    DeadlineExceeded,
    InternalError,
    RestartRequired,
    Unavailable,
    UnsupportedByVersion,
    from_rpc_error,
)
from aiocri.instrument import CallRecord, Instrumentation, guarded
from aiocri.versions import CRIVersion

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ChannelManager",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionStats",
    "EventBroadcast",
    "RedialPolicy",
]

log = library_logger("aiocri.channel")

#: The largest message a client sends or accepts unless told otherwise
#: (``connect(max_message_size=...)``): 16 MiB, the kubelet's default.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Parses a response's bytes instead of the RPC's own message class (see unary()).
Decode = Callable[[bytes], Any] | None
#: A call ready to go: the live generation, its callable, the time left (None: no deadline).
_Sendable = tuple[Connection, Any, float | None]

# Read-only unary RPCs: safe to send again after the connection broke under them.
_RETRY_SAFE = frozenset(
    name
    for name, rpc in RPCS.items()
    if not rpc.server_streaming
    and (name.startswith("List") or name.endswith(("Status", "Stats", "FsInfo"))
         or name in {"Version", "RuntimeConfig"})
)

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
        instrumentation: Instrumentation | None = None,
    ) -> None:
        if on_version_loss not in ("fail", "renegotiate"):
            raise ValueError("on_version_loss must be 'fail' or 'renegotiate'")
        self.endpoint = endpoint
        self.versions = versions
        self.policy = policy or RedialPolicy()
        self.on_version_loss = on_version_loss
        self.fail_fast = fail_fast
        self.stats = ConnectionStats()
        self._life = Lifecycle(str(endpoint), self.stats,
                               events if events is not None else EventBroadcast(), on_terminal)
        self._dialer = Dialer(
            endpoint, RPCS[probe], self.policy, max_message_size, self.stats,
            lambda n, error: self._life.publish("redial_attempt", attempt=n, error=error))
        #: The READY generation (None while not READY): the call path reads only this.
        self._live: Connection | None = None
        #: The newest generation, lost or not.
        self._current: Connection | None = None
        self._connections: list[Connection] = []
        self._first_answer: api_pb2.VersionResponse | None = None
        self._answer: api_pb2.VersionResponse | None = None
        self._tasks = TaskSet(f"aiocri {endpoint}", self._crashed)
        self.instrumentation = instrumentation
        observe(self, self._life, instrumentation)  # None: the call path stays the plain one

    # -- public face -----------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._life.state

    @property
    def generation(self) -> int:
        """Grows by one on every successful connect, redial or renegotiation."""
        return self._life.generation

    @property
    def pinned(self) -> CRIVersion | None:
        """The version of the newest generation (kept after the client closes)."""
        return self._life.pinned

    @property
    def version_response(self) -> api_pb2.VersionResponse | None:
        """What the runtime last answered to the version check."""
        return self._answer

    @property
    def terminal_error(self) -> CRIError | None:
        return self._life.error

    def events(self) -> Subscription:
        """Typed events from now on; ends when the connection is terminal."""
        return self._life.subscribe()

    async def wait_terminal(self) -> CRIError:
        """Wait until RESTART_REQUIRED or CLOSED; return the error calls now get."""
        await self._life.ended.wait()
        assert self._life.error is not None
        return self._life.error

    async def open(self) -> None:
        """Dial and negotiate (retrying a dead socket), then start the supervisor."""
        if self._life.state is not ConnectionState.CONNECTING:
            raise RuntimeError("a ChannelManager is opened once")
        check_socket(self.endpoint)  # bad input fails before any dial
        try:
            dialed = await self._dialer.negotiate(self.versions)
            if self._install(dialed) is None:
                await close_channel(dialed.channel)
            else:
                log.info("%s: pinned CRI %s (%s)", self.endpoint, dialed.version.name,
                         _runtime_name(dialed.answer))
        except DialStopped:
            pass  # closed by another task meanwhile: raised below
        except BaseException:
            await self.aclose()
            raise
        if self._life.error is not None:
            await self.aclose()
            raise self._life.error
        self._tasks.spawn(self._supervise(), "supervisor")

    async def aclose(self) -> None:
        """Fail waiting, in-flight and later calls with ClientClosed; end every task;
        close every channel. Any task may call it, any number of times."""
        if self._life.state is not ConnectionState.CLOSED:
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
                    decode: Decode = None, record: CallRecord | None = None) -> Any:
        """Send one unary RPC on the pinned version; see the module docstring.

        ``decode`` parses the response's bytes instead of the RPC's own message
        class (the poller's lean list views, :mod:`aiocri._lean`).
        """
        self.stats.calls += 1
        request = rpc.request_type() if request is None else request
        deadline = _deadline(timeout)
        resent = False
        metadata = record and record.metadata
        while True:
            while (sendable := self._sendable(rpc, deadline, decode)) is None:
                await self._wait_ready(rpc, deadline)
            conn, fn, remaining = sendable
            if resent and record is not None:
                guarded(record.resent, conn.generation, default=None)
            conn.users += 1
            try:
                call = fn(request, timeout=remaining, metadata=metadata)
                try:
                    response = await call
                except grpc.aio.AioRpcError as exc:
                    failure: grpc.aio.AioRpcError | None = exc
                except asyncio.CancelledError:
                    await abandon(call)
                    if not _cancelled_by_grpc():
                        raise
                    failure = None  # grpc cancelled it: we closed its channel
                except BaseException:
                    await abandon(call)
                    raise
                else:
                    return response if decode is None else decode(response)
            finally:
                conn.release()
            error = await self._failed(conn, rpc, failure, deadline,
                                       read_only=rpc.name in _RETRY_SAFE, resent=resent)
            # A raised error's traceback keeps this frame: let it hold no channel.
            del conn, fn, call, failure, sendable
            if error is not None:
                raise error
            resent = True

    async def stream(
        self, rpc: RPC, request: Message | None, timeout: float | None,
        decode: Callable[[bytes], Any] | None = None, record: CallRecord | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Open a server-streaming RPC and yield its messages (``decode``: as in unary()).

        Streams are never reopened here: a broken stream raises, its reader decides.
        """
        self.stats.calls += 1
        request = rpc.request_type() if request is None else request
        deadline = _deadline(timeout)
        while (sendable := self._sendable(rpc, deadline, decode)) is None:
            await self._wait_ready(rpc, deadline)
        conn, fn, remaining = sendable
        conn.users += 1
        call = fn(request, timeout=remaining, metadata=record and record.metadata)
        responses = call.__aiter__()
        del fn, sendable
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
                    await abandon(call)
                    if not _cancelled_by_grpc():
                        raise
                    break
                yield item if decode is None else decode(item)
        except BaseException:
            await abandon(call)
            raise
        finally:
            conn.release()
            del call, responses
        error = await self._failed(conn, rpc, failure, deadline, read_only=False)
        del conn, failure
        raise error or self._life.error or Unavailable(
            "the connection to the runtime broke under the stream",
            code=grpc.StatusCode.UNAVAILABLE, method=rpc.name, endpoint=str(self.endpoint))

    async def _failed(self, conn: Connection, rpc: RPC, exc: grpc.aio.AioRpcError | None,
                      deadline: float | None, *, read_only: bool,
                      resent: bool = False) -> CRIError | None:
        """What a failed call raises, or None to send it again (see aiocri._verdict)."""
        failed_at = time.monotonic()
        if exc is None:
            code, link = grpc.StatusCode.CANCELLED, Link.GONE
        else:
            code = exc.code()
            self.stats.errors[code.name] += 1
            link = conn.link()
        if self._life.error is not None:
            return self._life.error
        verdict = decide(code, link, ProbeOutcome.NONE, read_only=read_only)
        if verdict is Verdict.PROBE:
            outcome = await conn.probe(deadline, code, failed_at)
            if self._life.error is not None:
                return self._life.error
            verdict = decide(code, Link.READY, outcome, read_only=read_only, resent=resent)
        endpoint = str(self.endpoint)
        in_time = deadline is None or time.monotonic() < deadline
        if verdict is Verdict.RESEND and in_time:
            return None
        if verdict in (Verdict.RAISE, Verdict.RESEND):
            assert exc is not None
            return from_rpc_error(exc, method=rpc.name, endpoint=endpoint)
        conn.declare_lost(f"{rpc.name} failed with {code.name}")
        if verdict is Verdict.LOST_RESEND:
            if not self.fail_fast and in_time:
                return None
            if exc is not None:
                return from_rpc_error(exc, method=rpc.name, endpoint=endpoint)
        return _broke_in_flight(rpc, code, endpoint, exc)

    def _sendable(self, rpc: RPC, deadline: float | None, decode: Decode) -> _Sendable | None:
        """The live generation, its callable for ``rpc`` (raw bytes with ``decode``) and the
        time left; None while none is live; raises if nothing can be sent. Not a coroutine
        (~0.2 µs less on every call, issue 19)."""
        if (conn := self._live) is None:
            return None
        table = conn.streams if rpc.server_streaming else conn.unary
        fn = table.get(rpc.name) if decode is None else conn.raw(rpc)
        remaining = None if deadline is None else deadline - time.monotonic()
        if fn is None or (remaining is not None and remaining <= 0):
            version = conn.version.name
            del conn, fn, table  # a raised error's traceback keeps this frame
            raise _unsendable(rpc, version, remaining, self.endpoint)
        return conn, fn, remaining

    async def _wait_ready(self, rpc: RPC, deadline: float | None) -> Connection:
        while (conn := self._live) is None:
            if self._life.error is not None:
                raise self._life.error
            if self.fail_fast:
                raise Unavailable(
                    f"runtime is {self._life.state.value}", code=grpc.StatusCode.UNAVAILABLE,
                    method=rpc.name, endpoint=str(self.endpoint),
                    hint="retry later, or connect with fail_fast=False to wait for the redial")
            wait = math.inf if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                raise _expired(rpc, self.endpoint, f"runtime still {self._life.state.value} "
                                                   "when the deadline expired")
            await self._life.wait_changed(wait)
        return conn

    # -- generations ---------------------------------------------------------------

    def _install(self, dialed: Dialed) -> Connection | None:
        """Make the next generation from a dial and go READY (None: already terminal)."""
        if self._life.state.terminal:
            return None  # the caller closes the channel
        self._life.generation += 1
        conn = Connection(self._life.generation, dialed.channel, dialed.version, dialed.answer,
                          check=self._dialer.check, spawn=self._tasks.spawn,
                          on_lost=self._on_lost)
        if isinstance(dialed.answer, api_pb2.VersionResponse):
            self._answer = dialed.answer
            if self._first_answer is None:
                self._first_answer = dialed.answer
        old, self._current = self._current, conn
        self._life.pinned = conn.version
        self._connections = [c for c in self._connections if not c.closed] + [conn]
        if old is not None:
            old.retire()
        self._live = conn
        self._dialer.connected()
        self._life.set(ConnectionState.READY)
        return conn

    def _on_lost(self, conn: Connection, reason: str) -> None:
        """A generation was declared lost (by a call, a probe or the channel watch)."""
        self.stats.losses += 1
        if conn is self._live:
            self._live = None
            log.info("%s: connection generation %d lost: %s", self.endpoint,
                     conn.generation, reason)
            self._life.set(ConnectionState.RECONNECTING)

    # -- supervision ---------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._life.state.terminal:
            conn = self._current
            assert conn is not None
            await self._wait_lost(conn)
            if self._life.state.terminal:
                return
            await self._dialer.pace()
            try:
                dialed = await self._dialer.redial(conn.version)
            except DialStopped:
                return
            except ConnectFailed as error:
                self._enter_terminal(ConnectionState.CLOSED, error)
                return
            if isinstance(dialed, VersionGone):
                await self._version_gone(conn.version, dialed)
            elif (new := self._install(dialed)) is None:
                await close_channel(dialed.channel)
            else:
                self.stats.redials += 1
                log.info("%s: reconnected; CRI %s still served", self.endpoint,
                         dialed.version.name)
                self._tasks.spawn(self._announce_newer(new), "newer-version check")

    async def _wait_lost(self, conn: Connection) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.watch)
            await conn.lost.wait()
            tg.cancel_scope.cancel()

    async def _version_gone(self, pinned: CRIVersion, gone: VersionGone) -> None:
        """The redialled runtime dropped the pinned version: renegotiate if allowed,
        else RESTART_REQUIRED (never switch silently)."""
        served = list(gone.answers)
        usable = [v for v in self.versions if v.name in gone.answers]
        if self.on_version_loss == "renegotiate" and usable:
            chosen = usable[0]
            if self._install(Dialed(chosen, gone.answers[chosen.name], gone.channel)) is None:
                await close_channel(gone.channel)
                return
            self.stats.redials += 1
            log.warning("%s: runtime dropped CRI %s; renegotiated to %s",
                        self.endpoint, pinned.name, chosen.name)
            self._life.publish("renegotiated", served=tuple(served))
            return
        await close_channel(gone.channel)
        after = next((r for r in gone.answers.values()
                      if isinstance(r, api_pb2.VersionResponse)), None)
        self._enter_terminal(
            ConnectionState.RESTART_REQUIRED,
            RestartRequired(pinned=pinned.name, served=served, endpoint=str(self.endpoint),
                            before=self._first_answer, after=after),
            served=tuple(served),
        )

    async def _announce_newer(self, conn: Connection) -> None:
        served = await _newer_served(self._dialer, conn, self.versions)
        if served and conn is self._live:
            log.info("%s: runtime now also serves CRI %s; staying on %s",
                     self.endpoint, ", ".join(served), conn.version.name)
            self._life.publish("newer_version_available", served=(conn.version.name, *served))

    # -- the end ------------------------------------------------------------------

    def _enter_terminal(self, state: ConnectionState, error: CRIError, **extra: Any) -> None:
        self._live = None  # before anyone waiting wakes up
        self._dialer.stop()
        if self._life.end(state, error, **extra):
            for conn in self._connections:
                conn.retire()  # closed once the calls still on them end

    def _crashed(self, exc: BaseException) -> None:
        """A background task of ours failed unexpectedly: a bug, made the terminal error."""
        error = InternalError(
            f"aiocri's background work failed ({type(exc).__name__}: {exc})",
            endpoint=str(self.endpoint),
        )
        error.__cause__ = exc
        self._enter_terminal(ConnectionState.CLOSED, error)


async def _newer_served(dialer: Dialer, conn: Connection,
                        versions: tuple[CRIVersion, ...]) -> list[str]:
    """The versions preferred to ``conn``'s that its runtime serves too."""
    pinned = conn.version
    newer = versions[: versions.index(pinned)] if pinned in versions else ()
    conn.users += 1
    try:
        return [v.name for v in newer if await dialer.serves(conn.channel, v)]
    finally:
        conn.release()


def _deadline(timeout: float | None) -> float | None:
    """The call's deadline on the monotonic clock (None: none); a wrong timeout
    raises here, before any round trip."""
    if type(timeout) is float and 0.0 <= timeout <= MAX_TIMEOUT:  # the usual: checked at once
        return time.monotonic() + timeout
    seconds = check_timeout("timeout", timeout)
    return None if seconds is None else time.monotonic() + seconds


def _unsendable(rpc: RPC, version: str, remaining: float | None,
                endpoint: Endpoint) -> CRIError:
    """Why a call is not sent: no time left, or the pinned version lacks ``rpc``."""
    if remaining is not None and remaining <= 0:
        return _expired(rpc, endpoint, "the call's deadline passed before it was sent")
    return UnsupportedByVersion(
        f"{rpc.name} is not part of CRI {version}, the version this client pinned",
        method=rpc.name, endpoint=str(endpoint))


def _broke_in_flight(rpc: RPC, code: grpc.StatusCode, endpoint: str,
                     exc: grpc.aio.AioRpcError | None) -> Unavailable:
    return Unavailable(
        "the connection to the runtime broke while the call was in flight; it may or may "
        "not have reached the runtime", code=code, method=rpc.name, endpoint=endpoint,
        details="" if exc is None else exc.details() or "",
        hint="check the object's state before sending the call again")


def _expired(rpc: RPC, endpoint: Endpoint, message: str) -> DeadlineExceeded:
    return DeadlineExceeded(message, code=grpc.StatusCode.DEADLINE_EXCEEDED, method=rpc.name,
                            endpoint=str(endpoint))


def _cancelled_by_grpc() -> bool:
    """Inside ``except CancelledError``: grpc cancelled the call (we closed its
    channel), not somebody cancelling the calling task (that counts in cancelling())."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def _runtime_name(response: Any) -> str:
    if isinstance(response, api_pb2.VersionResponse):
        return f"{response.runtime_name} {response.runtime_version}".strip()
    return "image service"
