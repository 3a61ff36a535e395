"""The applets about the process and its container: sleep, env, id, whoami,
hostname, true, false, pwd."""

from __future__ import annotations

import asyncio
import dataclasses
import re

from aiocri.testing._shell._call import Call, Usage, find, getopt, invoke
from aiocri.testing._shell._context import DEFAULT_PATH
from aiocri.testing._shell._files import passwd, records
from aiocri.testing._shell._registry import register

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@register("sleep")
async def _sleep(c: Call) -> int:
    if not c.args:
        raise Usage("usage: sleep N...")
    total = 0.0
    for arg in c.args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if match is None:
            raise Usage(f"invalid number '{arg}'")
        total += float(match.group(1)) * _UNITS[match.group(2)]
    await asyncio.sleep(total)
    return 0


@register("env")
async def _env(c: Call) -> int:
    args, env = c.args, dict(c.env)
    while args and args[0] in ("-i", "-"):
        env, args = {}, args[1:]
    while args and "=" in args[0][1:]:
        name, _, value = args[0].partition("=")
        env[name], args = value, args[1:]
    if not args:
        await c.out("".join(f"{k}={v}\n" for k, v in env.items()))
        return 0
    found = find(args[0], c.fs, env.get("PATH", DEFAULT_PATH), c.cwd)
    if found is None:
        await c.err(f"can't execute '{args[0]}': No such file or directory")
        return 127
    return await invoke(found, dataclasses.replace(c, argv=args, env=env, prefix=found))


def _identity(c: Call) -> tuple[str | None, dict[int, str | None]]:
    """The user's name, and its groups (the primary first) with their names."""
    user = passwd(c.fs).get(c.ctx.uid, (None, 0, ""))[0]
    table = records(c.fs, "/etc/group", 4)
    names = {int(f[2]): f[0] for f in table if f[2].isdigit()}
    member_of = [int(f[2]) for f in table if f[2].isdigit() and user in f[3].split(",")]
    groups = [c.ctx.gid, *c.ctx.supplemental_groups, *member_of]
    return user, {gid: names.get(gid) for gid in groups}


def _named(number: int, name: str | None) -> str:
    return f"{number}({name})" if name is not None else str(number)


@register("id")
async def _id(c: Call) -> int:
    opts, _ = getopt(c.args, "ugGnr")
    user, groups = _identity(c)
    uid, gid = c.ctx.uid, c.ctx.gid
    if "u" in opts or "g" in opts:
        number, name = (uid, user) if "u" in opts else (gid, groups[gid])
        if "n" in opts and name is None:
            await c.err(f"unknown ID {number}")
            return 1
        text = name if "n" in opts and name else str(number)
    elif "G" in opts:
        text = " ".join(n or str(g) if "n" in opts else str(g) for g, n in groups.items())
    else:
        text = (f"uid={_named(uid, user)} gid={_named(gid, groups[gid])} groups="
                + ",".join(_named(g, n) for g, n in groups.items()))
    await c.out(text + "\n")
    return 0


@register("whoami")
async def _whoami(c: Call) -> int:
    user, _ = _identity(c)
    if user is None:
        await c.err(f"unknown uid {c.ctx.uid}")
        return 1
    await c.out(user + "\n")
    return 0


@register("hostname")
async def _hostname(c: Call) -> int:
    await c.out(c.ctx.hostname + "\n")
    return 0


@register("true")
async def _true(c: Call) -> int:
    return 0


@register("false")
async def _false(c: Call) -> int:
    return 1


@register("pwd")
async def _pwd(c: Call) -> int:
    await c.out(c.cwd + "\n")
    return 0
