"""A SPDY/3.1 connection as an asyncio protocol, for either side of an upgrade.

Frames are parsed in ``data_received`` and fed straight into each stream's pipe;
when a pipe is full the transport stops reading until the user catches up, so
a slow reader slows the peer down instead of filling memory. Writes go straight
to the transport (frame order is the deflate order, so encoding and writing
happen in one synchronous step). Flow control: we announce a wide window and
re-open it as the user consumes data; outgoing windows are not enforced, as the
Kubernetes servers and clients (spdystream) do not enforce them either.
"""

from __future__ import annotations

import asyncio
import collections
import itertools

from aiocri.errors import CRIError, StreamingError
from aiocri.streaming import _spdy as spdy
from aiocri.streaming._pipe import Pipe

__all__ = ["SpdyConnection", "SpdyStream", "StreamReset"]

#: The window we announce (SETTINGS_INITIAL_WINDOW_SIZE) and keep open per stream.
_WINDOW = 16 << 20
_SETTINGS_INITIAL_WINDOW_SIZE = 7
_CHUNK = 256 * 1024


def why(exc: BaseException) -> str:
    """What went wrong, without the hint (the error that quotes it brings its own)."""
    return exc.message if isinstance(exc, CRIError) else str(exc)


class StreamReset(StreamingError):
    """The stream or the whole connection ended before the operation could complete."""

    hint = "start a new session"


class SpdyStream:
    """One bidirectional SPDY stream: ``read()`` what the peer sends, ``write()`` to it."""

    def __init__(self, connection: SpdyConnection, stream_id: int, headers: spdy.HeaderBlock):
        self.id = stream_id
        self.headers = headers
        self._connection = connection
        self._unacked = 0
        self.incoming = Pipe(on_consumed=self._consumed, on_drained=connection._resume)
        self.local_closed = False

    def _consumed(self, size: int) -> None:
        self._unacked += size
        if self._unacked >= _WINDOW // 2 and not self.incoming.at_eof:
            self._connection.send(spdy.WindowUpdate(self.id, self._unacked))
            self._unacked = 0

    async def read(self, n: int = -1) -> bytes:
        return await self.incoming.read(n)

    async def write(self, data: bytes) -> None:
        if self.local_closed:
            raise StreamReset("the stream is closed for writing")
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            self._connection.send(spdy.Data(self.id, bytes(view[start : start + _CHUNK])))
            await self._connection.drain()

    async def close(self) -> None:
        """Half-close: the peer reads the end of this stream."""
        if not self.local_closed:
            self.local_closed = True
            self._connection.send(spdy.Data(self.id, b"", fin=True))
            await self._connection.drain()

    def reset(self) -> None:
        """Abandon the stream both ways."""
        if not (self.local_closed and self.incoming.at_eof):
            self.local_closed = True
            self._connection.send(spdy.RstStream(self.id, spdy.CANCEL))
            self.incoming.fail(StreamReset("the stream was reset locally"))
        self._connection._streams.pop(self.id, None)


