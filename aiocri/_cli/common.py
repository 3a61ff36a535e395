"""What every subcommand shares: the global flags, option types, helpers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aiocri._cli.args import Context, Option, command
from aiocri._cli.render import OutputFormat, format_table, parse_message
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

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from aiocri._cli.gotemplate import Template

__all__ = [
    "CHANGE",
    "INSPECT",
    "PANELS",
    "ROOT_HELP",
    "TRY",
    "WATCH",
    "Context",
    "Option",
    "OutputOpt",
    "TemplateOpt",
    "command",
    "debug_flag",
    "load_message",
    "output_template",
    "parse_labels",
    "print_table",
    "root_flags",
    "settings_of",
]

ROOT_HELP = (
    "A CRI client for containerd and CRI-O, with crictl's commands and conventions.\n\n"
    f"The runtime endpoint comes from -r, else ${RUNTIME_ENV}, else runtime-endpoint in the "
    f"config file (--config, ${CONFIG_ENV}, or {DEFAULT_CONFIG_PATH}), else the first usable "
    f"of {', '.join(DEFAULT_ENDPOINTS)}."
)


@dataclass(frozen=True)
class _Flags:
    runtime_endpoint: str | None
    image_endpoint: str | None
    timeout: str | None
    debug: bool
    config: str | None


# Help panels, in the order the help lists them.
INSPECT = "Inspect"
CHANGE = "Change"
STREAM = "Stream"
WATCH = "Follow"
TOOLS = "Configure"
TRY = "Try it"
PANELS = (INSPECT, CHANGE, STREAM, WATCH, TOOLS, TRY)
_debug_flag: list[bool] = [False]


def root_flags(
    runtime_endpoint: Annotated[str | None, Option(
        "-r", "--runtime-endpoint", metavar="ENDPOINT",
        help=f"Runtime socket, unix:///path (env {RUNTIME_ENV})",
        show_default=False)] = None,
    image_endpoint: Annotated[str | None, Option(
        "-i", "--image-endpoint", metavar="ENDPOINT",
        help=f"Image service socket (default: the runtime endpoint; env {IMAGE_ENV})",
        show_default=False)] = None,
    timeout: Annotated[str | None, Option(
        "-t", "--timeout", metavar="DURATION",
        help="Deadline of the connection and of each call, as 2, 2s or 500ms, or inf "
             "for none (crictl's default: 2s)", show_default=False)] = None,
    debug: Annotated[bool, Option(
        "-D", "--debug", help="Log connection details; show gRPC codes and tracebacks "
                              "on errors")] = False,
    config: Annotated[str | None, Option(
        "-c", "--config", metavar="FILE",
        help=f"crictl config file (env {CONFIG_ENV}; default {DEFAULT_CONFIG_PATH})",
        show_default=False)] = None,
) -> _Flags:
    """The global flags, checked: a bad one is a usage error (exit 2) before anything runs."""
    try:
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
    _debug_flag[0] = debug
    configure_logging(debug)
    return _Flags(runtime_endpoint, image_endpoint, timeout, debug, config)


def debug_flag() -> bool:
    """Whether -D/--debug was given (for errors found outside :func:`settings_of`)."""
    return _debug_flag[0]


def settings_of(ctx: Context) -> Settings:
    """The resolved settings (flag > env > config file > defaults); exits on a bad file."""
    flags = ctx.obj
    if not isinstance(flags, _Flags):  # a command run without the global flags
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

OutputOpt = Annotated[OutputFormat, Option(
    "-o", "--output", help="Output format: table, json, yaml or go-template (with --template)",
    case_sensitive=False)]
TemplateOpt = Annotated[str | None, Option(
    "--template", metavar="TEMPLATE", show_default=False,
    help="A Go template for -o go-template, run on what -o json prints: fields by their "
         "JSON names ({{.status.id}}), range, if, with, printf, index, len, json")]
QuietOpt = Annotated[bool, Option("-q", "--quiet", help="Only display ids")]
LabelOpt = Annotated[list[str] | None, Option(
    "--label", metavar="KEY=VALUE", help="Filter by label (repeatable)", show_default=False)]
NoTruncOpt = Annotated[bool, Option("--no-trunc", help="Show full ids")]


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
    from aiocri._cli.gotemplate import Template, TemplateError  # for -o go-template only

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


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print a crictl-like table (tabwriter's columns, 3 spaces apart)."""
    text = format_table(headers, rows)
    sys.stdout.write(text)
    sys.stdout.flush()


M = TypeVar("M", bound="Message")


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
    import yaml  # only for a file (the command's other paths do without it)

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
