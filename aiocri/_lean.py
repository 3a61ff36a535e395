"""Lean decoders for the list RPCs: only what a relist compares, the rest kept raw.

A relist compares each object's id, state and creation time. Parsing whole
``Container``/``PodSandbox`` messages (labels, annotations, metadata, image) costs
twice as much as parsing those few fields, and a large node lists 10,000 of them
every second. The classes here are built at import from the real descriptors: the
same field names, numbers and wire types, only the fields a relist reads; every
other field is kept by protobuf as unknown bytes, so :func:`full` rebuilds the
complete message when somebody asks for it (``Poller.snapshot``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from aiocri._proto.runtime.v1 import api_pb2

__all__ = ["ITEMS", "LISTS", "full"]

#: The fields a relist reads, per listed message.
_KEEP = {
    "Container": ("id", "pod_sandbox_id", "state", "created_at"),
    "PodSandbox": ("id", "state", "created_at"),
}
#: The list responses (RPC name -> response message) that get a lean decoder.
_RESPONSES = {
    "ListContainers": "ListContainersResponse",
    "StreamContainers": "StreamContainersResponse",
    "ListPodSandbox": "ListPodSandboxResponse",
    "StreamPodSandboxes": "StreamPodSandboxesResponse",
}
_PACKAGE = "aiocri.lean"
_F = descriptor_pb2.FieldDescriptorProto


def _copy_field(into: descriptor_pb2.DescriptorProto, field: FieldDescriptor,
                type_name: str | None = None) -> None:
    proto = _F(name=field.name, number=field.number,
               label=_F.LABEL_REPEATED if field.is_repeated else _F.LABEL_OPTIONAL)
    # An enum becomes int32: the same varint on the wire, and no enum to copy.
    proto.type = (_F.TYPE_INT32 if field.type == _F.TYPE_ENUM
                  else _F.Type.ValueType(field.type))
    if type_name is not None:
        proto.type_name = type_name
    into.field.append(proto)


def _build() -> dict[str, type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="aiocri/lean.proto", package=_PACKAGE, syntax="proto3")
    messages = api_pb2.DESCRIPTOR.message_types_by_name
    for name, keep in _KEEP.items():
        lean = file.message_type.add(name=name)
        for field_name in keep:
            _copy_field(lean, messages[name].fields_by_name[field_name])
    for response in _RESPONSES.values():
        desc: Descriptor = messages[response]
        (items,) = desc.fields  # one repeated field of a listed message
        listed = items.message_type
        if not items.is_repeated or listed is None or listed.name not in _KEEP:
            raise RuntimeError(f"unexpected shape of {desc.full_name}")
        _copy_field(file.message_type.add(name=response), items, f".{_PACKAGE}.{listed.name}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {rpc: GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{response}"))
            for rpc, response in _RESPONSES.items()}


#: Lean response classes by RPC name (``LISTS["StreamContainers"].FromString``).
LISTS: dict[str, type[Message]] = _build()
#: The repeated field holding the objects in each list response ("containers", "items"...).
ITEMS: dict[str, str] = {rpc: cls.DESCRIPTOR.fields[0].name for rpc, cls in LISTS.items()}


def full(lean: Any, cls: type[Message]) -> Any:
    """The complete message of class ``cls`` that a lean entry was parsed from."""
    if isinstance(lean, cls):
        return lean
    return cls.FromString(lean.SerializeToString())