class SpdyConnection(asyncio.Protocol):
    """A SPDY session on an upgraded HTTP/1.1 connection.

    Build it, then :meth:`start` it on the transport of that connection.
    """

    def __init__(self, *, client: bool) -> None:
        self._transport: asyncio.Transport | None = None
        self._encoder = spdy.FrameEncoder()
        self._parser = spdy.FrameParser()
        self._ids = itertools.count(1 if client else 2, 2)
        self._client = client
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._session_unacked = 0
        self._paused_reading = False
        self._full: set[Pipe] = set()
        self._paused_writing = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.error: BaseException | None = None
        self.closed = asyncio.Event()
        #: the peer sent GOAWAY: it takes no new streams
        self.going_away = False

    def start(self, transport: asyncio.Transport, initial: bytes = b"") -> None:
        """Take over ``transport`` (after the HTTP upgrade); ``initial``: bytes that
        arrived with the upgrade's answer."""
        self._transport = transport
        transport.set_protocol(self)
        self.send(spdy.Settings({_SETTINGS_INITIAL_WINDOW_SIZE: _WINDOW}))
        # SETTINGS covers streams; the connection-wide window (SPDY/3.1) opens apart
        self.send(spdy.WindowUpdate(0, _WINDOW - 65536))
        if initial:
            self.data_received(initial)
        if transport.is_closing():
            self._end(None)

    # -- writing -----------------------------------------------------------------

    def send(self, frame: spdy.Frame) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._encoder.encode(frame))

    async def drain(self) -> None:
        if self.closed.is_set():
            raise StreamReset(f"the streaming connection ended: {self.error or 'closed'}")
        if self._paused_writing:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._wake_writers(None)

    def _wake_writers(self, error: BaseException | None) -> None:
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    async def open_stream(self, headers: spdy.HeaderBlock) -> SpdyStream:
        """Create a stream (client side) and send its SYN_STREAM."""
        if self.closed.is_set():
            raise StreamReset(f"the streaming connection ended: {self.error or 'closed'}")
        stream = SpdyStream(self, next(self._ids), headers)
        self._streams[stream.id] = stream
        self.send(spdy.SynStream(stream.id, headers))
        await self.drain()
        return stream

    async def accept(self) -> SpdyStream | None:
        """The next stream the peer opened (server side); None once the connection ended."""
        if self.closed.is_set() and self._incoming.empty():
            return None
        return await self._incoming.get()

    # -- reading -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        for frame in self._parser.feed(data):  # what parsed before an error still counts
            self._handle(frame)
        if self._parser.error is not None:
            self._end(self._parser.error)

    def _resume(self) -> None:
        self._full = {pipe for pipe in self._full if not pipe.writable}
        if self._paused_reading and not self._full and self._transport is not None:
            self._paused_reading = False
            self._transport.resume_reading()

    def _handle(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.Data(stream_id, data, fin):
                self._data(stream_id, data, fin)
            case spdy.SynStream(stream_id, headers, fin):
                stream = SpdyStream(self, stream_id, headers)
                self._streams[stream_id] = stream
                self.send(spdy.SynReply(stream_id, {}))
                if fin:
                    stream.incoming.feed_eof()
                self._incoming.put_nowait(stream)
            case spdy.SynReply(stream_id, _, fin) | spdy.Headers(stream_id, _, fin):
                known = self._streams.get(stream_id)
                if known is not None and fin:
                    known.incoming.feed_eof()
            case spdy.RstStream(stream_id, status):
                ended = self._streams.pop(stream_id, None)
                if ended is not None:
                    ended.local_closed = True
                    if status == spdy.CANCEL:
                        # Kubernetes servers end a finished session by cancelling every
                        # stream: what arrived before stays readable, then the end.
                        ended.incoming.feed_eof()
                    else:
                        ended.incoming.fail(StreamReset(
                            f"the streaming server reset the stream (SPDY status {status})"))
            case spdy.Ping(ping_id):
                if (ping_id % 2 == 0) == self._client:  # the peer's ping: echo it
                    self.send(spdy.Ping(ping_id))
            case spdy.GoAway():
                self.going_away = True  # no new streams; the open ones go on
            case _:
                pass  # SETTINGS, WINDOW_UPDATE: nothing we enforce

    def _data(self, stream_id: int, data: bytes, fin: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            self._session_consumed(len(data))  # a stream we reset: drop, as spdystream does
            return
        if not stream.incoming.feed(data) and self._transport is not None:
            self._full.add(stream.incoming)
            if not self._paused_reading:
                self._paused_reading = True
                self._transport.pause_reading()
        self._session_consumed(len(data))
        if fin:
            stream.incoming.feed_eof()

    def _session_consumed(self, size: int) -> None:
        self._session_unacked += size
        if self._session_unacked >= _WINDOW // 2:
            self.send(spdy.WindowUpdate(0, self._session_unacked))
            self._session_unacked = 0

    def eof_received(self) -> bool | None:
        self._end(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    def _end(self, error: BaseException | None, *, ours: bool = False) -> None:
        if self.closed.is_set():
            return
        self.error = error
        self.closed.set()
        why = "the session was closed" if ours else (
            f"the streaming connection ended: {error or 'closed by the server'}")
        reason = StreamReset(why)
        for stream in self._streams.values():
            stream.incoming.fail(reason)
        self._incoming.put_nowait(None)
        self._wake_writers(reason)
        if self._transport is not None:
            if ours and self._transport.get_write_buffer_size():
                # close() would wait for a peer that may never read what is left
                self._transport.abort()
            else:
                self._transport.close()

    async def aclose(self) -> None:
        """End the connection and its streams; safe to call more than once."""
        if not self.closed.is_set():
            self.send(spdy.GoAway(0))
        self._end(None, ours=True)
        await asyncio.sleep(0)  # let the transport call connection_lost


