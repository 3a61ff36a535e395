"""A bounded byte pipe: a transport's reader task feeds it, the user reads it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

__all__ = ["Pipe", "as_bytes"]

#: Bytes a pipe holds before its feeder waits (the transport then stops reading
#: the socket, so a slow reader slows the runtime instead of filling memory).
DEFAULT_LIMIT = 4 << 20


def as_bytes(data: object) -> bytes:
    """``data`` as bytes for a write; an int or a str is a mistake (``bytes(5)`` is five
    NULs), so only bytes-like values pass."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"data must be bytes-like, not {type(data).__name__}"
                    + (" (encode it first)" if isinstance(data, str) else ""))


class Pipe:
    """Output of one channel (stdout, stderr, a forwarded connection).

    Read with ``await pipe.read()`` (``b""`` at the end) or ``async for chunk in pipe``.
    """

    def __init__(
        self, *, limit: int = DEFAULT_LIMIT, on_consumed: Callable[[int], None] | None = None,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._eof = False
        self._error: BaseException | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._on_consumed = on_consumed
        #: called when a full pipe has room again (a transport resumes reading)
        self.on_drained = on_drained
        self._full_since = 0.0
        self._last_read = 0.0  # 0: never read
        #: bytes fed in so far (what the transport received for this channel)
        self.total = 0

    # -- the transport's side ----------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Queue ``data``; False once the pipe is full (the feeder should pause)."""
        if data and not self._eof:
            self._chunks.append(data)
            self._size += len(data)
            self.total += len(data)
            self._readable.set()
            if self._size >= self._limit:
                if self._writable.is_set():
                    self._full_since = time.monotonic()
                self._writable.clear()
                return False
        return True

    def stuck_for(self) -> float:
        """Seconds the pipe has been full without ever being read (0 otherwise).

        A reader that has read once may just be slow: only a pipe nobody has touched
        counts as forgotten."""
        if self._writable.is_set() or self._last_read:
            return 0.0
        return time.monotonic() - self._full_since

    async def wait_writable(self) -> None:
        await self._writable.wait()

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.set()
        if not self._writable.is_set():
            self._writable.set()
            if self.on_drained is not None:
                self.on_drained()

    def fail(self, error: BaseException) -> None:
        """End the pipe with ``error`` (raised to readers once buffered bytes are read)."""
        if not self._eof:
            self._error = error
            self.feed_eof()

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    # -- the reader's side --------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (any available amount when ``n < 0``); ``b""`` at the end."""
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n == 0:
            return b""
        while not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if 0 <= n < len(chunk):
            self._chunks.appendleft(chunk[n:])
            chunk = chunk[:n]
        self._consumed(len(chunk))
        return chunk

    async def readall(self) -> bytes:
        """Everything up to the end of the channel."""
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    def _consumed(self, size: int) -> None:
        self._last_read = time.monotonic()
        self._size -= size
        if self._size < self._limit and not self._writable.is_set():
            self._writable.set()
            if self.on_drained is not None:
                self.on_drained()
        if self._on_consumed is not None:
            self._on_consumed(size)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk
