"""The two ways to carry a remote command's channels: SPDY streams, WebSocket messages.

Both present the same small surface to the session: pipes for what the runtime
writes (stdout, stderr, the status), and methods for what the user writes
(stdin, its end, terminal sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Literal, Protocol

from aiocri.errors import StreamingError, UpgradeRefused
from aiocri.streaming._pipe import Pipe
from aiocri.streaming._spdy_conn import SpdyConnection, SpdyStream, StreamReset, why
from aiocri.streaming._upgrade import netloc, split_url, upgrade_spdy

if TYPE_CHECKING:  # websockets is imported on first use: most sessions are SPDY
    from websockets.asyncio.client import ClientConnection

__all__ = ["Channels", "TransportName", "close_websocket", "open_spdy", "open_websocket"]

#: The ``transport=`` of a streaming session: ``"spdy"`` (SPDY/3.1), ``"websocket"``
#: (remotecommand v5, else v4), or ``"auto"``: SPDY, then WebSocket when the server
#: refuses it.
TransportName = Literal["auto", "spdy", "websocket"]

REMOTECOMMAND_V4 = "v4.channel.k8s.io"
REMOTECOMMAND_V5 = "v5.channel.k8s.io"
_STDIN, _STDOUT, _STDERR, _ERROR, _RESIZE = 0, 1, 2, 3, 4
_CLOSE = 255


class Channels(Protocol):
    """What a session needs from its transport."""

    name: str
    stdout: Pipe | None
    stderr: Pipe | None
    error: Pipe
    can_close_stdin: bool

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def write_resize(self, data: bytes) -> None: ...
    async def aclose(self) -> None: ...


def _lost(exc: BaseException) -> StreamingError:
    return StreamingError(f"the streaming connection broke: {why(exc)}")


class SpdyChannels:
    """remotecommand v4 over SPDY/3.1: one stream per channel."""

    can_close_stdin = True

    def __init__(self, connection: SpdyConnection, streams: dict[str, SpdyStream]) -> None:
        self.name = "spdy"
        self._connection = connection
        self._streams = streams
        self.error = streams["error"].incoming
        self.stdout = streams["stdout"].incoming if "stdout" in streams else None
        self.stderr = streams["stderr"].incoming if "stderr" in streams else None

    async def _write(self, kind: str, data: bytes) -> None:
        stream = self._streams.get(kind)
        if stream is None:
            raise StreamingError(f"this session has no {kind} channel")
        try:
            await stream.write(data)
        except StreamReset as exc:
            raise _lost(exc) from None

    async def write_stdin(self, data: bytes) -> None:
        await self._write("stdin", data)

    async def close_stdin(self) -> None:
        stream = self._streams.get("stdin")
        if stream is not None:
            with contextlib.suppress(StreamReset):
                await stream.close()

    async def write_resize(self, data: bytes) -> None:
        await self._write("resize", data)

    async def aclose(self) -> None:
        await self._connection.aclose()


async def open_spdy(url: str, kinds: list[str]) -> SpdyChannels:
    """Upgrade ``url`` and create one stream per channel kind (``error`` first)."""
    transport, initial, _ = await upgrade_spdy(url, [REMOTECOMMAND_V4])
    connection = SpdyConnection(client=True)
    connection.start(transport, initial)
    try:
        streams = {}
        for kind in ["error", *kinds]:
            streams[kind] = await connection.open_stream({"streamtype": kind})
        # the server only reads our end of the error stream: close it at once
        await streams["error"].close()
    except BaseException:  # failed, timed out or cancelled half way: no socket left
        await asyncio.shield(connection.aclose())
        raise
    return SpdyChannels(connection, streams)


class WebSocketChannels:
    """remotecommand over one WebSocket: a channel byte in front of each message."""

    def __init__(self, connection: ClientConnection, kinds: list[str]) -> None:
        self._connection = connection
        self.name = f"websocket/{connection.subprotocol}"
        self.can_close_stdin = connection.subprotocol == REMOTECOMMAND_V5
        self.error = Pipe()
        self.stdout = Pipe() if "stdout" in kinds else None
        self.stderr = Pipe() if "stderr" in kinds else None
        self._pipes = {_STDOUT: self.stdout, _STDERR: self.stderr, _ERROR: self.error}
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        import websockets

        error: BaseException | None = None
        try:
            async for message in self._connection:
                if isinstance(message, str) or not message:
                    continue
                pipe = self._pipes.get(message[0])
                if pipe is not None and len(message) > 1:
                    pipe.feed(message[1:])
                    await pipe.wait_writable()
        except websockets.ConnectionClosedError as exc:
            error = _lost(exc)
        except Exception as exc:
            error = _lost(exc)
        except asyncio.CancelledError:  # aclose(): readers learn it, as over SPDY
            error = StreamReset("the session was closed")
            raise
        finally:
            for pipe in self._pipes.values():
                if pipe is not None:
                    if error is not None and (pipe is not self.error
                                              or isinstance(error, StreamReset)):
                        pipe.fail(error)
                    else:
                        pipe.feed_eof()

    async def _send(self, message: bytes) -> None:
        import websockets

        try:
            await self._connection.send(message)
        except websockets.ConnectionClosed as exc:
            raise _lost(exc) from None

    async def write_stdin(self, data: bytes) -> None:
        if data:
            await self._send(bytes([_STDIN]) + data)

    async def close_stdin(self) -> None:
        if not self.can_close_stdin:
            raise StreamingError(
                f"stdin cannot be closed alone over {self.name}: the protocol has no signal "
                "for it",
                hint="use transport='spdy' (or 'auto') when the command must see the end of stdin",
            )
        await self._send(bytes([_CLOSE, _STDIN]))

    async def write_resize(self, data: bytes) -> None:
        await self._send(bytes([_RESIZE]) + data)

    async def aclose(self) -> None:
        self._pump_task.cancel()  # first: a cancelled close() must not leave it running
        try:
            await close_websocket(self._connection)
        finally:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump_task
            closed = StreamReset("the session was closed")
            for pipe in self._pipes.values():  # a pump cancelled before it ran failed none
                if pipe is not None:
                    pipe.fail(closed)


#: How long a closing handshake may take before the socket is dropped: a peer stuck
#: behind data nobody reads would otherwise hold us for the library's close_timeout.
_CLOSE_GRACE = 0.25


async def close_websocket(connection: ClientConnection) -> None:
    """Close ``connection``: with the handshake if the peer answers soon, else abruptly."""
    try:
        async with asyncio.timeout(_CLOSE_GRACE):
            await connection.close()
    except Exception:
        connection.transport.abort()
    except BaseException:  # cancelled: drop the socket, then let the cancellation go on
        connection.transport.abort()
        raise


async def open_websocket(url: str, kinds: list[str], *, protocols: list[str] | None = None
                         ) -> WebSocketChannels:
    """Open ``url`` as a WebSocket offering remotecommand v5 then v4."""
    import websockets
    from websockets.asyncio.client import connect as ws_connect

    host, port, path, tls = split_url(url)
    uri = f"{'wss' if tls else 'ws'}://{netloc(host, port)}{path}"
    offered = protocols or [REMOTECOMMAND_V5, REMOTECOMMAND_V4]
    try:
        connection = await ws_connect(
            uri,
            subprotocols=offered,  # type: ignore[arg-type]
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=None,
            user_agent_header="aiocri",
            close_timeout=2,
            proxy=None,  # the streaming server is the runtime's own, never behind a proxy
        )
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
        raise UpgradeRefused(
            f"the streaming server refused the WebSocket upgrade: HTTP {status}"
            + (f": {body.strip()}" if body.strip() else ""),
            status=status,
            body=body,
        ) from None
    except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise StreamingError(f"cannot open a WebSocket to the streaming server: {exc}",
                             hint="the runtime may have restarted (its URLs die with it); "
                             "start a new session") from None
    return WebSocketChannels(connection, kinds)
