"""The fake runtime's streaming server: exec, attach and port-forward on 127.0.0.1.

It speaks SPDY/3.1 (remotecommand v4 and portforward.k8s.io), as containerd's server
does, and WebSocket with remotecommand v5 first, then v4, as a server that has v5 does
(the kubelet's): a WebSocket client can end stdin alone. containerd's server has no
v5: ``FakeRuntime(websocket_protocols=WEBSOCKET_V4)`` plays it. URLs are one-time
tokens that expire after a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from aiocri.streaming._pipe import Pipe
from aiocri.streaming._spdy_conn import SpdyConnection, SpdyStream, StreamReset

__all__ = ["WEBSOCKET_PROTOCOLS", "WEBSOCKET_V4", "ServerIO", "StreamingServer"]

TOKEN_TTL = 60.0
STREAM_WAIT = 10.0  # how long the client has to create its streams
_REMOTECOMMAND = ("v4.channel.k8s.io",)
#: The WebSocket subprotocols served by default, in order of preference: v5 (stdin
#: can be closed alone), then v4 and the original channel protocol.
WEBSOCKET_PROTOCOLS: tuple[str, ...] = (
    "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
#: What containerd's streaming server serves over WebSocket: no v5.
WEBSOCKET_V4: tuple[str, ...] = ("v4.channel.k8s.io", "channel.k8s.io")
_PORTFORWARD = "portforward.k8s.io"
_STDIN, _STDOUT, _STDERR, _ERROR, _RESIZE = 0, 1, 2, 3, 4


@dataclass
class _Ticket:
    kind: str
    request: Any
    expires: float


@dataclass
class ServerIO:
    """The server's side of one exec or attach session, whatever the transport."""

    write: Callable[[str, bytes], Awaitable[None]]
    stdin: Pipe | None
    tty: bool
    size: tuple[int, int] | None = None  # (cols, rows) of the last resize
    resized: asyncio.Event = field(default_factory=asyncio.Event)

    def resize(self, cols: int, rows: int) -> None:
        self.size = (cols, rows)
        self.resized.set()


def success_status() -> bytes:
    return b'{"metadata":{},"status":"Success"}'


