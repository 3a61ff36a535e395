"""Exec in the fake runtime: ExecSync and exec/attach sessions, run by the small shell.

The default handler runs a command with :mod:`aiocri.testing._shell`, a stand-in for
busybox's ``sh`` and applets, on the container's own in-memory files (what one exec
writes the next one reads). A test may install its own handler instead
(``FakeRuntime.set_exec_handler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from aiocri.testing._model import Container, StatusError
from aiocri.testing._shell import FileSystem, run_argv, run_captured
from aiocri.testing._streaming import ServerIO, exit_status, internal_error, success_status
from aiocri.testing._workload import guarded, interactive, shell_context

if TYPE_CHECKING:
    from aiocri.testing._state import FakeState

__all__ = [
    "ExecHandler",
    "ExecResult",
    "cannot_start",
    "default_exec_handler",
    "exec_failed",
    "run_session",
]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a command printed and how it exited."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


#: ``handler(container, cmd)``; may be sync or async. Raising
#: :class:`~aiocri.testing.StatusError` fails the RPC with that status.
ExecHandler: TypeAlias = Callable[[Container, list[str]], ExecResult | Awaitable[ExecResult]]

_SHELLS = frozenset({"sh", "bash", "ash", "dash"})


def _files(container: Container) -> FileSystem:
    if container.process is None:  # not started through the state: files of its own
        from aiocri.testing._workload import Process

        container.process = Process()
    return container.process.files


async def default_exec_handler(container: Container, cmd: list[str]) -> ExecResult:
    """The fake runtime's exec handler unless one is set: runs ``cmd`` in the fake's
    stand-in for busybox's ``sh``, on the container's files (its image's), and returns
    its output and exit code. A handler of your own (``FakeRuntime.set_exec_handler``)
    may call it for the commands it does not script."""
    try:
        result = await run_captured(cmd, shell_context(container, _files(container)))
    except Exception as exc:  # the fake shell's own fault: an exit code, not a broken RPC
        return ExecResult(stderr=f"sh: the fake runtime's shell failed: "
                                 f"{type(exc).__name__}: {exc}\n".encode(), exit_code=2)
    return ExecResult(result.stdout, result.stderr, result.exit_code)


def cannot_start(result: ExecResult) -> bool:
    """Whether ``result`` is runc's refusal to start the program (not there, or not
    executable): containerd answers those as errors, not as exit codes."""
    return result.exit_code in (126, 127) and _RUNC_REFUSAL.match(result.stderr) is not None


def exec_failed(result: ExecResult) -> str:
    """containerd's words for an exec whose program cannot start."""
    reason = result.stderr.decode(errors="replace").strip()
    found = _RUNC_REFUSAL.match(result.stderr)
    missing = found is not None and found.group(2) != b"permission denied"
    if found is not None and missing and found.group(1).startswith(b"/"):
        path = found.group(1).decode(errors="replace")  # runc stats a path instead
        reason = f'exec: "{path}": stat {path}: no such file or directory'
    return (
        f'failed to exec in container: failed to start exec "{secrets.token_hex(32)}": '
        f"OCI runtime exec failed: exec failed: unable to start container process: "
        f"{reason}: unknown"
    )


# the shell's words for a program that cannot start, as runc says them
_RUNC_REFUSAL = re.compile(rb'exec: "([^"]*)": (executable file not found|permission denied)')


# -- streaming sessions (exec and attach through the streaming server) -----------------


