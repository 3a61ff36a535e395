"""ExecSync in the fake runtime: a tiny, pluggable command interpreter.

The default handler knows a handful of commands (echo, true, false, sleep,
hostname, pwd, env, ``sh -c`` with ``;`` and ``exit N``), enough for probes
and tests; anything else exits 127 like a missing binary.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from aiocri.testing._state import Container

__all__ = ["ExecHandler", "ExecResult", "default_exec_handler"]


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
