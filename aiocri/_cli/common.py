"""What every subcommand shares: the typer app, global options, option types, helpers."""

from __future__ import annotations

import enum
import functools
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from google.protobuf.message import Message
from rich.console import Console
from typer.core import TyperGroup

from aiocri._cli.gotemplate import Template, TemplateError
from aiocri._cli.render import OutputFormat, make_table, parse_message, stdout_console
from aiocri._cli.runner import CLIError, cli_line, configure_logging, fail
from aiocri._cli.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    IMAGE_ENV,
    RUNTIME_ENV,
    Settings,
    SettingsError,
    parse_duration,
    resolve_settings,
)
from aiocri.endpoint import DEFAULT_ENDPOINTS, parse_endpoint
from aiocri.errors import EndpointError

__all__ = [
    "CHANGE",
    "INSPECT",
    "TRY",
    "WATCH",
    "OutputOpt",
    "TemplateOpt",
    "app",
    "command",
    "debug_flag",
    "load_message",
    "output_template",
    "parse_labels",
    "print_table",
    "settings_of",
]

_HELP = (
    "A CRI client for containerd and CRI-O, with crictl's commands and conventions.\n\n"
    f"The runtime endpoint comes from -r, else ${RUNTIME_ENV}, else runtime-endpoint in the "
    f"config file (--config, ${CONFIG_ENV}, or {DEFAULT_CONFIG_PATH}), else the first usable "
    f"of {', '.join(DEFAULT_ENDPOINTS)}."
)


class _Root(TyperGroup):
    """The ``aiocri`` group: a usage error (an unknown flag, a missing argument, a value
    of the wrong type) prints one line naming the flag and what it takes, and exits 2,
    as every other bad argument does (typer would draw a box)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        run = functools.partial(super().main, args, prog_name, complete_var,
                                windows_expand_args=windows_expand_args, **extra)
        if not standalone_mode:
            return run(standalone_mode=False)
        try:
            code = run(standalone_mode=False)
        except typer.Abort:
            sys.stderr.write("aiocri: aborted\n")
            raise SystemExit(1) from None
        except typer.TyperException as exc:
            _usage_error(exc)
        raise SystemExit(code if isinstance(code, int) else 0)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    # bare `aiocri`: the help is printed already (typer's own check, by the class's name)
    if type(exc).__name__ == "NoArgsIsHelpError":
        raise SystemExit(exc.exit_code)
    text = _typed_value_problem(exc)
    if text is None:  # typer's own words, and where the usage is
        ctx = getattr(exc, "ctx", None)
        names = []
        while ctx is not None and ctx.parent is not None:
            names.append(ctx.info_name)
            ctx = ctx.parent
        text = (f"{exc.format_message().rstrip('.')}; see "
                f"'{' '.join(['aiocri', *reversed(names)])} -h'")
    fail("", CLIError(text, code=2), debug=_debug_flag[0])


def _typed_value_problem(exc: typer.TyperException) -> str | None:
    """A line such as "-n/--last takes a whole number, not 'abc'" for a value typer could
    not convert to the option's type, from the option and the rejected input (None if
    either is unknown)."""
    param = getattr(exc, "param", None)
    errors = getattr(exc.__cause__, "errors", None)  # typer converts with pydantic
    descriptor = getattr(param, "type_descriptor", None)
    if param is None or descriptor is None or not callable(errors):
        return None
    found = errors()
    if not found or "input" not in found[0]:
        return None
    value = found[0]["input"]
    kinds = [a for a in typing.get_args(descriptor.annotation) if a is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else descriptor.annotation
    names = "/".join(sorted(getattr(param, "opts", ()), key=len)) or str(param.name)
    if kind is int:
        return f"{names} takes a whole number, not {value!r}"
    if kind is float:
        return f"{names} takes a number, not {value!r}"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        choices = [str(m.value) for m in kind]
        return f"{names} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}"
    return None


app = typer.Typer(
    name="aiocri",
    help=_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=_Root,
)


@dataclass(frozen=True)
class _Flags:
    runtime_endpoint: str | None
    image_endpoint: str | None
    timeout: str | None
    debug: bool
    config: str | None


_F = TypeVar("_F", bound=Callable[..., Any])
# Help panels.
INSPECT = "Inspect"
CHANGE = "Change"
WATCH = "Follow"
TRY = "Try it"
_debug_flag: list[bool] = [False]


def command(name: str, panel: str, **kwargs: Any) -> Callable[[_F], _F]:
    """``@app.command(name)`` shown under ``panel`` in the help, with errors found before
    any call (bad flags, bad files) printed as one line like every other failure."""

    def decorator(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                return fn(*args, **kw)
            except CLIError as exc:
                fail("", exc, debug=_debug_flag[0])

        kwargs.setdefault("help", _reflowed(fn.__doc__ or ""))
        app.command(name, rich_help_panel=panel, **kwargs)(wrapper)
        return fn

    return decorator


def _reflowed(doc: str) -> str:
    """A docstring's paragraphs, each on one line: the help wraps them to the terminal
    (typer's rich help would keep the source's line breaks, and wrap again inside)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


