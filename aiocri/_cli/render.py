"""CRI messages as crictl prints them, and the small formatting helpers.

JSON follows crictl (``protojson`` with ``EmitDefaultValues``): lowerCamel
field names, fields without presence printed even when empty, 64-bit integers
as strings, enums by name; ``KeyValue.value`` (bytes on the wire) as plain
text. YAML is the same data with sorted keys, as crictl's ``JSONToYAML``.
Tables are columns of text 3 spaces apart, as crictl's tabwriter prints them.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from aiocri import api

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from aiocri._cli.gotemplate import Template

__all__ = [
    "OutputFormat",
    "dump",
    "format_table",
    "human_duration",
    "human_size",
    "info_dict",
    "message_dict",
    "parse_message",
    "rfc3339",
    "truncate_id",
]

_KEY_VALUE = api.KeyValue.DESCRIPTOR.full_name
TRUNCATED_ID_LEN = 13  # crictl's truncatedIDLen


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"
    go_template = "go-template"  # with --template, run on the JSON (crictl's form)


# -- messages <-> dicts ---------------------------------------------------------------


def message_dict(message: Message) -> dict[str, Any]:
    """``message`` as crictl's JSON would show it."""
    from aiocri.convert import to_dict  # protobuf's json_format: not for tables

    return to_dict(message)


def parse_message(data: Any, message: Message, *, source: str) -> None:
    """Fill ``message`` from a decoded JSON/YAML document (snake_case or lowerCamel keys).

    Raises ValueError with one line naming ``source`` and the bad field.
    """
    from aiocri.convert import merge_dict

    merge_dict(data, message, source=source)


def info_dict(info: Mapping[str, str]) -> dict[str, Any]:
    """The verbose ``info`` map as crictl shows it: JSON objects decoded, strings unquoted."""
    out: dict[str, Any] = {}
    for key in sorted(info):
        value = info[key]
        if value.startswith("{"):
            try:
                out[key] = json.loads(value)
                continue
            except ValueError:
                pass
        out[key] = value.strip('"')
    return out


def with_times(data: dict[str, Any], **nanos: int | None) -> dict[str, Any]:
    """Replace nanosecond timestamps by RFC 3339 text (crictl's inspect output)."""
    for key, value in nanos.items():
        data[key] = rfc3339(value)
    return data


def rfc3339(nanos: int | None) -> str:
    """Go's ``time.Unix(0, n).Format(time.RFC3339Nano)``; None is Go's zero time."""
    if nanos is None:
        return "0001-01-01T00:00:00Z"
    seconds, frac = divmod(nanos, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


# -- output -----------------------------------------------------------------------------


def dump(data: Any, fmt: OutputFormat, stream: TextIO | None = None, *,
         template: Template | None = None) -> None:
    """Print ``data`` as indented JSON, as YAML with sorted keys (crictl's forms), or
    through ``template`` (``-o go-template``), a line ending it as crictl's does."""
    out = stream or sys.stdout
    if fmt is OutputFormat.go_template:
        if template is None:
            raise ValueError("-o go-template needs --template")
        out.write(template.execute(data) + "\n")
    elif fmt is OutputFormat.yaml:
        import yaml  # loaded for -o yaml only

        out.write(yaml.safe_dump(data, sort_keys=True, default_flow_style=False,
                                 allow_unicode=True))
    else:
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """crictl's tables (Go's tabwriter, padding 3): each column as wide as its widest
    cell, 3 spaces apart, no trailing blanks; "" when there are no rows and no headers."""
    lines = [list(headers), *(list(row) for row in rows)]
    if not lines[0] and len(lines) == 1:
        return ""
    widths = [max(len(line[n]) for line in lines if n < len(line))
              for n in range(max(len(line) for line in lines))]
    return "".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        .rstrip() + "\n" for line in lines)


# -- humanising ---------------------------------------------------------------------------


def truncate_id(ident: str, prefix: str = "", *, full: bool = False) -> str:
    """crictl's getTruncatedID: drop ``prefix``, keep 13 characters."""
    ident = ident.removeprefix(prefix)
    return ident if full else ident[:TRUNCATED_ID_LEN]


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as crictl's CREATED column shows ages."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def age(nanos: int, now: float | None = None) -> str:
    """``N units ago`` from a nanosecond timestamp."""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - nanos / 1e9)) + " ago"


_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision (decimal units): 2.05MB, 320kB."""
    i = 0
    while size >= 1000.0 and i < len(_SIZE_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{_SIZE_UNITS[i]}"
