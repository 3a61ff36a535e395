"""One run of an applet, and what the applets share: finding and invoking one,
its options, its numbers, reading its operands."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiocri.testing._shell._context import ShellContext
from aiocri.testing._shell._files import FileSystem
from aiocri.testing._shell._registry import APPLETS, SHELL_ALIASES
from aiocri.testing._shell._streams import Input, Writer


@dataclass
class Call:
    """One run of an applet: its arguments, environment and streams."""

    argv: list[str]
    ctx: ShellContext
    env: dict[str, str]
    cwd: str
    stdin: Input
    stdout: Writer
    stderr: Writer
    prefix: str  # what its error messages start with

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    @property
    def fs(self) -> FileSystem:
        return self.ctx.files

    def path(self, name: str) -> str:
        return FileSystem.normalize(name, self.cwd)

    async def out(self, text: str) -> None:
        await self.stdout(text.encode())

    async def err(self, text: str) -> None:
        await self.stderr(f"{self.prefix}: {text}\n".encode())


class Usage(Exception):
    """Bad options: the message, and the exit code the applet gives for it."""

    def __init__(self, text: str, code: int = 1) -> None:
        super().__init__(text)
        self.code = code


async def invoke(applet: str, call: Call) -> int:
    try:
        return await APPLETS[applet](call)
    except Usage as exc:
        await call.err(str(exc))
        return exc.code


def find(name: str, fs: FileSystem, path_var: str, cwd: str) -> str | None:
    """The applet that ``name`` runs in this container, or None."""
    base = name.rsplit("/", 1)[-1]
    if base in SHELL_ALIASES:
        return "sh"
    if base not in APPLETS:
        return None
    if "/" in name:
        return base if fs.is_file(fs.normalize(name, cwd)) else None
    dirs = [d.rstrip("/") for d in path_var.split(":") if d]
    return base if any(fs.is_file(f"{d}/{base}") for d in dirs) else None


def exists_as_path(name: str, fs: FileSystem, cwd: str) -> bool:
    """A path to something that is there but is no program (a data file, a directory)."""
    return "/" in name and fs.exists(fs.normalize(name, cwd))


def getopt(args: Sequence[str], spec: str, code: int = 1
            ) -> tuple[dict[str, list[str]], list[str]]:
    """Leading options by a getopt ``spec`` ("n:qv"); the operands after them."""
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        i += 1
        if arg == "--":
            break
        for j, ch in enumerate(arg[1:], 1):
            k = spec.find(ch)
            if k < 0 or ch == ":":
                raise Usage(f"invalid option -- '{ch}'", code)
            if spec[k + 1:k + 2] != ":":
                opts.setdefault(ch, []).append("")
                continue
            value = arg[j + 1:]
            if not value:
                if i >= len(args):
                    raise Usage(f"option requires an argument -- '{ch}'", code)
                value, i = args[i], i + 1
            opts.setdefault(ch, []).append(value)
            break
    return opts, list(args[i:])


def count(text: str, prefix: str = "") -> int:
    if not re.fullmatch(r"\d+", text):
        raise Usage(f"invalid number '{prefix}{text}'")
    return int(text)


async def read_named(c: Call, name: str, *, quiet: bool = False) -> bytes | None:
    """A file's bytes, or stdin's for "-"; None (said on stderr) when it can't be read."""
    if name == "-":
        return await c.stdin.read_all()
    try:
        return c.fs.read(c.path(name))
    except OSError as exc:
        if not quiet:
            await c.err(f"{name}: {exc.strerror}")
        return None


async def each_operand(c: Call, names: Sequence[str],
                       use: Callable[[bytes], Awaitable[None]]) -> int:
    """``use`` on the bytes of each operand in turn (none: stdin); 1 if one failed."""
    status = 0
    for name in names or ["-"]:
        data = await read_named(c, name)
        if data is None:
            status = 1
        else:
            await use(data)
    return status
