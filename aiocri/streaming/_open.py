"""Starting sessions from a client: validate, ask the runtime for a URL, upgrade it."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio

from aiocri import api
from aiocri._timeouts import check_id
from aiocri.errors import ClientClosed, StreamingError, UpgradeRefused
from aiocri.instrument import SessionObserver
from aiocri.streaming._portforward import (
    PortConnection,
    PortForwarder,
    PortForwardSession,
    check_port,
)
from aiocri.streaming._session import StreamSession, open_channels
from aiocri.streaming._transports import TransportName

if TYPE_CHECKING:
    from aiocri.services import RuntimeService

__all__ = ["Opening", "attach_session", "exec_session", "forward_port", "port_connection"]

_TRANSPORTS = ("auto", "spdy", "websocket")


class _Closable(Protocol):
    async def aclose(self) -> None: ...


R = TypeVar("R", bound=_Closable)


class Opening(Generic[R]):
    """``await`` it for the resource, or ``async with`` it to close the resource after."""

    def __init__(self, start: Callable[[], Awaitable[R]]) -> None:
        self._start = start
        self._resource: R | None = None
        self._owner: weakref.WeakSet[Any] | None = None
        self._owner_closed: Callable[[], bool] = lambda: False
        self._observer: SessionObserver | None = None

    def owned_by(self, owner: weakref.WeakSet[Any], closed: Callable[[], bool]) -> Opening[R]:
        """Record the opened resource in ``owner`` (the client closes them with itself);
        ``closed()`` tells whether the client is closed already."""
        self._owner = owner
        self._owner_closed = closed
        return self

    def observed_by(self, observer: SessionObserver | None) -> Opening[R]:
        """Tell ``observer`` when the resource opens and closes (with its byte counts)."""
        self._observer = observer
        return self

    async def _open(self) -> R:
        self._refuse_if_closed()
        resource = await self._start()
        if self._owner_closed():  # closed while opening: the client's close missed it
            with anyio.CancelScope(shield=True):
                await resource.aclose()
            self._refuse_if_closed()
        if self._owner is not None:
            self._owner.add(resource)
        if self._observer is not None:
            _observe(resource, self._observer)
        return resource

    def _refuse_if_closed(self) -> None:
        if self._owner_closed():
            raise ClientClosed("the client is closed; no session was opened")

    def __await__(self) -> Generator[Any, None, R]:
        return self._open().__await__()

    async def __aenter__(self) -> R:
        self._resource = await self._open()
        return self._resource

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._resource is not None:
            with anyio.CancelScope(shield=True):  # a cancelled owner still closes it
                await self._resource.aclose()


def _observe(resource: Any, observer: SessionObserver) -> None:
    """Report the open now and the close once, whoever closes the resource."""
    observer.opened(str(getattr(resource, "transport", "")).split("/")[0] or "unknown")
    closing = resource.aclose
    reported = False

    async def aclose() -> None:
        nonlocal reported
        try:
            await closing()
        finally:
            if not reported:
                reported = True
                observer.closed(resource.bytes_sent, resource.bytes_received)

    resource.aclose = aclose


def _check_flags(transport: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")
    if not (stdin or stdout or stderr):
        raise ValueError("one of stdin, stdout or stderr must be requested")
    if tty and stderr:
        raise ValueError("a tty session has no separate stderr (pass stderr=False)")


def _kinds(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> list[str]:
    wanted = (("stdin", stdin), ("stdout", stdout), ("stderr", stderr), ("resize", tty))
    return [kind for kind, on in wanted if on]


async def _bounded(coro: Awaitable[R], timeout: float | None, what: str) -> R:
    try:
        async with asyncio.timeout(timeout):
            return await coro
    except TimeoutError:
        raise StreamingError(f"{what} did not start within {timeout} s",
                             hint="the runtime or its streaming server is overloaded or stuck; "
                             "raise timeout= or check the runtime") from None


def exec_session(
    runtime: RuntimeService, container_id: str, cmd: Sequence[str], *, stdin: bool,
    stdout: bool, stderr: bool | None, tty: bool, transport: TransportName,
    timeout: float | None,
) -> Opening[StreamSession]:
    check_id("container_id", container_id)
    args = list(cmd) if isinstance(cmd, (list, tuple)) else None  # an iterator: used up
    if not args or not all(isinstance(a, str) for a in args):
        raise TypeError("cmd must be a non-empty list of str, e.g. ['sh', '-c', 'ls /']")
    err = (not tty) if stderr is None else stderr
    _check_flags(transport, stdin, stdout, err, tty)
    request = api.ExecRequest(container_id=container_id, cmd=args, stdin=stdin,
                              stdout=stdout, stderr=err, tty=tty)

    async def new_url() -> str:
        return (await runtime.exec(request)).url

    async def start() -> StreamSession:
        channels = await _bounded(
            open_channels(new_url, _kinds(stdin, stdout, err, tty), transport), timeout, "exec"
        )
        return StreamSession(channels, stdin=stdin, tty=tty)

    return Opening(start)


def attach_session(
    runtime: RuntimeService, container_id: str, *, stdin: bool, stdout: bool,
    stderr: bool | None, tty: bool, transport: TransportName, timeout: float | None,
) -> Opening[StreamSession]:
    check_id("container_id", container_id)
    err = (not tty) if stderr is None else stderr
    _check_flags(transport, stdin, stdout, err, tty)
    request = api.AttachRequest(container_id=container_id, stdin=stdin, stdout=stdout,
                                stderr=err, tty=tty)

    async def new_url() -> str:
        return (await runtime.attach(request)).url

    async def start() -> StreamSession:
        channels = await _bounded(
            open_channels(new_url, _kinds(stdin, stdout, err, tty), transport), timeout,
            "attach"
        )
        return StreamSession(channels, stdin=stdin, tty=tty)

    return Opening(start)


async def open_port_session(
    runtime: RuntimeService, pod_id: str, port: int, transport: TransportName
) -> PortForwardSession:
    request = api.PortForwardRequest(pod_sandbox_id=pod_id, port=[port])
    first: TransportName = "websocket" if transport == "websocket" else "spdy"
    url = (await runtime.port_forward(request)).url
    try:
        return await PortForwardSession.open(url, first, port)
    except UpgradeRefused:
        if transport != "auto":
            raise
    url = (await runtime.port_forward(request)).url  # the refused one is spent
    return await PortForwardSession.open(url, "websocket", port)


def port_connection(
    runtime: RuntimeService, pod_id: str, port: int, *, transport: TransportName,
    timeout: float | None,
) -> Opening[PortConnection]:
    check_id("pod_id", pod_id)
    check_port(port)
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")

    async def start() -> PortConnection:
        async def connect() -> PortConnection:
            session = await open_port_session(runtime, pod_id, port, transport)
            try:
                connection = await session.connect(port)
            except BaseException:
                await session.aclose()
                raise
            connection.transport = session.transport
            closing = connection.aclose

            async def close_both() -> None:  # the session lives as long as its connection
                await closing()
                await session.aclose()

            connection.aclose = close_both  # type: ignore[method-assign]
            return connection

        return await _bounded(connect(), timeout, "port-forward")

    return Opening(start)


def forward_port(
    runtime: RuntimeService, pod_id: str, remote_port: int, *, local_port: int, host: str,
    transport: TransportName, timeout: float | None,
) -> Opening[PortForwarder]:
    check_id("pod_id", pod_id)
    check_port(remote_port)
    if local_port != 0:
        check_port(local_port)
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(_TRANSPORTS)}, not {transport!r}")

    async def new_session() -> PortForwardSession:
        return await _bounded(open_port_session(runtime, pod_id, remote_port, transport),
                              timeout, "port-forward")

    async def start() -> PortForwarder:
        forwarder = PortForwarder(new_session, remote_port, host, local_port)
        forwarder.transport = transport  # until its first session says which it got
        await forwarder.start()
        return forwarder

    return Opening(start)
