"""The shell and busybox as programs: sh (ash, bash, dash) and busybox APPLET."""

from __future__ import annotations

import dataclasses

from aiocri.testing._shell._call import Call, invoke
from aiocri.testing._shell._interp import Shell
from aiocri.testing._shell._registry import APPLETS, SHELL_ALIASES, register
from aiocri.testing._shell._syntax import UNSUPPORTED


@register("sh", "ash")
async def _sh(c: Call) -> int:
    args = c.args
    command, errexit = False, False
    while args and args[0].startswith("-") and args[0] not in ("-", "--"):
        for flag in args[0][1:]:
            if flag not in "ce":
                await c.err(f"-{flag} {UNSUPPORTED}")
                return 2
            command, errexit = command or flag == "c", errexit or flag == "e"
        args = args[1:]
    args = args[1:] if args[:1] == ["--"] else args
    ctx = dataclasses.replace(c.ctx, env=c.env, working_dir=c.cwd)
    if command:
        if not args:
            await c.err("-c requires an argument")
            return 2
        script, dollar0, params = args[0], (args[1] if len(args) > 1 else None), args[2:]
    elif args:
        try:
            script = c.fs.read(c.path(args[0])).decode(errors="replace")
        except OSError as exc:
            await c.err(f"can't open '{args[0]}': {exc.strerror}")
            return 2
        dollar0, params = args[0], args[1:]
    else:  # the script comes on stdin
        script, dollar0, params = (await c.stdin.read_all()).decode(errors="replace"), None, []
    shell = Shell(ctx, name=c.argv[0], dollar0=dollar0, params=params)
    shell.errexit = errexit
    await shell.run(script, stdin=c.stdin, stdout=c.stdout, stderr=c.stderr)
    return await shell.finish()


@register("busybox")
async def _busybox(c: Call) -> int:
    if len(c.argv) < 2 or c.argv[1] == "--list":
        names = sorted(APPLETS) if len(c.argv) > 1 else ["usage: busybox APPLET [ARGS]..."]
        await c.out("".join(f"{n}\n" for n in names))
        return 0
    applet = c.argv[1].rsplit("/", 1)[-1]
    applet = "sh" if applet in SHELL_ALIASES else applet
    if applet not in APPLETS:
        await c.stderr(f"{c.argv[1]}: applet not found\n".encode())
        return 127
    return await invoke(applet, dataclasses.replace(c, argv=c.argv[1:], prefix=applet))
