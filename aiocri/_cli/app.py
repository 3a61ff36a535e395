"""The typer application with every subcommand registered."""

from __future__ import annotations

import copy
import importlib

import typer

from aiocri._cli.common import app

__all__ = ["build_app"]

# Imported in this order: their commands register on import, and the help lists the
# panels in registration order (inspect, change, stream, follow, try it).
_COMMAND_MODULES = ("cmd_read", "cmd_write", "cmd_stream", "cmd_watch", "cmd_more", "cmd_tools")


#: crictl's other names for commands.
_ALIASES = {"images": ("img", "image")}


def build_app() -> typer.Typer:
    """The ``aiocri`` typer app with all its commands."""
    for name in _COMMAND_MODULES:
        importlib.import_module(f"aiocri._cli.{name}")
    known = {info.name for info in app.registered_commands}
    for info in list(app.registered_commands):
        for alias in _ALIASES.get(info.name or "", ()):
            if alias not in known:
                twin = copy.copy(info)
                twin.name, twin.hidden = alias, True
                app.registered_commands.append(twin)
                known.add(alias)
    return app
