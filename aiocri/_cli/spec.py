"""Write the table of commands (``_commands.py``) from the commands' signatures.

    python -m aiocri._cli.spec           # rewrite aiocri/_cli/_commands.py (make cli)
    python -m aiocri._cli.spec --check   # exit 1 if it is out of date

The signatures (:mod:`aiocri._cli.args`) are where a command's flags are written; the
table is what the command reads at run time, so that parsing argv and printing help
import no command module (and so neither grpc nor protobuf). ``tests/test_cli_args.py``
fails when the table and the signatures disagree.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any

from aiocri._cli.args import Argument, Context, Option, registered

#: Imported in this order: the help lists panels, and commands in a panel, as registered.
COMMAND_MODULES = ("cmd_read", "cmd_write", "cmd_stream", "cmd_watch", "cmd_more",
                   "cmd_tools")
TABLE_PATH = Path(__file__).with_name("_commands.py")
_HEADER = ('"""The table of the ``aiocri`` command\'s commands and flags. Generated from the '
           'commands\'\nsignatures by ``make cli`` (python -m aiocri._cli.spec); do not edit."""'
           '\n\nfrom __future__ import annotations\n\n'
           'TYPE_CHECKING = False  # without importing typing\n'
           'if TYPE_CHECKING:\n    from typing import Any\n')


def reflowed(doc: str) -> str:
    """A docstring's paragraphs, each on one line (the help wraps them to the terminal)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _value_kind(kind: Any) -> tuple[str, bool, list[str] | None, str | None]:
    """(value type, takes several, choices, enum's import path) of an annotation."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if len(args) != 1:
            raise TypeError(f"unsupported annotation {kind!r}")
        kind = args[0]
    if typing.get_origin(kind) is list:
        return _value_kind(typing.get_args(kind)[0])[0], True, None, None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return ("choice", False, [str(m.value) for m in kind],
                f"{kind.__module__}:{kind.__qualname__}")
    names = {bool: "bool", int: "int", float: "float", str: "str"}
    if kind not in names:
        raise TypeError(f"unsupported annotation {kind!r}")
    return names[kind], False, None, None


def _param(name: str, hint: Any, parameter: inspect.Parameter) -> dict[str, Any]:
    base, *extras = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated \
        else (hint,)
    marker = next((e for e in extras if isinstance(e, Option | Argument)), None)
    if marker is None:
        raise TypeError(f"parameter {name!r} has no Option(...) or Argument(...)")
    value, many, choices, enum_path = _value_kind(base)
    default = parameter.default
    required = default is inspect.Parameter.empty
    if isinstance(default, enum.Enum):
        default = default.value
    entry: dict[str, Any] = {
        "dest": name, "type": value, "many": many, "help": " ".join(marker.help.split()),
        "metavar": marker.metavar, "required": required,
        "default": None if required else default, "show_default": marker.show_default,
    }
    if choices is not None:
        entry["choices"] = choices
        entry["enum"] = enum_path
    if isinstance(marker, Option):
        if value == "bool" and default is not False:
            raise TypeError(f"flag {name!r} must default to False: a flag can only turn "
                            "something on")
        entry["kind"] = "flag" if value == "bool" else "option"
        entry["decls"] = list(marker.decls) or [f"--{name.rstrip('_').replace('_', '-')}"]
        entry["case_sensitive"] = marker.case_sensitive
    else:
        entry["kind"] = "argument"
    return entry


def signature_params(fn: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """(the name of the parameter that takes the Context, or None; the other parameters)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    context, params = None, []
    for name, parameter in inspect.signature(fn).parameters.items():
        if hints.get(name) is Context:
            context = name
        else:
            params.append(_param(name, hints[name], parameter))
    return context, params


def build_table() -> dict[str, Any]:
    """The root's flags, every command with its flags, and the aliases."""
    from aiocri._cli import common

    for name in COMMAND_MODULES:
        importlib.import_module(f"aiocri._cli.{name}")
    commands: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    # modules in COMMAND_MODULES' order, commands in the order they are written (not
    # the order of import, which a program that imported one module first would change)
    modules = [f"aiocri._cli.{name}" for name in COMMAND_MODULES]
    for info, fn in sorted(registered(), key=lambda item: (
            modules.index(item[1].__module__), item[1].__code__.co_firstlineno)):
        context, params = signature_params(fn)
        help_text = reflowed(fn.__doc__ or "")
        commands[info.name] = {
            "module": fn.__module__, "function": fn.__qualname__, "panel": info.panel,
            "help": help_text, "summary": help_text.split("\n\n")[0],
            "context": context, "interspersed": info.interspersed, "lasting": info.lasting,
            "params": params,
        }
        aliases.update(dict.fromkeys(info.aliases, info.name))
    _, root = signature_params(common.root_flags)
    return {"ROOT": root, "HELP": reflowed(common.ROOT_HELP), "PANELS": list(common.PANELS),
            "COMMANDS": commands, "ALIASES": aliases}


def _params_source(params: list[dict[str, Any]], indent: str) -> str:
    return "[\n" + "".join(f"{indent}    {p!r},\n" for p in params) + f"{indent}]"


def render_table(table: dict[str, Any]) -> str:
    """The table as Python source: one line per flag, so that a diff shows what changed."""
    out = [_HEADER]
    for key, value in table.items():
        if key == "ROOT":
            out.append(f"ROOT: list[dict[str, Any]] = {_params_source(value, '')}\n")
        elif key == "COMMANDS":
            out.append("COMMANDS: dict[str, dict[str, Any]] = {\n")
            for name, entry in value.items():
                head = {k: v for k, v in entry.items() if k != "params"}
                out.append(f"    {name!r}: {repr(head)[:-1]},\n"
                           f"        'params': {_params_source(entry['params'], '        ')}}},\n")
            out.append("}\n")
        else:
            kind = {"HELP": "str", "PANELS": "list[str]", "ALIASES": "dict[str, str]"}[key]
            out.append(f"{key}: {kind} = {value!r}\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render_table(build_table())
    if "--check" in args:
        current = TABLE_PATH.read_text(encoding="utf-8") if TABLE_PATH.exists() else ""
        if current != text:
            print(f"{TABLE_PATH} is out of date: run make cli", file=sys.stderr)
            return 1
        return 0
    TABLE_PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