@app.callback()
def _root(
    ctx: typer.Context,
    runtime_endpoint: Annotated[str | None, typer.Option(
        "-r", "--runtime-endpoint", metavar="ENDPOINT",
        help=f"Runtime socket, unix:///path (env {RUNTIME_ENV})",
        show_default=False)] = None,
    image_endpoint: Annotated[str | None, typer.Option(
        "-i", "--image-endpoint", metavar="ENDPOINT",
        help=f"Image service socket (default: the runtime endpoint; env {IMAGE_ENV})",
        show_default=False)] = None,
    timeout: Annotated[str | None, typer.Option(
        "-t", "--timeout", metavar="DURATION",
        help="Deadline of the connection and of each call, as 2, 2s or 500ms, or inf "
             "for none (crictl's default: 2s)", show_default=False)] = None,
    debug: Annotated[bool, typer.Option(
        "-D", "--debug", help="Log connection details; show gRPC codes and tracebacks "
                              "on errors")] = False,
    config: Annotated[str | None, typer.Option(
        "-c", "--config", metavar="FILE",
        help=f"crictl config file (env {CONFIG_ENV}; default {DEFAULT_CONFIG_PATH})",
        show_default=False)] = None,
) -> None:
    try:  # bad flags are usage errors: exit 2 before anything runs
        if timeout is not None:
            parse_duration(timeout, what="-t/--timeout")
        for flag, endpoint in (("-r/--runtime-endpoint", runtime_endpoint),
                               ("-i/--image-endpoint", image_endpoint)):
            if endpoint is not None:
                try:
                    parse_endpoint(endpoint, allow_tcp=True)  # as crictl, tcp:// too
                except EndpointError as exc:
                    advice = cli_line(exc).replace("-r unix", f"{flag[:2]} unix")
                    raise SettingsError(f"bad {flag}: {advice}") from None
    except SettingsError as exc:
        fail("", CLIError(str(exc), code=2), debug=debug)
    ctx.obj = _Flags(runtime_endpoint, image_endpoint, timeout, debug, config)
    _debug_flag[0] = debug
    configure_logging(debug)


def debug_flag() -> bool:
    """Whether -D/--debug was given (for errors found outside :func:`settings_of`)."""
    return _debug_flag[0]


def settings_of(ctx: typer.Context) -> Settings:
    """The resolved settings (flag > env > config file > defaults); exits on a bad file."""
    flags = ctx.obj
    if not isinstance(flags, _Flags):  # a subcommand invoked without the root callback
        flags = _Flags(None, None, None, False, None)
    try:
        settings = resolve_settings(
            runtime_endpoint=flags.runtime_endpoint,
            image_endpoint=flags.image_endpoint,
            timeout=flags.timeout,
            debug=True if flags.debug else None,
            config=flags.config,
        )
    except SettingsError as exc:
        fail("reading the settings", exc, debug=flags.debug)
    if settings.debug and not flags.debug:
        configure_logging(True)
    return settings


# -- option types ------------------------------------------------------------------------

OutputOpt = Annotated[OutputFormat, typer.Option(
    "-o", "--output", help="Output format: table, json, yaml or go-template (with --template)",
    case_sensitive=False)]
TemplateOpt = Annotated[str | None, typer.Option(
    "--template", metavar="TEMPLATE", show_default=False,
    help="A Go template for -o go-template, run on what -o json prints: fields by their "
         "JSON names ({{.status.id}}), range, if, with, printf, index, len, json")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Only display ids")]
LabelOpt = Annotated[list[str] | None, typer.Option(
    "--label", metavar="KEY=VALUE", help="Filter by label (repeatable)", show_default=False)]
NoTruncOpt = Annotated[bool, typer.Option("--no-trunc", help="Show full ids")]


# -- helpers ---------------------------------------------------------------------------------


def output_template(output: OutputFormat, template: str | None) -> Template | None:
    """The parsed ``--template`` for ``-o go-template`` (None for the other formats); a
    usage error when one comes without the other or the template cannot be parsed."""
    if output is not OutputFormat.go_template:
        if template is not None:
            raise CLIError("--template goes with -o go-template; add -o go-template", code=2)
        return None
    if template is None:
        raise CLIError("-o go-template needs --template, e.g. --template '{{.status.id}}'",
                       code=2)
    try:
        return Template(template)
    except TemplateError as exc:
        raise CLIError(f"bad --template: {exc}", code=2) from None


def parse_labels(items: Iterable[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; crictl's rule: exactly one ``=``."""
    labels: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or "=" in value or not key:
            raise CLIError(f"incorrectly specified label {item!r}; write it as key=value",
                           code=2)
        labels[key] = value
    return labels


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]],
                console: Console | None = None) -> None:
    """Print a crictl-like table; piped output has no trailing blanks and no wrapping."""
    console = console or stdout_console()
    table = make_table(headers, rows)
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as capture:
        console.print(table)
    out = "\n".join(line.rstrip() for line in capture.get().splitlines())
    sys.stdout.write(out + "\n" if out else "")
    sys.stdout.flush()


M = TypeVar("M", bound=Message)


def load_message(path: str, message_type: type[M], *, what: str) -> M:
    """A config file (JSON or YAML, snake_case or lowerCamel keys) as ``message_type``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise CLIError(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CLIError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from None
    data: Any
    try:
        if os.path.splitext(path)[1].lower() == ".json":
            data = json.loads(text)
        else:  # YAML is a superset of JSON: .yaml, .yml and anything else
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"{what} {path} is not valid JSON/YAML ({first}); fix the file") from None
    message = message_type()
    try:
        parse_message(data, message, source=f"{what} {path}")
    except ValueError as exc:
        raise CLIError(f"{exc}; fix the file") from None
    return message
