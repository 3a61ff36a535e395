"""How a command's parameters say what argv fills them with: ``Option``, ``Argument``.

A command is a function whose parameters are annotated
``Annotated[type, Option("-a", "--all", help=...)]`` (typer's form, without typer), and
registered with :func:`command`. Nothing here parses: :mod:`aiocri._cli.spec` turns the
registered functions into the table in ``_commands.py``, and :mod:`aiocri._cli.parse`
parses argv from that table alone, so that ``--help`` and a bad flag cost no import of
any command. This module stays import-light: every command module imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Argument", "Context", "Option", "command", "registered"]


class Option:
    """A flag or an option with a value; ``decls`` are its names (``"-a", "--all"``)."""

    def __init__(self, *decls: str, help: str = "", metavar: str | None = None,
                 show_default: bool = True, case_sensitive: bool = True) -> None:
        self.decls = decls
        self.help = help
        self.metavar = metavar
        self.show_default = show_default
        self.case_sensitive = case_sensitive


class Argument:
    """A positional argument (a list type takes the rest of them)."""

    def __init__(self, *, help: str = "", metavar: str | None = None,
                 show_default: bool = True) -> None:
        self.help = help
        self.metavar = metavar
        self.show_default = show_default


class Context:
    """What a command learns besides its own arguments: the global flags (``obj``)."""

    def __init__(self, obj: Any = None, name: str = "") -> None:
        self.obj = obj
        self.name = name


_F = TypeVar("_F", bound=Callable[..., Any])


class CommandInfo:
    """Where a command is listed (``panel``) and how argv maps onto its parameters."""

    def __init__(self, name: str, panel: str, *, aliases: tuple[str, ...] = (),
                 interspersed: bool = True, lasting: bool = False) -> None:
        self.name = name
        self.panel = panel
        self.aliases = aliases
        self.interspersed = interspersed
        self.lasting = lasting


_REGISTERED: list[tuple[CommandInfo, Callable[..., Any]]] = []


def command(name: str, panel: str, *, aliases: tuple[str, ...] = (),
            interspersed: bool = True, lasting: bool = False) -> Callable[[_F], _F]:
    """Register ``fn`` as the command ``name``. ``interspersed=False``: flags only before
    the first argument, everything after it is the argument list (``exec ID -- cmd -x``).
    ``lasting``: it may run for long (follow, stream, serve), so it runs with Python's
    cyclic garbage collector on; a one-shot command runs without it (see
    :mod:`aiocri._command`)."""

    def decorator(fn: _F) -> _F:
        _REGISTERED.append((CommandInfo(name, panel, aliases=aliases,
                                        interspersed=interspersed, lasting=lasting), fn))
        return fn

    return decorator


def registered() -> list[tuple[CommandInfo, Callable[..., Any]]]:
    """Every command registered so far, in registration order."""
    return list(_REGISTERED)
