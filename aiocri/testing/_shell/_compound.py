"""Compound commands: if, while, until, for, ``{ ...; }`` and ``( ... )``.

Every loop iteration gives the event loop a turn (``asyncio.sleep(0)``), so that
``while true; do :; done`` runs inside the fake runtime's server without starving
it, and is cancelled as promptly as anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from aiocri.testing._shell._builtins import LoopControl
from aiocri.testing._shell._expand import ExpansionError
from aiocri.testing._shell._syntax import AndOr, Compound, For, Group, If, Loop

if TYPE_CHECKING:
    from aiocri.testing._shell._interp import Shell


async def run_list(shell: Shell, items: Sequence[AndOr]) -> int:
    for item in items:
        await shell.and_or(item)
    return shell.status


@contextlib.asynccontextmanager
async def _testing(shell: Shell) -> AsyncIterator[None]:
    """A condition: set -e does not end the shell for its failures."""
    shell.testing += 1
    try:
        yield
    finally:
        shell.testing -= 1


async def run_compound(shell: Shell, cmd: Compound) -> int:
    if not cmd.redirs:
        return await _run(shell, cmd)
    fds = await shell.redirected(cmd.redirs, cmd.line)
    if fds is None:
        return 1
    saved, shell._fds = shell._fds, fds
    try:
        return await _run(shell, cmd)
    finally:
        shell._fds = saved


async def _run(shell: Shell, cmd: Compound) -> int:
    node = cmd.node
    if isinstance(node, If):
        return await _if(shell, node)
    if isinstance(node, Loop):
        return await _loop(shell, node)
    if isinstance(node, For):
        return await _for(shell, node, cmd.line)
    if node.subshell:
        sub = shell.subshell()
        return await sub.in_subshell(Compound(cmd.line, Group(node.body, False), ()))
    return await run_list(shell, node.body)


async def _if(shell: Shell, node: If) -> int:
    for condition, body in node.clauses:
        async with _testing(shell):
            await run_list(shell, condition)
        if shell.status == 0:
            return await run_list(shell, body)
    return 0 if node.otherwise is None else await run_list(shell, node.otherwise)


async def _iteration(shell: Shell, body: Sequence[AndOr]) -> tuple[int, bool]:
    """One run of a loop's body: its status, and whether the loop goes on."""
    await asyncio.sleep(0)  # a turn for the event loop, and a point to cancel at
    shell.loop_depth += 1
    try:
        return await run_list(shell, body), True
    except LoopControl as ctl:
        if ctl.levels > 1:
            ctl.levels -= 1
            raise
        return 0, ctl.again
    finally:
        shell.loop_depth -= 1


async def _loop(shell: Shell, node: Loop) -> int:
    status, going = 0, True
    while going:
        async with _testing(shell):
            await run_list(shell, node.condition)
        if (shell.status == 0) == node.until:
            break
        status, going = await _iteration(shell, node.body)
    return status


async def _for(shell: Shell, node: For, line: int) -> int:
    if node.words is None:
        values = list(shell.params)
    else:
        try:
            values = [f for word in node.words for f in await shell.fields(word)]
        except ExpansionError as exc:
            raise await shell.expansion_failed(line, exc) from None
    status = 0
    for value in values:
        shell.vars[node.name] = value
        status, going = await _iteration(shell, node.body)
        if not going:
            break
    return status
