"""Item 13: to_dict / to_json / from_dict give back exactly the message, for every
message type of the schema with random values (found by walking its descriptors)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiocri
from aiocri import api
from aiocri._proto.runtime.v1 import api_pb2

F = FieldDescriptor
MAX_DEPTH = 3  # messages nested deeper than this are left unset
_INT_RANGES = {
    F.CPPTYPE_INT32: (-(2**31), 2**31 - 1), F.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    F.CPPTYPE_UINT32: (0, 2**32 - 1), F.CPPTYPE_UINT64: (0, 2**64 - 1),
}
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)  # no lone surrogates


def all_messages(descriptors: Any) -> Iterator[Descriptor]:
    for descriptor in descriptors:
        if not descriptor.GetOptions().map_entry:
            yield descriptor
            yield from all_messages(descriptor.nested_types)


MESSAGES = sorted(all_messages(api_pb2.DESCRIPTOR.message_types_by_name.values()),
                  key=lambda d: d.full_name)


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.cpp_type in _INT_RANGES:
        low, high = _INT_RANGES[field.cpp_type]
        return st.integers(low, high)
    if field.cpp_type in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
        # JSON has one NaN ("NaN"): other NaN bit patterns cannot come back
        width = 64 if field.cpp_type == F.CPPTYPE_DOUBLE else 32
        return st.floats(width=width, allow_nan=False) | st.just(math.nan)
    if field.cpp_type == F.CPPTYPE_BOOL:
        return st.booleans()
    if field.cpp_type == F.CPPTYPE_ENUM:  # open enums: unknown numbers too
        known = st.sampled_from([v.number for v in field.enum_type.values])
        return known | st.integers(-(2**31), 2**31 - 1)
    if field.type == F.TYPE_BYTES:  # mostly text (crictl's case), sometimes not UTF-8
        return st.binary(max_size=8) | text.map(str.encode)
    assert field.type == F.TYPE_STRING, field.full_name
    return text


def value_of(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    return scalar(field)


@cache
def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            if value.message_type is None or depth < MAX_DEPTH:
                fields[field.name] = st.dictionaries(scalar(key), value_of(value, depth),
                                                     max_size=2)
        elif entry is not None and depth >= MAX_DEPTH:
            continue
        elif field.is_repeated:
            fields[field.name] = st.lists(value_of(field, depth), max_size=2)
        else:
            fields[field.name] = value_of(field, depth)
    return st.fixed_dictionaries({}, optional=fields).map(lambda kwargs: cls(**kwargs))


def assert_exact(back: Message, message: Message) -> None:
    # the bytes tell 0.0 from -0.0, and see NaN equal to itself where == does not
    assert back.SerializeToString(deterministic=True) == message.SerializeToString(
        deterministic=True)
    if "nan" not in str(message):
        assert back == message


@pytest.mark.parametrize("descriptor", MESSAGES, ids=lambda d: d.name)
def test_item_13_every_message_round_trips_exactly(descriptor: Descriptor) -> None:
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(messages(descriptor))
    def round_trip(message: Message) -> None:
        data = aiocri.to_dict(message)
        assert_exact(aiocri.from_dict(data, type(message)), message)
        text = aiocri.to_json(message)
        assert_exact(aiocri.from_dict(json.loads(text), type(message)), message)
        assert aiocri.to_dict(message) == data  # from_dict left its input alone

    round_trip()


def test_item_13_schema_walk_covers_every_field_kind() -> None:
    # the walk above reaches all 175 message types, and every field type they use
    assert len(MESSAGES) == 175
    kinds = {field.type for d in MESSAGES for field in d.fields}
    assert {F.TYPE_BYTES, F.TYPE_ENUM, F.TYPE_DOUBLE, F.TYPE_MESSAGE} <= kinds


def test_item_13_env_value_that_is_not_utf8() -> None:
    envs = [api.KeyValue(key="LATIN1", value="café".encode("latin-1")),
            api.KeyValue(key="TEXT", value="café".encode())]
    config = api.ContainerConfig(envs=envs)
    data = aiocri.to_dict(config)
    # text stays text, as crictl shows it; other bytes keep every bit in base64
    assert data["envs"] == [{"key": "LATIN1", "value": {"base64": "Y2Fm6Q=="}},
                            {"key": "TEXT", "value": "café"}]
    assert aiocri.from_dict(data, api.ContainerConfig) == config
    assert aiocri.from_dict(json.loads(aiocri.to_json(config)), api.ContainerConfig) == config
    for bad in ({"base64": "not base64!"}, {"base64": 5}, {"base64": "", "x": 1}, 5):
        with pytest.raises(ValueError, match=r"KeyValue value must be text or \{\"base64\""):
            aiocri.from_dict({"envs": [{"key": "A", "value": bad}]}, api.ContainerConfig)
