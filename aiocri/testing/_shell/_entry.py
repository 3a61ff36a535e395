"""The entry points: a command as the runtime execs it, or a script as ``sh -c``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiocri.testing._shell._call import Call, exists_as_path, find, invoke
from aiocri.testing._shell._context import DEFAULT_PATH, ShellContext
from aiocri.testing._shell._interp import Shell
from aiocri.testing._shell._registry import APPLETS, SHELL_ALIASES
from aiocri.testing._shell._streams import Input, Writer


@dataclass(frozen=True)
class ShellResult:
    """What a command printed and how it exited."""

    stdout: bytes
    stderr: bytes
    exit_code: int


def is_known(argv0: str) -> bool:
    """Whether the fake has this program (by its base name: ``/bin/cat`` is ``cat``)."""
    base = argv0.rsplit("/", 1)[-1]
    return base in APPLETS or base in SHELL_ALIASES


async def run_argv(argv: Sequence[str], ctx: ShellContext, *,
                   stdin: AsyncIterator[bytes] | None, stdout: Writer, stderr: Writer) -> int:
    """Run a command as the runtime would exec it (no shell around it); its exit code.

    A program the container does not have gives 127 and runc's words on stderr
    (``exec: "PROG": executable file not found in $PATH``); a path to a file that is
    no program gives 126 and ``exec: "PATH": permission denied``.
    """
    found = find(argv[0], ctx.files, ctx.env.get("PATH", DEFAULT_PATH),
                  ctx.working_dir) if argv else None
    name = argv[0] if argv else ""
    if found is None and exists_as_path(name, ctx.files, ctx.working_dir):
        await stderr(f'exec: "{name}": permission denied\n'.encode())
        return 126
    if found is None:
        await stderr(f'exec: "{name}": executable file not found in $PATH\n'.encode())
        return 127
    call = Call(list(argv), ctx, dict(ctx.env), ctx.working_dir, Input(stdin), stdout,
                 stderr, found)
    return await invoke(found, call)


async def run_captured(argv: Sequence[str], ctx: ShellContext, stdin: bytes = b""
                       ) -> ShellResult:
    """:func:`run_argv` with stdin given whole and the output collected."""
    out, err = bytearray(), bytearray()

    async def to_out(data: bytes) -> None:
        out.extend(data)

    async def to_err(data: bytes) -> None:
        err.extend(data)

    async def feed() -> AsyncIterator[bytes]:
        if stdin:
            yield stdin

    code = await run_argv(argv, ctx, stdin=feed(), stdout=to_out, stderr=to_err)
    return ShellResult(bytes(out), bytes(err), code)


async def run_script(script: str, ctx: ShellContext, *, stdin: AsyncIterator[bytes] | None,
                     stdout: Writer, stderr: Writer, shell_name: str = "sh") -> int:
    """Run ``script`` as ``shell_name -c script`` would; its exit code."""
    shell = Shell(ctx, name=shell_name)
    await shell.run(script, stdin=stdin, stdout=stdout, stderr=stderr)
    return await shell.finish()
