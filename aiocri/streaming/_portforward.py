"""Port forwarding into a pod: one connection at a time, or a local listener."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from aiocri.errors import StreamingError, UpgradeRefused
from aiocri.streaming._pipe import Pipe, as_bytes
from aiocri.streaming._spdy_conn import SpdyConnection, StreamReset, why
from aiocri.streaming._transports import REMOTECOMMAND_V4, TransportName, close_websocket
from aiocri.streaming._upgrade import netloc, split_url, upgrade_spdy

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["PortConnection", "PortForwardSession", "PortForwarder"]

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
#: How long to wait for the error channel's words once the data channel ended.
_ERROR_GRACE = 1.0


def check_port(port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"port must be an integer in 1..65535, not {port!r}")
    return port


class PortConnection:
    """One forwarded TCP connection: ``read()``/``write()``, ``close_write()``, ``aclose()``.

    ``read()`` returns ``b""`` when the pod's side closed cleanly and raises
    :class:`~aiocri.StreamingError` with the runtime's words when forwarding failed
    (for instance, nothing listens on the port).
    """

    def __init__(self, port: int, data: Pipe, errors: Pipe,
                 send: Callable[[bytes], Awaitable[None]],
                 end: Callable[[], Awaitable[None]] | None,
                 close: Callable[[], Awaitable[None]]) -> None:
        self.port = port
        self._data = data
        self._errors = errors
        self._send = send
        self._end = end
        self._close = close
        self._checked = False
        #: bytes written so far
        self.bytes_sent = 0
        #: the transport it runs over ("spdy" or "websocket"; set by its opener)
        self.transport = ""

    async def read(self, n: int = -1) -> bytes:
        try:
            chunk = await self._data.read(n)
        except (StreamReset, ConnectionError) as exc:
            await self._raise_error()
            raise StreamingError(f"the forwarded connection broke: {why(exc)}") from None
        if not chunk:
            await self._raise_error()
        return chunk

    async def _raise_error(self) -> None:
        if self._checked:
            return
        self._checked = True
        try:
            text = await asyncio.wait_for(self._errors.readall(), _ERROR_GRACE)
        except (TimeoutError, StreamReset, ConnectionError):
            return
        if text.strip():
            raise StreamingError(
                f"port {self.port}: {text.decode('utf-8', 'replace').strip()}",
                hint="check that something in the pod listens on that port",
            )

    async def write(self, data: bytes) -> None:
        from websockets import ConnectionClosed

        chunk = as_bytes(data)
        try:
            await self._send(chunk)
            self.bytes_sent += len(chunk)
        except (StreamReset, ConnectionError, ConnectionClosed) as exc:
            raise StreamingError(f"the forwarded connection broke: {why(exc)}") from None

    @property
    def bytes_received(self) -> int:
        """Bytes received from the pod so far (read or not)."""
        return self._data.total

    @property
    def can_close_write(self) -> bool:
        return self._end is not None

    async def close_write(self) -> None:
        """Half-close: the pod's side reads EOF. Over WebSocket there is no such signal:
        nothing is sent, and the connection ends when either side closes it."""
        if self._end is not None:
            with contextlib.suppress(StreamReset, ConnectionError):
                await self._end()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


class PortForwardSession:
    """One upgraded connection to the runtime's port-forward URL, many TCP connections.

    SPDY carries any number of connections to any ports of the pod on one session;
    WebSocket carries one, to the port the session was opened for.
    """

    def __init__(self, spdy: SpdyConnection | None, ws: ClientConnection | None,
                 ws_port: int = 0) -> None:
        self._spdy = spdy
        self._ws = ws
        self._ws_port = ws_port
        self._request_ids = itertools.count()

    @property
    def transport(self) -> str:
        return "spdy" if self._spdy is not None else "websocket"

    @classmethod
    async def open(cls, url: str, transport: TransportName, port: int) -> PortForwardSession:
        """Upgrade ``url`` with ``transport`` (``spdy`` or ``websocket``, not ``auto``:
        a refused URL is spent, so falling back needs a new one from the runtime)."""
        if transport == "spdy":
            tcp, initial, _ = await upgrade_spdy(url, [PORTFORWARD_PROTOCOL])
            connection = SpdyConnection(client=True)
            connection.start(tcp, initial)
            return cls(connection, None)
        if transport != "websocket":
            raise ValueError(f"transport must be 'spdy' or 'websocket', not {transport!r}")
        import websockets

        host, tcp_port, path, tls = split_url(url)
        sep = "&" if "?" in path else "?"
        uri = f"{'wss' if tls else 'ws'}://{netloc(host, tcp_port)}{path}{sep}port={port}"
        try:
            ws = await websockets.connect(
                uri, subprotocols=[REMOTECOMMAND_V4],  # type: ignore[list-item]
                compression=None, max_size=None, ping_interval=None, open_timeout=None,
                close_timeout=2, proxy=None,
            )
        except websockets.InvalidStatus as exc:
            raise UpgradeRefused(
                f"the streaming server refused the WebSocket upgrade: HTTP "
                f"{exc.response.status_code}", status=exc.response.status_code) from None
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise StreamingError(
                f"cannot open a WebSocket to the streaming server: {exc}") from None
        return cls(None, ws, port)

    async def connect(self, port: int) -> PortConnection:
        """A new connection to ``port`` inside the pod."""
        check_port(port)
        if self._spdy is not None:
            return await self._connect_spdy(port)
        if port != self._ws_port or self._ws is None:
            raise StreamingError("a WebSocket port-forward session carries one connection, "
                                 "to the port it was opened for")
        ws, self._ws = self._ws, None
        return _ws_connection(ws, port)

    async def _connect_spdy(self, port: int) -> PortConnection:
        assert self._spdy is not None
        request = str(next(self._request_ids))
        headers = {"port": str(port), "requestid": request}
        error = await self._spdy.open_stream({"streamtype": "error", **headers})
        try:
            await error.close()  # we never write to it
            data = await self._spdy.open_stream({"streamtype": "data", **headers})
        except BaseException:
            error.reset()
            raise

        async def close() -> None:
            data.reset()
            error.reset()

        return PortConnection(port, data.incoming, error.incoming, data.write, data.close, close)

    async def aclose(self) -> None:
        if self._spdy is not None:
            await self._spdy.aclose()
        if self._ws is not None:
            await close_websocket(self._ws)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def _ws_connection(ws: ClientConnection, port: int) -> PortConnection:
    import websockets

    data, errors = Pipe(), Pipe()
    pipes = {0: data, 1: errors}

    async def pump() -> None:
        seen: set[int] = set()
        try:
            async for message in ws:
                if isinstance(message, str) or not message:
                    continue
                pipe = pipes.get(message[0])
                if pipe is None:
                    continue
                body = message[1:]
                if message[0] not in seen:  # each channel starts with the port (2 bytes)
                    seen.add(message[0])
                    body = body[2:]
                if body:
                    pipe.feed(body)
                    await pipe.wait_writable()
        except websockets.ConnectionClosedOK:
            pass
        except websockets.ConnectionClosed as exc:
            data.fail(StreamingError(f"the forwarded connection broke: {why(exc)}"))
        finally:
            data.feed_eof()
            errors.feed_eof()

    task = asyncio.get_running_loop().create_task(pump())

    async def send(chunk: bytes) -> None:
        if chunk:
            await ws.send(b"\x00" + chunk)

    async def close() -> None:
        task.cancel()  # first: a pump stuck on a full pipe must not outlive the close
        try:
            await close_websocket(ws)
        finally:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return PortConnection(port, data, errors, send, None, close)


class PortForwarder:
    """Listens on a local port and forwards each accepted connection into the pod.

    Each connection gets its own session (and so its own TCP connection to the
    streaming server): a local client that stops reading slows only itself down.
    """

    def __init__(self, open_session: Callable[[], Awaitable[PortForwardSession]],
                 remote_port: int, host: str, local_port: int) -> None:
        self._open_session = open_session
        self.remote_port = check_port(remote_port)
        self.host = host
        self._requested = local_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: connections served, and those that failed (with the last error)
        self.connections = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        #: bytes forwarded to the pod and back, over connections that ended
        self.bytes_sent = 0
        self.bytes_received = 0
        #: the transport asked for ("auto", "spdy", "websocket"; "" when made directly),
        #: then that of the last session opened
        self.transport = ""

    @property
    def port(self) -> int:
        """The local port (useful when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the forwarder is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self._requested)
        except OSError as exc:
            raise StreamingError(
                f"cannot listen on {self.host}:{self._requested}: {exc.strerror or exc}",
                hint="choose another local port (0: any free one) or address") from None

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._pipe(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        session: PortForwardSession | None = None
        remote: PortConnection | None = None
        try:
            session = await self._open_session()
            self.transport = session.transport
            remote = await session.connect(self.remote_port)
            await _splice(reader, writer, remote)
        except Exception as exc:  # one connection's failure must not stop the listener
            self.failures += 1
            self.last_error = exc
        finally:
            writer.close()
            if remote is not None:  # over WebSocket the connection owns the socket
                self.bytes_sent += remote.bytes_sent
                self.bytes_received += remote.bytes_received
                await remote.aclose()
            if session is not None:
                await session.aclose()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


#: Over WebSocket the pod's side cannot be told that ours ended: after our EOF the
#: connection lives until the pod closes it or stays silent this long.
_IDLE_AFTER_EOF = 2.0


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  remote: PortConnection) -> None:
    """Copy both ways until the pod's side ends (as kubectl does), or either side fails."""
    progress = _Progress()

    async def upstream() -> None:
        while chunk := await reader.read(1 << 16):
            await remote.write(chunk)
        await remote.close_write()

    async def downstream() -> None:
        while True:
            progress.waiting_for_pod = True
            chunk = await remote.read()
            progress.waiting_for_pod = False
            if not chunk:
                break
            progress.chunks += 1
            writer.write(chunk)
            await writer.drain()  # a slow local reader is not a silent pod
        if writer.can_write_eof():
            writer.write_eof()

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if up.done() and (failure := up.exception()) is not None:
            raise failure  # the local side broke (or the pod's refused our bytes)
        if not down.done():  # ours ended first
            await _until_silent(down, progress, remote.can_close_write)
        if down.done():
            down.result()  # the pod's side broke: its error
    finally:
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


class _Progress:
    """What the pod-to-local copy is doing, for the idle rule."""

    def __init__(self) -> None:
        self.chunks = 0
        self.waiting_for_pod = False


async def _until_silent(down: asyncio.Future[None], progress: _Progress,
                        pod_learns_of_our_end: bool) -> None:
    """Wait for the pod's side to end. Over WebSocket it cannot learn that ours did: give
    up once it sent nothing for a while (time spent writing to a slow local reader does
    not count)."""
    if pod_learns_of_our_end:
        await asyncio.wait({down})
        return
    while True:
        seen = progress.chunks
        done, _ = await asyncio.wait({down}, timeout=_IDLE_AFTER_EOF)
        if done or (progress.chunks == seen and progress.waiting_for_pod):
            return
