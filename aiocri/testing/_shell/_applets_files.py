"""The applets that list and change the file system: ls, mkdir, touch, rmdir, rm."""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable

from aiocri.testing._shell._call import Call, Usage, getopt
from aiocri.testing._shell._files import FileInfo, oserror
from aiocri.testing._shell._registry import register


def _ls_long(info: FileInfo, name: str) -> str:
    kind = {"dir": "d", "file": "-", "device": "c"}[info.kind]
    bits = "".join(ch if info.mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    if info.mode & 0o1000:
        bits = bits[:-1] + ("t" if bits[-1] == "x" else "T")
    when = time.strftime("%b %e %H:%M", time.gmtime(info.mtime))
    return f"{kind}{bits} {info.nlink:4d} root     root     {info.size:9d} {when} {name}"


async def _ls_operands(c: Call, names: list[str], opts: dict[str, list[str]]
                       ) -> tuple[list[str], list[str], int]:
    """The operands that are shown as they are, those listed, and the exit code."""
    files: list[str] = []
    dirs: list[str] = []
    status = 0
    for name in sorted(names):
        path = c.path(name)
        if not c.fs.exists(path):
            await c.err(f"{name}: No such file or directory")
            status = 1
        elif c.fs.is_dir(path) and "d" not in opts:
            dirs.append(name)
        else:
            files.append(name)
    return files, dirs, status


@register("ls")
async def _ls(c: Call) -> int:
    opts, names = getopt(c.args, "1aAld")
    names = names or ["."]
    files, dirs, status = await _ls_operands(c, names, opts)
    blocks = [[_ls_row(c, opts, c.path(f), f) for f in files]] if files else []
    blocks += [_ls_dir(c, opts, name, header=len(names) > 1) for name in dirs]
    text = "\n\n".join("\n".join(b) for b in blocks if b)
    await c.out(text + "\n" if text else "")
    return status


def _ls_row(c: Call, opts: dict[str, list[str]], path: str, shown: str) -> str:
    return _ls_long(c.fs.stat(path), shown) if "l" in opts else shown


def _ls_dir(c: Call, opts: dict[str, list[str]], name: str, *, header: bool) -> list[str]:
    """The lines that list one directory."""
    path = c.path(name)
    hidden_too = "a" in opts or "A" in opts
    entries = [e for e in c.fs.listdir(path) if hidden_too or not e.startswith(".")]
    entries = ([".", ".."] if "a" in opts else []) + entries
    block = [f"{name}:"] if header else []
    if "l" in opts:  # in 1K blocks, each file taking whole 4K ones
        sizes = [c.fs.stat(c.fs.normalize(e, path)).size for e in entries]
        block.append(f"total {sum(4 * math.ceil(s / 4096) for s in sizes)}")
    return block + [_ls_row(c, opts, c.fs.normalize(e, path), e) for e in entries]


async def _each(c: Call, names: list[str], usage: str, act: Callable[[str], None],
                message: str) -> int:
    """Do ``act`` to each operand's path; ``message`` words a failure ({name}, {error})."""
    if not names:
        raise Usage(usage)
    status = 0
    for name in names:
        try:
            act(c.path(name))
        except OSError as exc:
            await c.err(message.format(name=name, error=exc.strerror))
            status = 1
    return status


@register("mkdir")
async def _mkdir(c: Call) -> int:
    opts, names = getopt(c.args, "pm:")
    return await _each(c, names, "usage: mkdir [-p] [-m MODE] DIRECTORY...",
                       lambda path: c.fs.mkdir(path, parents="p" in opts),
                       "can't create directory '{name}': {error}")


@register("touch")
async def _touch(c: Call) -> int:
    opts, names = getopt(c.args, "c")
    return await _each(c, names, "usage: touch [-c] FILE...",
                       lambda path: c.fs.touch(path, create="c" not in opts), "{name}: {error}")


@register("rmdir")
async def _rmdir(c: Call) -> int:
    _, names = getopt(c.args, "p")

    def rmdir(path: str) -> None:
        if c.fs.is_file(path):  # remove() would take a file
            raise oserror(NotADirectoryError, errno.ENOTDIR, path)
        c.fs.remove(path)

    return await _each(c, names, "usage: rmdir DIRECTORY...", rmdir, "'{name}': {error}")


@register("rm")
async def _rm(c: Call) -> int:
    opts, names = getopt(c.args, "frRi")
    if not names and "f" not in opts:
        raise Usage("usage: rm [-fr] FILE...")
    status = 0
    for name in names:
        path = c.path(name)
        if not c.fs.exists(path):
            if "f" not in opts:
                await c.err(f"can't remove '{name}': No such file or directory")
                status = 1
        elif c.fs.is_dir(path) and not ("r" in opts or "R" in opts):
            await c.err(f"'{name}' is a directory")
            status = 1
        else:
            c.fs.remove(path, recursive=True)
    return status
