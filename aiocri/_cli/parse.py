"""Parse the ``aiocri`` command line from the table of commands, then run the command.

Only the table (``_commands.py``) and argparse are loaded to parse argv, print help
or refuse a bad flag; the command's module (and grpc with it) is imported once the
arguments are known to be good. Every usage error is one line on stderr and exit 2,
in the command's words: the flag, what it takes, what it got.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import textwrap

from aiocri._cli import _commands as table

# typing.TYPE_CHECKING without importing typing: --help and a bad flag load little else
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

__all__ = ["UsageError", "main"]

PROG = "aiocri"
_METAVARS = {"int": "N", "float": "NUM", "str": "TEXT"}
_WIDTH: list[int] = []


class UsageError(Exception):
    """A bad command line: printed as one line, exit 2."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    arguments: Sequence[str] = ()  # what the command line gives as arguments

    def error(self, message: str) -> NoReturn:
        raise UsageError(_reworded(message, self.arguments), self.prog)


class _Formatter(argparse.HelpFormatter):
    """``-o, --output TEXT`` rather than argparse's ``-o OUTPUT, --output OUTPUT``."""

    def __init__(self, prog: str) -> None:
        # argparse makes a formatter per flag added, each asking the terminal's size
        if not _WIDTH:
            _WIDTH.append(max(_columns() - 2, 40))
        super().__init__(prog, max_help_position=30, width=_WIDTH[0])

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._metavar_formatter(action, action.dest.upper())(1)[0]
        return f"{', '.join(action.option_strings)} {metavar}"


def _columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (and its
    compression modules) on every run: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
        return 80


def _reworded(message: str, arguments: Sequence[str] = ()) -> str:
    """argparse's messages in the command's words."""
    head, _, rest = message.partition(": ")
    if head == "unrecognized arguments":
        token = next((t for t in rest.split() if t != "--"), "--")
        return (f"unknown flag {token}" if token.startswith("-") and token not in arguments
                else f"unexpected extra argument {token!r}")
    if head.startswith("argument ") and rest.startswith("ignored explicit argument "):
        extra = rest[len("ignored explicit argument "):].strip("'")
        return f"unknown flag -{extra[:1]}"
    if head == "the following arguments are required":
        return f"missing {rest}"
    if head.startswith("argument ") and rest == "expected one argument":
        return f"{head[len('argument '):]} needs a value"
    if head.startswith("argument "):
        return f"{head[len('argument '):]}: {rest}"
    return message


def _names(param: dict[str, Any]) -> str:
    if param["kind"] == "argument":
        return str(param["metavar"] or param["dest"].upper())
    return "/".join(sorted(param["decls"], key=len))


def _metavar(param: dict[str, Any]) -> str:
    if param["metavar"]:
        return str(param["metavar"])
    if "choices" in param:
        return "|".join(param["choices"])
    return _METAVARS[param["type"]] if param["kind"] != "argument" else param["dest"].upper()


def _help(param: dict[str, Any]) -> str:
    text = str(param["help"]).replace("%", "%%")
    default = param["default"]
    if param["show_default"] and not (default is None or default is False
                                      or default == "" or default == []):
        text = f"{text} [default: {default}]".strip()
    return text


def _add(parser: argparse.ArgumentParser, param: dict[str, Any], last: bool,
         interspersed: bool) -> None:
    help_text = _help(param)
    dest = param["dest"]
    if param["kind"] == "flag":
        parser.add_argument(*param["decls"], dest=dest, action="store_true", default=None,
                            help=help_text)
    elif param["kind"] == "option":
        parser.add_argument(*param["decls"], dest=dest, default=None,
                            action="append" if param["many"] else "store",
                            required=param["required"], metavar=_metavar(param),
                            help=help_text)
    else:
        if param["many"]:
            nargs: Any = ("+" if param["required"] else "*") if interspersed or not last \
                else argparse.REMAINDER
        else:
            nargs = None if param["required"] else "?"
        parser.add_argument(dest, nargs=nargs, default=None,
                            metavar=_metavar(param).removesuffix("..."), help=help_text)


