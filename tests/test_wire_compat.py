"""Proof of "one schema, two versions": v1 messages are v1alpha2 on the wire.

The frozen proto/runtime/v1alpha2/api.proto is compiled here into a private
descriptor pool. For every message v1alpha2 has (taken from its descriptors),
a fully populated v1alpha2 message must parse as the v1 message of the same
name with every field equal, and back again without loss.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from aiocri._proto.runtime.v1 import api_pb2
from aiocri.versions import V1ALPHA2

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def v1alpha2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("v1alpha2") / "set.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
         f"--descriptor_set_out={out}", "runtime/v1alpha2/api.proto"],
        check=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return pool.FindFileByName("runtime/v1alpha2/api.proto")


def _v1(name: str) -> Descriptor:
    return api_pb2.DESCRIPTOR.message_types_by_name[name]


def _fill(msg: Message, depth: int = 0) -> None:
    """Set every field of ``msg`` to a non-default value (recursing 4 deep)."""
    for i, field in enumerate(msg.DESCRIPTOR.fields, start=1):
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f, value_f = field.message_type.fields
            m = getattr(msg, field.name)
            key = _scalar(key_f, i)
            if value_f.message_type is not None:
                if depth < 4:
                    _fill(m[key], depth + 1)
            else:
                m[key] = _scalar(value_f, i)
            continue
        repeated = field.is_repeated
        if field.message_type is not None:
            if depth >= 4:
                continue
            if repeated:
                for _ in range(2):
                    _fill(getattr(msg, field.name).add(), depth + 1)
            else:
                _fill(getattr(msg, field.name), depth + 1)
        elif repeated:
            getattr(msg, field.name).extend([_scalar(field, i), _scalar(field, i + 1)])
        else:
            setattr(msg, field.name, _scalar(field, i))


def _scalar(field: FieldDescriptor, seed: int) -> Any:
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return f"s{seed}-{field.name}"
    if t == FieldDescriptor.TYPE_BYTES:
        return f"s{seed}-{field.name}".encode()
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5 * seed
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return -seed
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return -(10**12) - seed
    return 10**9 + seed  # unsigned


def _assert_same(a: Message, b: Message, path: str) -> None:
    """Every field of ``a`` (v1alpha2) has the same value in ``b`` (v1)."""
    for field in a.DESCRIPTOR.fields:
        other = b.DESCRIPTOR.fields_by_name.get(field.name)
        assert other is not None, f"{path}.{field.name} missing in v1"
        va, vb = getattr(a, field.name), getattr(b, field.name)
        where = f"{path}.{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            assert set(va) == set(vb), where
            for k in va:
                if isinstance(va[k], Message):
                    _assert_same(va[k], vb[k], f"{where}[{k}]")
                else:
                    assert _norm(va[k]) == _norm(vb[k]), where
        elif field.message_type is not None:
            if field.is_repeated:
                assert len(va) == len(vb), where
                for n, (x, y) in enumerate(zip(va, vb, strict=True)):
                    _assert_same(x, y, f"{where}[{n}]")
            else:
                assert a.HasField(field.name) == b.HasField(other.name), where
                _assert_same(va, vb, where)
        elif field.is_repeated:
            assert [_norm(x) for x in va] == [_norm(y) for y in vb], where
        else:
            assert _norm(va) == _norm(vb), where


def _norm(value: Any) -> Any:
    # KeyValue.value is string in v1alpha2 and bytes in v1: same bytes on the wire.
    return value.decode() if isinstance(value, bytes) else value


def test_every_v1alpha2_field_keeps_number_name_and_wire_type(v1alpha2: Any) -> None:
    checked = 0

    def walk(old: Descriptor, new: Descriptor) -> None:
        nonlocal checked
        for field in old.fields:
            twin = new.fields_by_number.get(field.number)
            assert twin is not None, f"{old.full_name}.{field.name} has no v1 field"
            assert twin.name == field.name, f"{old.full_name}: {field.name} != {twin.name}"
            types = {field.type, twin.type}
            assert field.type == twin.type or types == {
                FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES
            }, f"{old.full_name}.{field.name} changed type"
            assert field.is_repeated == twin.is_repeated
            checked += 1
        for nested in old.nested_types:
            walk(nested, new.nested_types_by_name[nested.name])

    names = list(v1alpha2.message_types_by_name)
    assert len(names) > 100
    for name in names:
        walk(v1alpha2.message_types_by_name[name], _v1(name))
    for name, enum in v1alpha2.enum_types_by_name.items():
        v1_enum = api_pb2.DESCRIPTOR.enum_types_by_name[name]
        for value in enum.values:
            assert v1_enum.values_by_name[value.name].number == value.number
    assert checked > 350  # 397 fields when v1alpha2 was frozen


def test_populated_messages_cross_versions_field_for_field(v1alpha2: Any) -> None:
    for name, desc in v1alpha2.message_types_by_name.items():
        old_cls = GetMessageClass(desc)
        new_cls = GetMessageClass(_v1(name))
        # Runtime -> client: v1alpha2 bytes read as v1.
        old = old_cls()
        _fill(old)
        as_new = new_cls.FromString(old.SerializeToString())
        _assert_same(old, as_new, name)
        # Client -> runtime: v1 bytes read as v1alpha2, nothing lost or unknown.
        back = old_cls.FromString(as_new.SerializeToString())
        assert back == old, name


def test_v1alpha2_rpc_table_matches_frozen_schema(v1alpha2: Any) -> None:
    rpcs = {m.name for s in v1alpha2.services_by_name.values() for m in s.methods}
    assert rpcs == V1ALPHA2.rpcs
    for service in v1alpha2.services_by_name.values():
        for method in service.methods:
            v1_method = api_pb2.DESCRIPTOR.services_by_name[service.name].methods_by_name[
                method.name
            ]
            assert v1_method.input_type.name == method.input_type.name
            assert v1_method.output_type.name == method.output_type.name
