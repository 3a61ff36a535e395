"""The typer application with every subcommand registered."""

from __future__ import annotations

import copy
import importlib
from typing import Any

import typer

from aiocri._cli.common import app

__all__ = ["build_app", "build_command"]

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


def build_command() -> Any:
    """The click command of the app, flags shown without a type (``--all``, not
    ``--all <bool>``), as crictl shows them."""
    command: Any = typer.main.get_command(build_app())
    for sub in [command, *getattr(command, "commands", {}).values()]:
        for param in sub.params:
            _untyped_flag(param)
        sub.get_help_option = _help_without_type(sub.get_help_option)
    return command


def _untyped_flag(param: Any) -> Any:
    if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""
    return param


def _help_without_type(get: Any) -> Any:
    # click makes --help afresh for each context
    return lambda ctx: _untyped_flag(get(ctx))