def _parser(prog: str, description: str, params: Sequence[dict[str, Any]],
            interspersed: bool = True) -> _Parser:
    parser = _Parser(prog=prog, description=description, add_help=False, allow_abbrev=False,
                     formatter_class=_Formatter, usage=_usage(prog, params, interspersed))
    arguments = [p for p in params if p["kind"] == "argument"]
    for param in params:
        _add(parser, param, bool(arguments) and param is arguments[-1], interspersed)
    parser.add_argument("-h", "--help", action="store_true", help="Show this help and exit")
    return parser


def _arranged(args: Sequence[str], params: Sequence[dict[str, Any]], interspersed: bool
              ) -> tuple[list[str], list[str]]:
    """``args`` as argparse reads them right: the options first, each with its value
    joined (``-t=-5s``, ``-qn2``: a value may start with ``-``, as in crictl), then ``--``,
    then the arguments. What follows the user's ``--`` is an argument whatever it looks
    like (``rm -- -af`` names a container); so is everything after the first argument
    of a command whose arguments are not ours (``exec ID sh -c x``). Returned apart:
    (options, arguments); argparse takes ``[*options, "--", *arguments]``."""
    takes_value = {d for p in params if p["kind"] == "option" for d in p["decls"]}
    short_flags = {d for p in params if p["kind"] == "flag" for d in p["decls"]
                   if not d.startswith("--")}
    options: list[str] = []
    arguments: list[str] = []
    tokens = list(args)
    n = 0
    while n < len(tokens):
        token = tokens[n]
        n += 1
        if token == "--":
            arguments += tokens[n:]
            break
        if token == "-" or not token.startswith("-"):
            arguments.append(token)
            if not interspersed:
                arguments += tokens[n:]
                break
            continue
        if token in takes_value and n < len(tokens):
            token, n = f"{token}={tokens[n]}", n + 1
        elif not token.startswith("--") and n < len(tokens):
            # a cluster of short flags ending in one that takes a value: -qn 2
            flags = [f"-{c}" for c in token[1:]]
            if flags[-1] in takes_value and all(f in short_flags for f in flags[:-1]):
                token, n = token + tokens[n], n + 1
        options.append(token)
    return options, arguments


def _argv(options: list[str], arguments: list[str]) -> list[str]:
    return [*options, "--", *arguments] if arguments else options


def _usage(prog: str, params: Sequence[dict[str, Any]], interspersed: bool) -> str:
    """``aiocri rm [OPTIONS] [ID...]``: the arguments in full, the options in the list."""
    parts = [prog, "[OPTIONS]"]
    arguments = [p for p in params if p["kind"] == "argument"]
    for param in arguments:
        name = _metavar(param).removesuffix("...")
        if param["many"] and not interspersed and param is arguments[-1]:
            name = f"{name}..."
        elif param["many"]:
            name = f"{name}..." if param["required"] else f"[{name}...]"
        elif not param["required"]:
            name = f"[{name}]"
        parts.append(name)
    return " ".join(parts)


