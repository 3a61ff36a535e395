"""The poller's lean list decoders: the fields a relist reads, and nothing lost."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from aiocri import api
from aiocri._lean import LISTS, full
from aiocri._rpc import RPCS


def _filled(cls: type[Message], depth: int = 0) -> Message:
    """A message with every field set to a distinct non-default value (from its descriptor)."""
    msg = cls()
    for n, f in enumerate(cls.DESCRIPTOR.fields, start=1):
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            getattr(msg, f.name)[f"k{n}"] = f"v{n}"
        elif f.message_type is not None:
            if depth < 2:
                getattr(msg, f.name).CopyFrom(_filled(type(getattr(msg, f.name)), depth + 1))
        elif f.type == FieldDescriptor.TYPE_STRING:
            value = f"{f.name}-{n}"
            getattr(msg, f.name).append(value) if f.is_repeated else setattr(msg, f.name, value)
        elif f.type == FieldDescriptor.TYPE_BOOL and not f.is_repeated:
            setattr(msg, f.name, True)
        elif f.type == FieldDescriptor.TYPE_ENUM and not f.is_repeated:
            setattr(msg, f.name, f.enum_type.values[-1].number)
        elif f.type != FieldDescriptor.TYPE_BYTES and not f.is_repeated:
            setattr(msg, f.name, 1000 + n)
    return msg


@pytest.mark.parametrize("rpc", sorted(LISTS))
def test_lean_list_keeps_every_field(rpc: str) -> None:
    response_type = RPCS[rpc].response_type
    (items_field,) = response_type.DESCRIPTOR.fields
    item_type = type(getattr(response_type(), items_field.name).add())
    items = [_filled(item_type), _filled(item_type)]
    response = response_type()
    getattr(response, items_field.name).extend(items)

    lean = LISTS[rpc].FromString(response.SerializeToString())
    lean_items = getattr(lean, items_field.name)
    assert len(lean_items) == 2
    for original, entry in zip(items, lean_items, strict=True):
        # the fields a relist reads, with the same values
        for name in ("id", "state", "created_at"):
            assert getattr(entry, name) == getattr(original, name)
        # the rest kept as unknown bytes: the full message comes back whole
        rebuilt = full(entry, item_type)
        assert isinstance(rebuilt, item_type)
        assert rebuilt == original
    # a lean entry is smaller in Python but not on the wire
    assert len(lean.SerializeToString()) == len(response.SerializeToString())


def test_lean_container_has_its_pod() -> None:
    c = api.Container(id="c", pod_sandbox_id="p", state=api.CONTAINER_EXITED, created_at=7)
    entry = LISTS["ListContainers"].FromString(
        api.ListContainersResponse(containers=[c]).SerializeToString()).containers[0]
    assert (entry.pod_sandbox_id, entry.state) == ("p", api.CONTAINER_EXITED)


def test_full_passes_full_messages_through() -> None:
    c = api.Container(id="c")
    assert full(c, api.Container) is c
