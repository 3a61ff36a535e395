"""The builtins of the shell itself: cd, exit, export, unset, set, exec, ``:``, break,
continue, shift and wait (read and trap are in ``_builtins_io``)."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from aiocri.testing._shell._builtins_io import builtin_read, builtin_trap
from aiocri.testing._shell._control import Exit, LoopControl
from aiocri.testing._shell._streams import Fds, writer
from aiocri.testing._shell._syntax import UNSUPPORTED

__all__ = ["BUILTINS", "MISSING_BUILTINS", "SHELL_APPLETS", "Exit", "LoopControl"]

if TYPE_CHECKING:
    from aiocri.testing._shell._interp import Shell


_Builtin: TypeAlias = Callable[["Shell", list[str], Fds, int], Awaitable[int]]


async def _builtin_cd(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    target = argv[1] if len(argv) > 1 else shell.vars.get("HOME", "")
    if not target:
        return 0
    if target == "-":
        target = shell.vars.get("OLDPWD", shell.cwd)
        await writer(fds, 1)(f"{target}\n".encode())
    fs = shell.ctx.files
    path = fs.normalize(target, shell.cwd)
    if not fs.is_dir(path):
        code = errno.ENOTDIR if fs.exists(path) else errno.ENOENT
        text = f"can't cd to {target}: {os.strerror(code)}"
        await writer(fds, 2)(shell._builtin_msg("cd", line, text))
        return 2
    shell.vars["OLDPWD"], shell.cwd = shell.cwd, path
    shell.vars["PWD"] = path
    return 0


async def _builtin_exit(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    if len(argv) < 2:
        raise Exit(shell.status)
    if not re.fullmatch(r"[0-9]+", argv[1]):
        text = f"Illegal number: {argv[1]}"
        await writer(fds, 2)(shell._builtin_msg("exit", line, text))
        raise Exit(2)
    raise Exit(int(argv[1]) & 0xFF)


async def _builtin_export(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if eq:
            shell.vars[name] = value
        shell.exported.add(name)
    if len(argv) == 1:
        listed = sorted(k for k in shell.exported if k in shell.vars)
        text = "".join(f"export {k}='{shell.vars[k]}'\n" for k in listed)
        await writer(fds, 1)(text.encode())
    return 0


async def _builtin_unset(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    for name in argv[1:]:
        shell.vars.pop(name, None)
        shell.exported.discard(name)
    return 0


async def _builtin_set(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    args = argv[1:]
    while args and args[0] in ("-e", "+e"):
        shell.errexit = args.pop(0) == "-e"
    if args and args[0] == "--":
        shell.params = args[1:]
    elif args:
        await writer(fds, 2)(shell._msg(line, f"set {' '.join(args)} {UNSUPPORTED}"))
        raise Exit(2)
    return 0


async def _builtin_exec(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    if len(argv) == 1:  # exec >FILE: the redirections stay for the rest of the script
        shell._fds = fds
        return 0
    env = {k: v for k, v in shell.vars.items() if k in shell.exported}
    raise Exit(await shell._exec(argv[1:], env, fds, line))


async def _count(shell: Shell, argv: list[str], fds: Fds, line: int, least: int) -> int:
    """The number a builtin takes (1 if none): a bad one ends the shell."""
    if len(argv) < 2:
        return 1
    if not re.fullmatch(r"[0-9]+", argv[1]) or int(argv[1]) < least:
        await writer(fds, 2)(shell._builtin_msg(argv[0], line, f"Illegal number: {argv[1]}"))
        raise Exit(2)
    return int(argv[1])


async def _builtin_loop(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    levels = await _count(shell, argv, fds, line, 1)
    if shell.loop_depth:  # outside a loop, break and continue do nothing
        raise LoopControl(min(levels, shell.loop_depth), again=argv[0] == "continue")
    return 0


async def _builtin_shift(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    n = await _count(shell, argv, fds, line, 0)
    if n > len(shell.params):
        return 1
    del shell.params[:n]
    return 0


async def _builtin_colon(shell: Shell, argv: list[str], fds: Fds, line: int) -> int:
    return 0


BUILTINS: dict[str, _Builtin] = {
    "cd": _builtin_cd, "exit": _builtin_exit, "export": _builtin_export,
    "unset": _builtin_unset, "set": _builtin_set, "exec": _builtin_exec, ":": _builtin_colon,
    "break": _builtin_loop, "continue": _builtin_loop, "shift": _builtin_shift,
    "wait": _builtin_colon, "read": builtin_read, "trap": builtin_trap,
}
# ash builtins this shell lacks: an error names them rather than "not found"
MISSING_BUILTINS = frozenset({
    ".", "source", "alias", "unalias", "bg", "fg", "jobs", "command", "eval", "getopts",
    "hash", "let", "local", "readonly", "return", "times", "type", "ulimit", "umask",
})
# applets that ash runs as builtins: found without PATH, errors prefixed with "sh"
SHELL_APPLETS = frozenset({"echo", "printf", "test", "[", "true", "false", "pwd"})