def _convert(param: dict[str, Any], text: str) -> Any:
    kind = param["type"]
    try:
        if kind in ("int", "float") and not text.isascii():  # int() takes other digits
            raise ValueError(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        what = "a whole number" if kind == "int" else "a number"
        raise UsageError(f"{_names(param)} takes {what}, not {text!r}") from None
    if kind == "choice":
        choices: list[str] = param["choices"]
        found = text if param.get("case_sensitive", True) else next(
            (c for c in choices if c.lower() == text.lower()), text)
        if found not in choices:
            raise UsageError(f"{_names(param)} must be {', '.join(choices[:-1])} or "
                             f"{choices[-1]}, not {text!r}")
        return found
    return text


def _values(params: Sequence[dict[str, Any]], ns: argparse.Namespace) -> dict[str, Any]:
    """The arguments given, converted; those not given are left to the function's
    defaults."""
    values: dict[str, Any] = {}
    for param in params:
        given = getattr(ns, param["dest"])
        if given is None:
            continue
        if param["many"]:
            values[param["dest"]] = [_convert(param, v) for v in given]
        else:
            values[param["dest"]] = _convert(param, given)
    return values


def _root_help(parser: argparse.ArgumentParser) -> str:
    width = parser._get_formatter()._width  # the terminal's, as argparse measures it
    lines = [f"usage: {PROG} [GLOBAL OPTIONS] COMMAND [ARGS]...", ""]
    for paragraph in table.HELP.split("\n\n"):
        lines += [*textwrap.wrap(paragraph, width), ""]
    commands: dict[str, list[tuple[str, str]]] = {panel: [] for panel in table.PANELS}
    for name, entry in table.COMMANDS.items():
        commands.setdefault(entry["panel"], []).append((name, entry["summary"]))
    column = max(len(name) for name in table.COMMANDS) + 4
    for panel, rows in commands.items():
        if rows:
            lines.append(f"{panel} commands:")
            for name, summary in rows:
                wrapped = textwrap.wrap(summary, max(20, width - column - 2)) or [""]
                lines.append(f"  {name.ljust(column - 2)}{wrapped[0]}")
                lines += [" " * column + more for more in wrapped[1:]]
            lines.append("")
    formatter = parser._get_formatter()
    formatter.start_section("global options")
    formatter.add_arguments([a for a in parser._actions if a.option_strings])
    formatter.end_section()
    lines += [formatter.format_help().strip("\n"), "",
              f"Run '{PROG} COMMAND -h' for a command's flags."]
    return "\n".join(lines) + "\n"


def _fail(error: UsageError, prog: str) -> NoReturn:
    sys.stderr.write(f"{PROG}: {error}; see '{error.prog or prog} -h'\n")
    raise SystemExit(2)


def main(argv: Sequence[str]) -> None:
    """Run ``aiocri argv``; exits with the command's code."""
    root = _parser(PROG, table.HELP, table.ROOT)
    root.add_argument("--version", action="store_true", help="Print aiocri's version and exit")
    root.add_argument("command", nargs="?", metavar="COMMAND")
    root.add_argument("rest", nargs=argparse.REMAINDER)
    prog = PROG
    try:
        ns = root.parse_args(_argv(*_arranged(argv, table.ROOT, interspersed=False)))
        if ns.version:
            from aiocri import __version__

            sys.stdout.write(f"{PROG} version {__version__}\n")
            raise SystemExit(0)
        if ns.help or not argv:
            sys.stdout.write(_root_help(root))
            raise SystemExit(0)
        if ns.command is None:
            raise UsageError("missing a command (ps, pods, exec, ...)")
        flags = _values(table.ROOT, ns)
        name = table.ALIASES.get(ns.command, ns.command)
        entry = table.COMMANDS.get(name)
        if entry is None:
            raise UsageError(f"no command {ns.command!r}; the commands: "
                             f"{', '.join(table.COMMANDS)}")
        prog = f"{PROG} {name}"
        parser = _parser(prog, entry["help"], entry["params"], entry["interspersed"])
        options, arguments = _arranged(ns.rest, entry["params"], entry["interspersed"])
        if "-h" in options or "--help" in options:  # even with a required flag missing
            sys.stdout.write(parser.format_help())
            raise SystemExit(0)
        parser.arguments = arguments
        values = _values(entry["params"], parser.parse_args(_argv(options, arguments)))
    except UsageError as exc:
        _fail(exc, prog)
    _run(name, entry, flags, values)


def _run(name: str, entry: dict[str, Any], flags: dict[str, Any],
         values: dict[str, Any]) -> None:
    from aiocri._cli.args import Context
    from aiocri._cli.common import root_flags
    from aiocri._cli.runner import CLIError, fail

    if entry["lasting"] and not gc.isenabled():  # off for start-up (aiocri._command)
        gc.freeze()  # what start-up made stays: collections look at what the command makes
        gc.enable()
    context = Context(root_flags(**flags), name)
    function = getattr(importlib.import_module(entry["module"]), entry["function"])
    for param in entry["params"]:
        if param.get("enum") and param["dest"] in values:
            module, _, qualname = param["enum"].partition(":")
            kind = getattr(importlib.import_module(module), qualname)
            values[param["dest"]] = kind(values[param["dest"]])
    if entry["context"]:
        values[entry["context"]] = context
    try:
        code = function(**values)
    except CLIError as exc:
        fail("", exc, debug=context.obj.debug)
    raise SystemExit(code if isinstance(code, int) else 0)
