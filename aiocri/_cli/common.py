"""What every subcommand shares: the typer app, global options, option types, helpers."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
import yaml
from google.protobuf.message import Message
from rich.console import Console

from aiocri._cli.render import OutputFormat, make_table, parse_message, stdout_console
from aiocri._cli.runner import CLIError, configure_logging, fail
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
from aiocri.endpoint import DEFAULT_ENDPOINTS

__all__ = [
    "CHANGE",
    "INSPECT",
    "TRY",
    "WATCH",
    "OutputOpt",
    "app",
    "command",
    "debug_flag",
    "load_message",
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

app = typer.Typer(
    name="aiocri",
    help=_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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

        app.command(name, rich_help_panel=panel, **kwargs)(wrapper)
        return fn

    return decorator


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
    if timeout is not None:  # a usage error: exit 2 before anything runs
        try:
            parse_duration(timeout, what="-t/--timeout")
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
    "-o", "--output", help="Output format: table, json or yaml", case_sensitive=False)]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Only display ids")]
LabelOpt = Annotated[list[str] | None, typer.Option(
    "--label", metavar="KEY=VALUE", help="Filter by label (repeatable)", show_default=False)]
NoTruncOpt = Annotated[bool, typer.Option("--no-trunc", help="Show full ids")]


# -- helpers ---------------------------------------------------------------------------------


def parse_labels(items: Iterable[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; crictl's rule: exactly one ``=``."""
    labels: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or "=" in value or not key:
            raise CLIError(f"incorrectly specified label {item!r}; write it as key=value")
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
