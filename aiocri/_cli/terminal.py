"""The local end of a streaming session: stdin in, stdout/stderr out, the terminal.

A TTY session puts the local terminal in raw mode and forwards its size (now and
on every SIGWINCH); the terminal is restored on every way out, including errors,
Ctrl-C (which raw mode sends to the remote side as a byte) and SIGTERM/SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import termios
import tty
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, BinaryIO, TextIO

from aiocri.streaming import Pipe, StreamSession

__all__ = ["forward_session", "raw_terminal"]


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on ``fd`` while inside; the saved mode comes back whatever happens."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        with contextlib.suppress(termios.error):  # the terminal may be gone (SIGHUP)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def read_fd(fd: int) -> bytes:
    """Up to 64 KiB from a pipe, socket or terminal (without a thread), or from a
    device that cannot be polled, such as /dev/null (in one)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    try:
        loop.add_reader(fd, ready.set)
    except PermissionError:
        return await asyncio.to_thread(os.read, fd, 1 << 16)
    try:
        await ready.wait()
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 1 << 16)


async def _pump_stdin(session: StreamSession, fd: int) -> None:
    assert session.stdin is not None
    regular = stat.S_ISREG(os.fstat(fd).st_mode)  # files cannot be polled: just read them
    while data := (os.read(fd, 1 << 16) if regular else await read_fd(fd)):
        await session.stdin.write(data)
    if not session.stdin.can_close:
        await asyncio.sleep(1.0)  # let the output of what was sent arrive, then say why
    await session.stdin.close()  # raises when the transport cannot end stdin


async def _pump_out(pipe: Pipe | None, out: BinaryIO) -> None:
    if pipe is None:
        return
    async for chunk in pipe:
        out.write(chunk)
        out.flush()


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):  # replaced streams (tests, embedding)
        return None


async def _outputs_done(outputs: Sequence[asyncio.Future[None]],
                        stdin: asyncio.Future[None] | None) -> None:
    """Until stdout and stderr end; a failure to pass stdin on ends the session too."""
    gathered: asyncio.Future[list[None]] = asyncio.gather(*outputs)
    pending: set[asyncio.Future[Any]] = {gathered}
    if stdin is not None:
        pending.add(stdin)
    try:
        while not gathered.done():
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stdin is not None and stdin in done:
                pending.discard(stdin)
                error = None if stdin.cancelled() else stdin.exception()
                if error is not None:
                    raise error
        gathered.result()
    finally:
        if not gathered.done():
            gathered.cancel()
        await asyncio.gather(gathered, return_exceptions=True)


def _terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.columns, size.lines


async def forward_session(session: StreamSession, *, interactive: bool) -> int:
    """Connect the session to this process's stdin/stdout/stderr; its exit code."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    signalled: list[int] = []

    def on_signal(number: int) -> None:  # unwind through the finally blocks below
        signalled.append(number)
        current.cancel()

    for number in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(number, on_signal, number)
    try:
        return await _forward(session, interactive=interactive)
    except asyncio.CancelledError:
        if not signalled:
            raise
        current.uncancel()
        return 128 + signalled[0]
    finally:
        for number in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(number)


async def _forward(session: StreamSession, *, interactive: bool) -> int:
    stdin_fd, stdout_fd = _fileno(sys.stdin), _fileno(sys.stdout)
    if interactive and session.stdin is not None and stdin_fd is None:
        raise ValueError("-i needs a standard input with a file descriptor")
    term_fd = next((fd for fd in (stdin_fd, stdout_fd) if fd is not None and os.isatty(fd)),
                   None)
    raw = session.tty and interactive and stdin_fd is not None and os.isatty(stdin_fd)
    async with _resizes(session, term_fd if session.tty else None):
        with raw_terminal(stdin_fd) if raw and stdin_fd is not None else contextlib.nullcontext():
            return await _pumps(session, stdin_fd if interactive else None)


@contextlib.asynccontextmanager
async def _resizes(session: StreamSession, fd: int | None) -> AsyncIterator[None]:
    """Send the terminal's size now and after every SIGWINCH (no-op without a terminal)."""
    if fd is None:
        yield
        return
    loop = asyncio.get_running_loop()
    sent: set[asyncio.Future[None]] = set()

    async def resize() -> None:
        size = _terminal_size(fd)
        if size is not None:
            with contextlib.suppress(Exception):
                await session.resize(*size)

    def on_winch() -> None:
        task = asyncio.ensure_future(resize())
        sent.add(task)
        task.add_done_callback(sent.discard)

    await resize()
    loop.add_signal_handler(signal.SIGWINCH, on_winch)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        for task in list(sent):
            task.cancel()
        await asyncio.gather(*sent, return_exceptions=True)


async def _pumps(session: StreamSession, stdin_fd: int | None) -> int:
    outputs = [asyncio.ensure_future(_pump_out(session.stdout, sys.stdout.buffer)),
               asyncio.ensure_future(_pump_out(session.stderr, sys.stderr.buffer))]
    stdin = None
    if stdin_fd is not None and session.stdin is not None:
        stdin = asyncio.ensure_future(_pump_stdin(session, stdin_fd))
    try:
        await _outputs_done(outputs, stdin)
        return await session.wait()
    finally:
        pending = [*outputs, *([stdin] if stdin is not None else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
