"""Exec and attach sessions: stdin, stdout, stderr, terminal size and the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from aiocri.errors import StreamingError, UpgradeRefused
from aiocri.streaming._pipe import Pipe, as_bytes
from aiocri.streaming._spdy_conn import StreamReset, why
from aiocri.streaming._status import exit_code_of
from aiocri.streaming._transports import Channels, TransportName, open_spdy, open_websocket

__all__ = ["ExecOutput", "Stdin", "StreamSession", "open_channels"]

#: A full output channel nobody read for this long makes wait() fail instead of hang.
STALL_LIMIT = 2.0
_STALL_CHECK = 0.5
_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class ExecOutput:
    """Everything a finished command wrote, and how it exited."""

    stdout: bytes
    stderr: bytes
    exit_code: int


async def open_channels(
    new_url: Callable[[], Awaitable[str]], kinds: list[str], transport: TransportName
) -> Channels:
    """Connect with ``transport``; ``auto`` takes SPDY (which can end stdin alone on
    every runtime) and falls back to WebSocket when the server refuses SPDY."""
    if transport == "websocket":
        return await open_websocket(await new_url(), kinds)
    if transport not in ("spdy", "auto"):
        raise ValueError(f"transport must be 'auto', 'spdy' or 'websocket', not {transport!r}")
    try:
        return await open_spdy(await new_url(), kinds)
    except UpgradeRefused:
        if transport == "spdy":
            raise
    # the refused URL is spent: ask the runtime for another one
    return await open_websocket(await new_url(), kinds)


class Stdin:
    """The command's standard input: ``await write(data)``, then ``await close()``."""

    def __init__(self, channels: Channels) -> None:
        self._channels = channels
        self.closed = False
        #: bytes written so far
        self.sent = 0

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise StreamingError("stdin is already closed", hint="write before close()")
        chunk = as_bytes(data)
        await self._channels.write_stdin(chunk)
        self.sent += len(chunk)

    async def close(self) -> None:
        """Send the end of input (the command reads EOF); idempotent."""
        if not self.closed:
            await self._channels.close_stdin()
            self.closed = True  # not before: a transport that cannot close leaves it open

    @property
    def can_close(self) -> bool:
        """Whether the transport can end stdin alone (SPDY and WebSocket v5 can)."""
        return self._channels.can_close_stdin


