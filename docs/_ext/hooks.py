"""mkdocs hooks: the reference's tables generated from the code at build time.

``<!-- generated: aiocri names -->`` becomes the table of the names ``aiocri`` exports,
each linked to the page of the public module that documents it;
``<!-- generated: aiocri.api -->`` becomes the tables of what ``aiocri.api`` holds (the
CRI messages and enums, read from the protobuf descriptors), each name with an anchor
``aiocri.api.NAME`` that cross-references (``[ImageSpec][aiocri.api.ImageSpec]``) reach.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

#: Where a name that ``aiocri`` exports is documented: the first of these modules
#: that exports or defines the same object.
DOCUMENTING_MODULES = (
    "aiocri.client", "aiocri.services", "aiocri.errors", "aiocri.channel",
    "aiocri.endpoint", "aiocri.versions", "aiocri.poller", "aiocri.streaming",
    "aiocri.logs", "aiocri.convert", "aiocri.instrument",
)

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "str", FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_DOUBLE: "float",
    FieldDescriptor.TYPE_FLOAT: "float",
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if "<!-- generated: aiocri names -->" in markdown:
        markdown = markdown.replace("<!-- generated: aiocri names -->", top_level_table())
    if "<!-- generated: aiocri.api -->" in markdown:
        markdown = markdown.replace("<!-- generated: aiocri.api -->", api_tables())
    return markdown


def _summary(obj: object) -> str:
    """The first paragraph of the docstring of a class or a function, for a table."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return ""
    markdown: Callable[[str], str] = _sphinx_markup().markdown
    doc = markdown(inspect.getdoc(obj) or "")
    return doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


@functools.cache
def _sphinx_markup() -> Any:
    """docs/_ext/sphinx_markup.py (the griffe extension), for its ``markdown()``."""
    spec = importlib.util.spec_from_file_location(
        "_aiocri_sphinx_markup", Path(__file__).with_name("sphinx_markup.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documents(module_name: str, name: str, obj: object) -> bool:
    """Whether the page of ``module_name`` documents ``obj`` as ``name``: the module
    exports it, or defines it (``ExecFailed`` is defined in aiocri.errors without
    being in its ``__all__``)."""
    module = importlib.import_module(module_name)
    if getattr(module, name, None) is not obj:
        return False
    return name in module.__all__ or getattr(obj, "__module__", None) == module_name


def top_level_table() -> str:
    import aiocri

    rows = ["| name | documented as | |", "|---|---|---|"]
    for name in sorted(aiocri.__all__, key=str.lower):
        obj = getattr(aiocri, name)
        home = next((m for m in DOCUMENTING_MODULES if _documents(m, name, obj)), None)
        if home is None:
            raise LookupError(f"aiocri.{name} is in no documenting module's __all__")
        rows.append(f"| `aiocri.{name}` | [`{home}.{name}`][{home}.{name}] | {_summary(obj)} |")
    return "\n".join(rows) + "\n"


def _anchor(name: str) -> str:
    return f"[](){{#aiocri.api.{name}}}"


def _link(name: str) -> str:
    return f"[`{name}`](#aiocri.api.{name})"


def _type(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message = field.message_type
        assert message is not None
        if message.GetOptions().map_entry:
            key, value = message.fields_by_name["key"], message.fields_by_name["value"]
            return f"map[{_type(key)}, {_type(value)}]"
        text = _link(message.name)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        text = _link(enum.name) if enum.containing_type is None else (
            f"{_link(enum.containing_type.name)}.`{enum.name}`")
    else:
        text = _SCALARS.get(field.type, "int")
    return f"list[{text}]" if field.is_repeated else text


def _fields(message: Descriptor) -> str:
    if not message.fields:
        return "(no fields)"
    fields = ", ".join(f"`{f.name}`: {_type(f)}" for f in message.fields)
    for enum in message.enum_types:
        values = ", ".join(f"`{v.name}`" for v in enum.values)
        fields += f"; nested enum `{enum.name}`: {values}"
    return fields


def _values(enum: EnumDescriptor) -> str:
    return ", ".join(f"{_anchor(v.name)}`{v.name}` = {v.number}" for v in enum.values)


def api_tables() -> str:
    from aiocri import api
    from aiocri._rpc import RPCS, snake_case

    file = api.DESCRIPTOR
    calls = ["| method | request | response |", "|---|---|---|"]
    for rpc in RPCS.values():
        attr = "runtime" if rpc.service == "RuntimeService" else "image"
        method = f"aiocri.services.{rpc.service}.{snake_case(rpc.name)}"
        stream = " (a stream of)" if rpc.server_streaming else ""
        calls.append(f"| [`client.{attr}.{snake_case(rpc.name)}`][{method}] | "
                     f"{_link(rpc.request_type.__name__)} | "
                     f"{stream} {_link(rpc.response_type.__name__)} |")
    messages = ["| message | fields |", "|---|---|"]
    for name in sorted(file.message_types_by_name):
        messages.append(f"| {_anchor(name)}`{name}` | "
                        f"{_fields(file.message_types_by_name[name])} |")
    enums = ["| enum | values (also module constants: `aiocri.api.TCP`) |", "|---|---|"]
    for name in sorted(file.enum_types_by_name):
        enums.append(f"| {_anchor(name)}`{name}` | {_values(file.enum_types_by_name[name])} |")
    return "\n".join([
        f"### Requests and responses of the {len(RPCS)} RPCs", "", *calls, "",
        f"### The {len(messages) - 2} messages", "", *messages, "",
        f"### The {len(enums) - 2} enums", "", *enums, "",
    ])