async def run_session(
    state: FakeState, handler: Callable[[], ExecHandler], kind: str, request: Any, io: ServerIO
) -> bytes:
    """Run one exec or attach session; the status JSON for the error channel.

    The session ends with exit code 137 (SIGKILL) when its container stops.
    """
    try:
        container = state.get_container(request.container_id)
    except StatusError as exc:
        return internal_error(exc.details)
    if not container.running:
        return internal_error(f'container "{container.id}" is not running')
    task = asyncio.ensure_future(
        _attach(state, container, io) if kind == "attach" else _exec(handler(), container,
                                                                     list(request.cmd), io)
    )
    stopped = asyncio.Event()
    container.on_exit.append(stopped.set)
    waiting = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this session is cancelled (the client left, the server stops)
        waiting.cancel()
        if stopped.set in container.on_exit:
            container.on_exit.remove(stopped.set)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        elif not task.cancelled():
            task.exception()  # cut short, this session tells no one: no "never retrieved"
    if task.cancelled():
        return success_status() if kind == "attach" else exit_status(137, list(request.cmd))
    return task.result()


def _newlines(io: ServerIO, data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n") if io.tty else data


async def _exec(handler: ExecHandler, container: Container, cmd: list[str], io: ServerIO
                ) -> bytes:
    base = cmd[0].rsplit("/", 1)[-1]
    if base == "stty" and cmd[1:] == ["size"]:
        return await _stty_size(io, cmd)
    if handler is not default_exec_handler:
        result = handler(container, cmd)
        if inspect.isawaitable(result):
            result = await result
        if cannot_start(result):
            return internal_error(exec_failed(result))
        await io.write("stdout", _newlines(io, result.stdout))
        await io.write("stderr" if not io.tty else "stdout", _newlines(io, result.stderr))
        return exit_status(result.exit_code, cmd)

    async def out(data: bytes) -> None:
        await io.write("stdout", _newlines(io, data))

    async def err(data: bytes) -> None:
        await io.write("stderr" if not io.tty else "stdout", _newlines(io, data))

    ctx = shell_context(container, _files(container))
    stdin = io.stdin.__aiter__() if io.stdin is not None else None
    if base in _SHELLS and len(cmd) == 1 and stdin is not None:

        async def stty_size(line: str) -> bool:
            if line.strip() != "stty size" or not io.tty:
                return False
            cols, rows = io.size or (80, 24)
            await out(f"{rows} {cols}\n".encode())
            return True

        code = await guarded(interactive(ctx, base, stdin, out, err, special=stty_size), err)
        return exit_status(code, cmd)
    refusal = bytearray()

    async def err_or_refusal(data: bytes) -> None:
        if _RUNC_REFUSAL.match(data):
            refusal.extend(data)  # containerd answers this as an error, not output
        else:
            await err(data)

    code = await guarded(run_argv(cmd, ctx, stdin=stdin, stdout=out, stderr=err_or_refusal),
                         err)
    failed = ExecResult(stderr=bytes(refusal), exit_code=code)
    if refusal and cannot_start(failed):
        return internal_error(exec_failed(failed))
    return exit_status(code, cmd)


async def _stty_size(io: ServerIO, cmd: list[str]) -> bytes:
    if not io.tty:
        await io.write("stderr", b"stty: standard input: Not a tty\n")
        return exit_status(1, cmd)
    if io.size is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(io.resized.wait(), 1.0)
    cols, rows = io.size or (80, 24)
    await io.write("stdout", f"{rows} {cols}\r\n".encode())
    return exit_status(0, cmd)


async def _attach(state: FakeState, container: Container, io: ServerIO) -> bytes:
    """Follow the container's output; what arrives on stdin goes to its command's stdin
    (a container made without ``stdin`` gets none: the input is dropped)."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def listener(stream: str, data: bytes) -> None:
        queue.put_nowait(("stdout" if io.tty else stream, data))

    container.listeners.append(listener)
    pipe = container.process.stdin if container.process is not None else None

    async def feed() -> None:
        if io.stdin is None:
            return
        async for chunk in io.stdin:
            if pipe is not None:
                await pipe.write(chunk)
        if pipe is not None and container.config.stdin_once:
            pipe.close()  # the first attach's end is the command's end of input

    feeding = asyncio.ensure_future(feed())
    try:
        while True:
            stream, data = await queue.get()
            await io.write(stream, _newlines(io, data))
    finally:
        feeding.cancel()
        container.listeners.remove(listener)
