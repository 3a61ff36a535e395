"""Messages as plain data: ``to_dict``, ``to_json``, ``from_dict``.

Field names and values as crictl prints them (protobuf's JSON mapping: lowerCamelCase
names, enums by name, 64-bit integers as strings, every field shown), except the
values of ``KeyValue`` pairs (environment variables), which are bytes on the wire
and shown as text, as in crictl's config files. A value that is not UTF-8 is shown
as ``{"base64": "<its bytes in base64>"}``, so that ``from_dict(to_dict(m))`` is
always ``m``; ``from_dict`` takes both forms.

    print(aiocri.to_json(await client.runtime.container_status(container_id=cid)))
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from aiocri import api

__all__ = ["from_dict", "merge_dict", "to_dict", "to_json"]

M = TypeVar("M", bound=Message)
_KEY_VALUE = api.KeyValue.DESCRIPTOR.full_name
_BASE64 = "base64"  # the key of a KeyValue value that is not UTF-8


def to_dict(message: Message) -> dict[str, Any]:
    """``message`` as a dict of JSON values, as crictl shows it."""
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    _walk_key_values(data, message.DESCRIPTOR, _decode_value)
    return data


def to_json(message: Message, *, indent: int | None = 2) -> str:
    """``message`` as JSON text, as ``crictl inspect -o json`` prints it."""
    return json.dumps(to_dict(message), indent=indent)


def from_dict(data: Any, message_type: type[M]) -> M:
    """A ``message_type`` from a dict (lowerCamelCase or snake_case keys); ValueError
    naming the bad field otherwise."""
    message = message_type()
    merge_dict(data, message, source="the data")
    return message


def merge_dict(data: Any, message: Message, *, source: str) -> None:
    """Fill ``message`` from ``data``; ValueError with one line naming ``source``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source} must hold a JSON/YAML object (a mapping of fields)")
    data = copy.deepcopy(data)  # the KeyValue fix below edits in place
    try:
        _walk_key_values(data, message.DESCRIPTOR, _encode_value)
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        text = str(exc).splitlines()[0] if str(exc) else "not a valid message"
        raise ValueError(
            f"{source} is not a valid {message.DESCRIPTOR.name}: {text}"
        ) from None


def _decode_value(value: Any) -> Any:
    # MessageToDict gives bytes as base64: text when it is UTF-8, else kept as base64
    if isinstance(value, str):
        raw = base64.b64decode(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {_BASE64: value}
    return value


def _encode_value(value: Any) -> Any:
    # crictl's config files carry env values as text; the wire type is bytes.
    if isinstance(value, str):
        return base64.b64encode(value.encode()).decode()
    if value is None:
        return value
    encoded = value.get(_BASE64) if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(encoded, str):
        with contextlib.suppress(ValueError):  # not base64: binascii.Error
            return base64.b64encode(base64.b64decode(encoded, validate=True)).decode()
    raise json_format.ParseError(
        'a KeyValue value must be text or {"base64": "<base64 of its bytes>"}')


def _walk_key_values(data: Any, descriptor: Any, fix: Callable[[Any], Any]) -> None:
    """Apply ``fix`` to the ``value`` of every KeyValue inside ``data``."""
    if not isinstance(data, dict):
        return
    if descriptor.full_name == _KEY_VALUE:
        if "value" in data:
            data["value"] = fix(data["value"])
        return
    for fd in descriptor.fields:
        if fd.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        sub: Any = fd.message_type
        for key in dict.fromkeys((fd.json_name, fd.name)):
            if key not in data:
                continue
            value = data[key]
            if sub.GetOptions().map_entry:
                value_fd: Any = sub.fields_by_name["value"]
                if value_fd.type == FieldDescriptor.TYPE_MESSAGE and isinstance(value, dict):
                    for item in value.values():
                        _walk_key_values(item, value_fd.message_type, fix)
            elif isinstance(value, list):
                for item in value:
                    _walk_key_values(item, sub, fix)
            else:
                _walk_key_values(value, sub, fix)
