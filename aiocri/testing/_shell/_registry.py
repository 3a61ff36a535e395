"""The table of applets, which each applet module fills as it is imported.

It stands apart so that the file system (whose /bin lists the applets) and the
applets (which run on the file system) can both import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from aiocri.testing._shell._call import Call

Applet: TypeAlias = Callable[["Call"], Awaitable[int]]
APPLETS: dict[str, Applet] = {}
SHELL_ALIASES = frozenset({"bash", "dash"})


def register(*names: str) -> Callable[[Applet], Applet]:
    def add(fn: Applet) -> Applet:
        for name in names:
            APPLETS[name] = fn
        return fn

    return add