class StreamSession:
    """A running exec or attach session; use as ``async with`` or call :meth:`aclose`.

    Read ``stdout``/``stderr`` (pipes: ``await read()``, ``async for chunk``) while the
    command runs; a channel nobody reads fills up and then slows the command down.
    ``stdin``, ``stdout`` and ``stderr`` are the streams asked for when opening it;
    using one not asked for raises ``ValueError`` saying how to ask for it. The
    ``stderr`` of a TTY session is an empty pipe (the terminal sends all to stdout).
    """

    def __init__(self, channels: Channels, *, stdin: bool, tty: bool) -> None:
        self._channels = channels
        self._stdin = Stdin(channels) if stdin else None
        self._stdout = channels.stdout
        self._stderr = _ended() if tty else channels.stderr  # a TTY has no stderr channel
        self.tty = tty
        self._exit_code: int | None = None
        self._status: asyncio.Future[int] | None = None
        self._closed = False

    @property
    def stdin(self) -> Stdin:
        """The command's input; needs ``stdin=True`` when opening the session."""
        return _opened(self._stdin, "stdin")

    @property
    def stdout(self) -> Pipe:
        """The command's output (opened by default: ``stdout=True``)."""
        return _opened(self._stdout, "stdout")

    @property
    def stderr(self) -> Pipe:
        """The command's error output (opened by default unless ``tty=True``)."""
        return _opened(self._stderr, "stderr")

    @property
    def transport(self) -> str:
        """The transport in use: ``spdy``, ``websocket/v5.channel.k8s.io``..."""
        return self._channels.name

    @property
    def bytes_sent(self) -> int:
        """Bytes written to stdin so far."""
        return 0 if self._stdin is None else self._stdin.sent

    @property
    def bytes_received(self) -> int:
        """Bytes received on stdout and stderr so far (read or not)."""
        return sum(p.total for p in (self._stdout, self._stderr) if p is not None)

    async def resize(self, cols: int, rows: int) -> None:
        """Tell the remote terminal its new size (TTY sessions only)."""
        if not self.tty:
            raise ValueError("resize() needs a session opened with tty=True")
        if not (isinstance(cols, int) and isinstance(rows, int) and 0 < cols < 65536
                and 0 < rows < 65536):
            raise ValueError(f"terminal size must be two integers in 1..65535, not {cols}x{rows}")
        await self._channels.write_resize(json.dumps({"Width": cols, "Height": rows}).encode())

    async def wait(self) -> int:
        """The command's exit code, once it ended.

        Raises :class:`~aiocri.ExecFailed` when the command could not run, and
        :class:`~aiocri.StreamingError` when the session broke before its end, or when
        an output channel is full and was never read (the runtime cannot go on
        writing, so the status could never arrive: read it, or use communicate()).
        Any number of tasks may wait at once.
        """
        if self._exit_code is None:
            if self._status is None:  # one reader of the status, however many waiters
                self._status = asyncio.ensure_future(self._read_status())
                self._status.add_done_callback(_retrieve)
            status = self._status
            while not (await asyncio.wait([status], timeout=_STALL_CHECK))[0]:
                self._check_stalled()
            if status.cancelled():  # aclose() gave up on it
                raise StreamingError("the session was closed before the command ended")
            self._exit_code = status.result()
        return self._exit_code

    def _check_stalled(self) -> None:
        for name, pipe in (("stdout", self._stdout), ("stderr", self._stderr)):
            if pipe is not None and pipe.stuck_for() > STALL_LIMIT:
                raise StreamingError(
                    f"{name} is full and was never read, so the command cannot finish",
                    hint=f"read session.{name} while waiting, use communicate(), or open "
                    f"the session with {name}=False",
                )

    async def _read_status(self) -> int:
        raw = b""
        try:
            # The status is one JSON document: done as soon as it is whole, without
            # waiting for the server to tear the connection down (SPDY servers take
            # several milliseconds to reset the streams after it).
            while chunk := await self._channels.error.read():
                raw += chunk
                if _whole_json(raw):
                    break
        except (StreamReset, ConnectionError) as exc:
            raise StreamingError(f"the session ended before the command did: {why(exc)}") from None
        if not raw.strip():
            raise StreamingError("the session ended without the command's exit status")
        return exit_code_of(raw)

    async def communicate(self, data: bytes | None = None) -> ExecOutput:
        """Write ``data`` to stdin and end it, read stdout and stderr to their end,
        and return them with the exit code."""
        readers = [
            asyncio.ensure_future(pipe.readall() if pipe is not None else _nothing())
            for pipe in (self._stdout, self._stderr)
        ]
        try:
            if self._stdin is not None:
                if not self._stdin.can_close:
                    raise StreamingError(
                        f"communicate() must end stdin, which {self.transport} cannot do",
                        hint="use transport='spdy' (or 'auto'), or write to session.stdin "
                        "and read the pipes yourself")
                if data:
                    await self._stdin.write(data)
                await self._stdin.close()
            elif data:
                raise _missing("stdin")
            out, err = await asyncio.gather(*readers)
        except BaseException:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            raise
        return ExecOutput(out, err, await self.wait())

    async def aclose(self) -> None:
        """End the session (a command still running loses its connection); idempotent."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                await self._channels.aclose()
            if self._status is not None and not self._status.done():
                # the closed channels end it with their error; cancel it only if they
                # somehow did not
                await asyncio.wait([self._status], timeout=1.0)
                self._status.cancel()
                await asyncio.gather(self._status, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _opened(stream: _S | None, name: str) -> _S:
    if stream is None:
        raise _missing(name)
    return stream


def _missing(name: str) -> ValueError:
    return ValueError(f"this session was opened without {name}: pass {name}=True to "
                      "exec_stream() or attach_stream()")


def _ended() -> Pipe:
    pipe = Pipe()
    pipe.feed_eof()
    return pipe


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()  # a status nobody waits for any more is not worth a warning


def _whole_json(raw: bytes) -> bool:
    if not raw.rstrip().endswith(b"}"):
        return False
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


async def _nothing() -> bytes:
    return b""