def exit_status(code: int, cmd: list[str]) -> bytes:
    if code == 0:
        return success_status()
    return json.dumps({
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"[{' '.join(cmd)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }, separators=(",", ":")).encode()


def internal_error(message: str) -> bytes:
    text = f"error executing command in container: {message}"
    return json.dumps({
        "metadata": {}, "status": "Failure", "message": f"Internal error occurred: {text}",
        "reason": "InternalError", "details": {"causes": [{"message": text}]}, "code": 500,
    }, separators=(",", ":")).encode()


#: ``session(kind, request, io) -> status JSON``; runs exec and attach sessions.
SessionRunner = Callable[[str, Any, ServerIO], Awaitable[bytes]]


class StreamingServer:
    """Serves one-time streaming URLs; the session logic is the runner's."""

    def __init__(self, run_session: SessionRunner) -> None:
        self._run_session = run_session
        self._tickets: dict[str, _Ticket] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: transports served; remove one to play a server that lacks it
        self.transports = {"spdy", "websocket"}
        #: WebSocket subprotocols accepted, in order of preference (the server's order
        #: decides); WEBSOCKET_V4 to play containerd, which has no v5
        self.websocket_protocols: tuple[str, ...] = WEBSOCKET_PROTOCOLS
        self.upgrades: dict[str, int] = {"spdy": 0, "websocket": 0}

    @property
    def address(self) -> str:
        if self._server is None:
            return "127.0.0.1:10010"  # nothing listens there
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tickets.clear()

    def url(self, kind: str, request: Any) -> str:
        now = time.monotonic()
        for token in [t for t, ticket in self._tickets.items() if ticket.expires < now]:
            del self._tickets[token]
        token = secrets.token_urlsafe(6)
        self._tickets[token] = _Ticket(kind, request, now + TOKEN_TTL)
        return f"http://{self.address}/{kind}/{token}"

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                          ) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        target = ([*lines[0].split(" "), "", ""])[1]
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        parts = urlsplit(target)
        kind, _, token = parts.path.strip("/").partition("/")
        ticket = self._tickets.pop(token, None)  # one use, whatever happens next
        if ticket is None or ticket.kind != kind or ticket.expires < time.monotonic():
            await _refuse(writer, 404, "Not Found")
            return
        upgrade = ",".join(headers.get("upgrade", [])).lower()
        try:
            if "websocket" in upgrade and "websocket" in self.transports:
                await self._websocket(head, reader, writer, ticket, parse_qs(parts.query))
            elif "spdy/3.1" in upgrade and "spdy" in self.transports:
                await self._spdy(writer, ticket, headers.get("x-stream-protocol-version", []))
            else:
                await _refuse(writer, 400, f"unable to upgrade: {upgrade or 'no upgrade'}")
        finally:
            writer.close()

    # -- SPDY ----------------------------------------------------------------------

    async def _spdy(self, writer: asyncio.StreamWriter, ticket: _Ticket,
                    offered: list[str]) -> None:
        supported = (_PORTFORWARD,) if ticket.kind == "portforward" else _REMOTECOMMAND
        chosen = next((p for p in offered if p in supported), None)
        if chosen is None:
            await _refuse(writer, 403, "unable to upgrade: unable to negotiate protocol",
                          {"X-Accepted-Stream-Protocol-Versions": ", ".join(supported)})
            return
        writer.write(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            f"X-Stream-Protocol-Version: {chosen}\r\n\r\n".encode()
        )
        self.upgrades["spdy"] += 1
        connection = SpdyConnection(client=False)
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        connection.start(transport)
        try:
            if ticket.kind == "portforward":
                await _spdy_portforward(connection)
            else:
                await self._spdy_remotecommand(connection, ticket)
        finally:
            await connection.aclose()

    async def _spdy_remotecommand(self, connection: SpdyConnection, ticket: _Ticket) -> None:
        request = ticket.request
        wanted = {"error"} | {k for k in ("stdin", "stdout", "stderr") if getattr(request, k)}
        if request.tty:
            wanted.add("resize")
        streams: dict[str, SpdyStream] = {}
        async with asyncio.timeout(STREAM_WAIT):
            while not wanted <= streams.keys():
                stream = await connection.accept()
                if stream is None:
                    return
                streams[stream.headers.get("streamtype", "")] = stream

        async def write(kind: str, data: bytes) -> None:
            stream = streams.get(kind)
            if stream is not None and data:
                await stream.write(data)

        io = ServerIO(write, streams["stdin"].incoming if "stdin" in streams else None,
                      request.tty)
        resizer = None
        if "resize" in streams:
            resizer = asyncio.ensure_future(_read_sizes(streams["resize"].incoming, io))
        try:
            status = await _unless_gone(self._run_session(ticket.kind, request, io),
                                        connection.closed.wait())
            if status is None:
                return
            for kind in ("stdout", "stderr"):
                if kind in streams:
                    await streams[kind].close()
            await streams["error"].write(status)
            await streams["error"].close()
        except StreamReset:
            return
        finally:
            if resizer is not None:
                resizer.cancel()

    # -- WebSocket -----------------------------------------------------------------

    async def _websocket(self, head: bytes, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter, ticket: _Ticket,
                         query: dict[str, list[str]]) -> None:
        protocols = [Subprotocol(p) for p in self.websocket_protocols]
        ws = ServerProtocol(subprotocols=protocols, max_size=None)
        ws.receive_data(head)
        request = next(e for e in ws.events_received() if isinstance(e, Request))
        response = ws.accept(request)
        if response.status_code != 101 or ws.subprotocol is None:
            response = ws.reject(403, "unable to upgrade: no supported protocol\n")
            ws.send_response(response)
            await _flush(ws, writer)
            return
        ws.send_response(response)
        await _flush(ws, writer)
        self.upgrades["websocket"] += 1
        channels = _WebSocketIO(ws, reader, writer)
        try:
            if ticket.kind == "portforward":
                ports = [int(p) for v in query.get("port", []) for p in v.split(",") if p]
                await _ws_portforward(channels, ports or list(ticket.request.port))
            else:
                await self._ws_remotecommand(channels, ticket)
        except (ConnectionError, StreamReset):
            pass
        finally:
            channels.close()

    async def _ws_remotecommand(self, channels: _WebSocketIO, ticket: _Ticket) -> None:
        request = ticket.request
        stdin = Pipe() if request.stdin else None
        io = ServerIO(lambda kind, data: channels.send(_STDOUT if kind == "stdout" else _STDERR,
                                                      data), stdin, request.tty)
        first = _STDOUT if request.stdout else _STDERR if request.stderr else _ERROR
        await channels.send(first, b"", force=True)  # the server's "ready", as the kubelet's

        def on_message(channel: int, data: bytes) -> None:
            if channel == _STDIN and stdin is not None:
                stdin.feed(data)
            elif channel == _RESIZE:
                _parse_sizes(data, io)
            elif channel == 255 and data[:1] == bytes([_STDIN]) and stdin is not None:
                stdin.feed_eof()  # v5: the client closed stdin

        pump = asyncio.ensure_future(channels.pump(on_message))
        try:
            status = await _unless_gone(self._run_session(ticket.kind, request, io),
                                        asyncio.shield(pump))
            if status is not None:
                await channels.send(_ERROR, status)
        finally:
            pump.cancel()
            if stdin is not None:
                stdin.feed_eof()


async def _unless_gone(session: Awaitable[bytes], gone: Awaitable[object]) -> bytes | None:
    """The session's status, or None when the client went away first: the session then
    ends with its connection (a runtime's command would lose its streams)."""
    run = asyncio.ensure_future(session)
    watch = asyncio.ensure_future(gone)
    try:
        await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not run.done():
            run.cancel()
        await asyncio.gather(watch, run, return_exceptions=True)
    return None if run.cancelled() else run.result()


class _WebSocketIO:
    """Channel-prefixed binary messages over the sans-I/O websockets protocol."""

    def __init__(self, ws: ServerProtocol, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._ws = ws
        self._reader = reader
        self._writer = writer

    async def send(self, channel: int, data: bytes, *, force: bool = False) -> None:
        if data or force:
            try:
                self._ws.send_binary(bytes([channel]) + data)
            except InvalidState:
                raise ConnectionError("the WebSocket is closing") from None
            await _flush(self._ws, self._writer)

    async def pump(self, on_message: Callable[[int, bytes], None]) -> None:
        while data := await self._reader.read(1 << 16):
            self._ws.receive_data(data)
            for event in self._ws.events_received():
                if not isinstance(event, Frame):
                    continue
                if event.opcode is Opcode.BINARY and event.data:
                    on_message(event.data[0], bytes(event.data[1:]))
                elif event.opcode is Opcode.CLOSE:
                    # answer the close, then end the TCP connection as a server does
                    await _flush(self._ws, self._writer)
                    self._writer.close()
                    on_message(255, bytes([_STDIN]))
                    return
            await _flush(self._ws, self._writer)
        on_message(255, bytes([_STDIN]))  # the peer is gone: stdin ended

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.send_close(1000)
            for chunk in self._ws.data_to_send():
                self._writer.write(chunk)


async def _flush(ws: ServerProtocol, writer: asyncio.StreamWriter) -> None:
    for chunk in ws.data_to_send():
        if chunk:
            writer.write(chunk)
    await writer.drain()


async def _refuse(writer: asyncio.StreamWriter, status: int, text: str,
                  extra: dict[str, str] | None = None) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    body = (text + "\n").encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (extra or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _read_sizes(pipe: Pipe, io: ServerIO) -> None:
    with contextlib.suppress(StreamReset, ConnectionError):
        async for chunk in pipe:
            _parse_sizes(chunk, io)


def _parse_sizes(data: bytes, io: ServerIO) -> None:
    decoder, text = json.JSONDecoder(), data.decode("utf-8", "replace")
    index = 0
    while index < len(text):
        try:
            size, index = decoder.raw_decode(text, index)
        except ValueError:
            return
        if isinstance(size, dict):
            io.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
        while index < len(text) and text[index].isspace():
            index += 1


# -- port forwarding: to 127.0.0.1 (the fake's pods share the host's network) ---------


def _refused_text(port: int, exc: OSError) -> bytes:
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return (f"error forwarding port {port} to pod, uid : failed to execute portforward: "
            f"dial tcp4 127.0.0.1:{port}: connect: {reason}").encode()


async def _spdy_portforward(connection: SpdyConnection) -> None:
    pairs: dict[str, dict[str, SpdyStream]] = {}
    tasks: set[asyncio.Task[None]] = set()
    try:
        while (stream := await connection.accept()) is not None:
            request = stream.headers.get("requestid", "")
            pair = pairs.setdefault(request, {})
            pair[stream.headers.get("streamtype", "")] = stream
            if {"data", "error"} <= pair.keys():
                del pairs[request]
                task = asyncio.ensure_future(_forward_spdy(pair["data"], pair["error"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _forward_spdy(data: SpdyStream, error: SpdyStream) -> None:
    try:
        port = int(data.headers.get("port", "0"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, ValueError) as exc:
        text = _refused_text(port, exc) if isinstance(exc, OSError) else b"invalid port"
        with contextlib.suppress(StreamReset):
            await error.write(text)
            await error.close()
            await data.close()
        return

    async def upstream() -> None:
        with contextlib.suppress(StreamReset, ConnectionError):
            async for chunk in data.incoming:
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    up = asyncio.ensure_future(upstream())
    try:
        while chunk := await reader.read(1 << 16):
            await data.write(chunk)
        await data.close()  # the pod's side is done: as containerd, end the stream now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(up), 1.0)
    except (StreamReset, ConnectionError):
        pass
    finally:
        up.cancel()
        writer.close()
        with contextlib.suppress(StreamReset):
            await data.close()
            await error.close()


async def _ws_portforward(channels: _WebSocketIO, ports: list[int]) -> None:
    if len(ports) != 1:
        return  # one port per session is all the client side uses
    port = ports[0]
    prefix = port.to_bytes(2, "little")
    await channels.send(0, prefix)
    await channels.send(1, prefix)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        await channels.send(1, _refused_text(port, exc))
        return

    def on_message(channel: int, data: bytes) -> None:
        if channel == 0:
            writer.write(data)
        elif channel == 255 and writer.can_write_eof():
            writer.write_eof()

    async def downstream() -> None:
        while chunk := await reader.read(1 << 16):
            await channels.send(0, chunk)

    pump = asyncio.ensure_future(channels.pump(on_message))
    down = asyncio.ensure_future(downstream())
    try:
        await asyncio.wait([pump, down], return_when=asyncio.FIRST_COMPLETED)
    finally:
        pump.cancel()
        down.cancel()
        writer.close()
