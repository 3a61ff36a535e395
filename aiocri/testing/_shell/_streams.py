"""A command's streams: stdin that can be put back, pipes between stages, writers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeAlias

Writer: TypeAlias = Callable[[bytes], Awaitable[None]]


class BrokenPipe(Exception):
    """A write into a pipe whose reader has finished (SIGPIPE in a real shell)."""


class Input:
    """A command's stdin: the chunks of a stream, with room to put some back."""

    def __init__(self, source: AsyncIterator[bytes] | None = None, data: bytes = b"") -> None:
        self._source, self._pending = source, data

    def __aiter__(self) -> Input:
        return self

    async def __anext__(self) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        while self._source is not None:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self._source = None
                break
            if chunk:
                return chunk
        raise StopAsyncIteration

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class Pipe:
    """A bounded queue between two pipeline stages."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        self._abandoned = self._closed = False

    async def write(self, data: bytes) -> None:
        if self._abandoned:
            raise BrokenPipe
        if data:
            await self._queue.put(data)

    def close(self) -> None:
        """The writer is done. Never waits, so it is safe while being cancelled."""
        self._closed = True
        if not self._queue.full():  # a full queue: the reader sees _closed once it drains
            self._queue.put_nowait(None)

    def abandon(self) -> None:
        """The reader is done: drop what waits, so a blocked writer wakes and fails."""
        self._abandoned = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def chunks(self) -> AsyncIterator[bytes]:
        while not (self._closed and self._queue.empty()):
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk


async def discard(data: bytes) -> None:
    del data


Fds: TypeAlias = dict[int, "Input | Writer"]


def reader(fds: Fds) -> Input:
    stream = fds.get(0)
    return stream if isinstance(stream, Input) else Input()


def writer(fds: Fds, fd: int) -> Writer:
    stream = fds.get(fd)
    return discard if stream is None or isinstance(stream, Input) else stream
