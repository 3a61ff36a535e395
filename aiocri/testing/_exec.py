"""ExecSync in the fake runtime: a tiny, pluggable command interpreter.

The default handler knows a handful of commands (echo, true, false, sleep,
hostname, pwd, env, ``sh -c`` with ``;`` and ``exit N``), enough for probes
and tests; anything else exits 127 like a missing binary.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from aiocri.testing._model import Container, StatusError
from aiocri.testing._streaming import ServerIO, exit_status, internal_error, success_status

if TYPE_CHECKING:
    from aiocri.testing._state import FakeState

__all__ = ["ExecHandler", "ExecResult", "default_exec_handler", "run_session"]


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


async def default_exec_handler(container: Container, cmd: list[str]) -> ExecResult:
    return await _run(container, cmd, shell=False)


async def _run(container: Container, argv: Sequence[str], *, shell: bool) -> ExecResult:
    prog, args = argv[0], list(argv[1:])
    base = prog.rsplit("/", 1)[-1]
    if base == "busybox" and args:  # busybox APPLET ...: the applet itself
        return await _run(container, args, shell=shell)
    if base == "echo":
        newline = True
        if args and args[0] == "-n":
            newline, args = False, args[1:]
        return ExecResult(stdout=(" ".join(args) + ("\n" if newline else "")).encode())
    if base == "true":
        return ExecResult()
    if base == "false":
        return ExecResult(exit_code=1)
    if base == "sleep":
        try:
            seconds = float(args[0]) if args else 0.0
        except ValueError:
            return ExecResult(stderr=f"sleep: invalid number '{args[0]}'\n".encode(), exit_code=1)
        await asyncio.sleep(seconds)
        return ExecResult()
    if base == "hostname":
        pod = container.pod.config
        return ExecResult(stdout=f"{pod.hostname or pod.metadata.name}\n".encode())
    if base == "pwd":
        return ExecResult(stdout=f"{container.config.working_dir or '/'}\n".encode())
    if base == "env":
        lines = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        lines += [f"{kv.key}={kv.value.decode(errors='replace')}" for kv in container.config.envs]
        return ExecResult(stdout=("\n".join(lines) + "\n").encode())
    if base in _SHELLS and len(args) >= 2 and args[0] == "-c":
        return await _script(container, args[1], base)
    if shell:
        return ExecResult(stderr=f"sh: {prog}: not found\n".encode(), exit_code=127)
    # runc's words for a binary that is not there
    return ExecResult(
        stderr=f'exec: "{prog}": executable file not found in $PATH\n'.encode(), exit_code=127
    )


async def _script(container: Container, script: str, shell_name: str) -> ExecResult:
    out, err, code = b"", b"", 0
    for part in script.split(";"):
        try:
            words = shlex.split(part)
        except ValueError as exc:
            return ExecResult(out, err + f"{shell_name}: syntax error: {exc}\n".encode(), 2)
        if not words:
            continue
        if words[0] == "exit":
            try:
                return ExecResult(out, err, int(words[1]) & 0xFF if len(words) > 1 else code)
            except ValueError:
                return ExecResult(out, err + b"sh: exit: Illegal number\n", 2)
        result = await _run(container, words, shell=True)
        out, err, code = out + result.stdout, err + result.stderr, result.exit_code
    return ExecResult(out, err, code)


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
    args = cmd[1:]
    if base == "busybox" and args:
        base, args = args[0], args[1:]
    if base == "cat" and not args:
        if io.stdin is not None:
            async for chunk in io.stdin:
                await io.write("stdout", chunk)
        return exit_status(0, cmd)
    if base == "stty" and args == ["size"]:
        return await _stty_size(io, cmd)
    if base in _SHELLS and not args and io.stdin is not None:
        return await _interactive_shell(container, io, cmd)
    result = handler(container, cmd)
    if inspect.isawaitable(result):
        result = await result
    if result.exit_code == 127 and b"executable file not found" in result.stderr:
        # containerd reports a binary that is not there as an error, not an exit code
        return internal_error(
            f'failed to exec in container: failed to start exec "{secrets.token_hex(32)}": '
            f"OCI runtime exec failed: exec failed: unable to start container process: "
            f"{result.stderr.decode().strip()}: unknown"
        )
    await io.write("stdout", _newlines(io, result.stdout))
    await io.write("stderr" if not io.tty else "stdout", _newlines(io, result.stderr))
    return exit_status(result.exit_code, cmd)


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


async def _interactive_shell(container: Container, io: ServerIO, cmd: list[str]) -> bytes:
    assert io.stdin is not None
    pending = b""
    code = 0
    async for chunk in io.stdin:
        pending += chunk.replace(b"\r", b"\n") if io.tty else chunk  # a terminal's ICRNL
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            words = line.decode(errors="replace").strip()
            if words.split()[:1] == ["exit"]:
                parts = words.split()
                return exit_status(int(parts[1]) & 0xFF if len(parts) > 1 else code, cmd)
            if words == "stty size" and io.tty:
                cols, rows = io.size or (80, 24)
                await io.write("stdout", f"{rows} {cols}\r\n".encode())
                code = 0
            elif words:
                result = await _script(container, words, "sh")
                await io.write("stdout", _newlines(io, result.stdout))
                await io.write("stderr" if not io.tty else "stdout", _newlines(io, result.stderr))
                code = result.exit_code
    return exit_status(code, cmd)


async def _attach(state: FakeState, container: Container, io: ServerIO) -> bytes:
    """Follow the container's output; what arrives on stdin the container echoes."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def listener(stream: str, data: bytes) -> None:
        queue.put_nowait(("stdout" if io.tty else stream, data))

    container.listeners.append(listener)

    async def echo() -> None:
        if io.stdin is not None:
            async for chunk in io.stdin:
                if container.running:
                    state.write_output(container.id, chunk)

    echoing = asyncio.ensure_future(echo())
    try:
        while True:
            stream, data = await queue.get()
            await io.write(stream, _newlines(io, data))
    finally:
        echoing.cancel()
        container.listeners.remove(listener)
