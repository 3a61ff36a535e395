"""The fake runtime's images behave as containerd's CRI image service does.

One content under several names is one image; removing it by any name removes
every name; digests pull and remove; the image's user shows as uid/username;
a pull honours its deadline; prune keeps the pinned sandbox image. As containerd
1.6/1.7: ListImages ignores its filter, images carry no spec, an empty reference is an
id prefix, only 1.7 pins, ImageFsInfo has no container filesystems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

import aiocri
from aiocri import api
from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri._rpc import RPCS
from aiocri.testing import FakeRuntime, FakeState, Image

pytestmark = pytest.mark.anyio


def test_one_content_under_several_tags_is_one_image() -> None:
    state = FakeState(images=[], registry=[], seed=1)
    state.pull_policy = "any"
    first = state.pull_image("busybox:1.36")
    mirror = state.pull_image("mirror.example.com/library/busybox:1.36")
    assert mirror is first and len(state.images) == 1
    assert first.repo_tags == ["docker.io/library/busybox:1.36",
                               "mirror.example.com/library/busybox:1.36"]
    assert [d.split("@")[0] for d in first.repo_digests] == [
        "docker.io/library/busybox", "mirror.example.com/library/busybox"]
    other = state.pull_image("busybox:1.35")  # other content, other image
    assert other.id != first.id and len(state.images) == 2
    # removal by one name removes every name of that content, and nothing else
    assert state.remove_image("mirror.example.com/library/busybox:1.36")
    assert state.find_image("docker.io/library/busybox:1.36") is None
    assert list(state.images) == [other.id]


def test_tag_adds_a_name_and_digests_resolve() -> None:
    state = FakeState(seed=1)
    busybox = state.find_image("busybox:1.36")
    assert busybox is not None
    state.tag_image("busybox:1.36", "localhost/tools/shell:v1")
    assert busybox.repo_tags == ["docker.io/library/busybox:1.36", "localhost/tools/shell:v1"]
    by_digest = busybox.repo_digests[0]
    assert state.find_image(by_digest) is busybox
    assert state.pull_image(by_digest) is busybox  # present: a pull by digest is a no-op
    with pytest.raises(Exception, match="not found"):
        state.tag_image("ghost:1", "x:1")


def test_a_digest_reference_pulls_and_removes() -> None:
    state = FakeState(images=[], seed=1)
    state.pull_policy = "any"
    ref = "docker.io/library/alpine@sha256:" + "ab" * 32
    image = state.pull_image(ref)
    assert image.repo_tags == [] and image.repo_digests == [ref]
    assert state.find_image(ref) is image
    assert state.remove_image(ref) and not state.images


def test_image_user_is_uid_or_username() -> None:
    state = FakeState(images=["registry.k8s.io/pause:3.9",
                              Image.from_ref("nginx:1.25", user="nginx"),
                              Image.from_ref("app:1", user="1000:1000"),
                              "busybox:1.36"])
    protos = {i.repo_tags[0]: i.to_proto() for i in state.images.values()}
    pause = protos["registry.k8s.io/pause:3.9"]
    assert pause.HasField("uid") and pause.uid.value == 65535 and pause.username == ""
    assert pause.pinned
    nginx = protos["docker.io/library/nginx:1.25"]
    assert not nginx.HasField("uid") and nginx.username == "nginx"
    assert protos["docker.io/library/app:1"].uid.value == 1000
    busybox = protos["docker.io/library/busybox:1.36"]
    assert not busybox.HasField("uid") and busybox.username == ""


async def test_a_pull_honours_its_deadline(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock", registry=["example.com/slow:1"]) as rt, \
            rt.connect() as client:
        rt.state.pull_seconds = 30.0
        spec = api.ImageSpec(image="example.com/slow:1")
        with pytest.raises(aiocri.DeadlineExceeded):
            await client.image.pull_image(image=spec, timeout=0.2)
        assert rt.state.find_image("example.com/slow:1") is None  # nothing half-pulled
        rt.state.pull_seconds = 0.01
        pulled = await client.image.pull_image(image=spec, timeout=5)
        assert rt.state.find_image("example.com/slow:1") is not None
        assert pulled.image_ref.startswith("sha256:")


async def test_image_status_over_grpc_carries_the_user(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, rt.connect() as client:
        status = await client.image.image_status(image=api.ImageSpec(image="pause:3.9"))
        assert status.image.id == ""  # docker.io/library/pause: not what is local
        status = await client.image.image_status(
            image=api.ImageSpec(image="registry.k8s.io/pause:3.9"))
        assert status.image.uid.value == 65535 and status.image.pinned


async def _raw(rt: FakeRuntime, method: str, request: Any) -> Any:
    """One call on a bare channel (aiocri refuses an empty reference before sending)."""
    async with grpc.aio.insecure_channel(rt.endpoint) as channel:
        rpc = RPCS[method]
        return await channel.unary_unary(
            f"/runtime.v1.ImageService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )(request, timeout=10)


async def _refusal(rt: FakeRuntime, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _raw(rt, method, request)
    return caught.value.code(), caught.value.details() or ""


async def test_list_ignores_its_filter_and_images_carry_no_spec(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        everything = await _raw(rt, "ListImages", pb.ListImagesRequest())
        assert len(everything.images) == len(rt.state.images) > 1
        # containerd 1.6 and 1.7 list every image, whatever the filter says
        for ref in ("busybox:1.36", "localhost/nosuch:1"):
            filtered = await _raw(rt, "ListImages", pb.ListImagesRequest(
                filter=pb.ImageFilter(image=pb.ImageSpec(image=ref))))
            assert filtered == everything
        assert not any(i.HasField("spec") for i in everything.images)
        status = await _raw(rt, "ImageStatus", pb.ImageStatusRequest(
            image=pb.ImageSpec(image="busybox:1.36")))
        assert status.image.id and not status.image.HasField("spec")


async def test_the_sandbox_image_is_pinned_on_17_only_and_removable(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        pause = pb.ImageSpec(image="registry.k8s.io/pause:3.9")

        async def pinned() -> tuple[bool, list[bool]]:
            status = await _raw(rt, "ImageStatus", pb.ImageStatusRequest(image=pause))
            listed = await _raw(rt, "ListImages", pb.ListImagesRequest())
            return status.image.pinned, [i.pinned for i in listed.images]

        assert await pinned() == (True, [i.pinned for i in rt.state.images.values()])
        assert any(i.pinned for i in rt.state.images.values())
        rt.state.compat = "1.6"  # 1.6 pins nothing
        assert await pinned() == (False, [False] * len(rt.state.images))
        rt.state.compat = "1.7"
        await _raw(rt, "RemoveImage", pb.RemoveImageRequest(image=pause))  # pinned: removed
        assert rt.state.find_image(pause.image) is None


async def test_an_empty_reference_is_an_id_prefix(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock", images=["busybox:1.36", "alpine:3"]) as rt:
        empty = pb.ImageSpec(image="")
        assert await _refusal(rt, "ImageStatus", pb.ImageStatusRequest(image=empty)) == (
            grpc.StatusCode.UNKNOWN, 'can not resolve "" locally: ambiguous digest string')
        assert await _refusal(rt, "RemoveImage", pb.RemoveImageRequest(image=empty)) == (
            grpc.StatusCode.UNKNOWN, 'can not resolve "" locally: ambiguous digest string')
        assert len(rt.state.images) == 2
        # a prefix shorter than the fake's usual 4 hex digits resolves the same way
        alpine = rt.state.find_image("alpine:3")
        assert alpine is not None
        busybox = rt.state.find_image("busybox:1.36")
        assert busybox is not None
        assert alpine.id[7] != busybox.id[7]  # (their ids are fixed: digests of the names)
        assert rt.state.resolve_image(alpine.id[7]) is alpine
        rt.state.remove_image("alpine:3")
        # with one image left, the empty reference is that image (containerd.md)
        only = await _raw(rt, "ImageStatus", pb.ImageStatusRequest(image=empty))
        assert only.image.id == busybox.id
        await _raw(rt, "RemoveImage", pb.RemoveImageRequest(image=empty))
        assert not rt.state.images
        nothing = await _raw(rt, "ImageStatus", pb.ImageStatusRequest(image=empty))
        assert not nothing.HasField("image")


async def test_pull_of_an_empty_reference_and_image_fs(tmp_path: Path) -> None:
    async with FakeRuntime(tmp_path / "rt.sock") as rt:
        assert await _refusal(rt, "PullImage", pb.PullImageRequest()) == (
            grpc.StatusCode.UNKNOWN, 'failed to parse image reference "": invalid reference format')
        rt.state.add_container(rt.state.add_pod("p"), "c")
        fs = await _raw(rt, "ImageFsInfo", pb.ImageFsInfoRequest())
        assert len(fs.image_filesystems) == 1 and list(fs.container_filesystems) == []


def test_import_image_adds_names_without_a_repo_digest() -> None:
    state = FakeState(images=[], registry=[], seed=1)
    imported = state.import_image("localhost/tools/shell:1")
    assert imported.repo_tags == ["localhost/tools/shell:1"] and imported.repo_digests == []
    assert state.find_image("localhost/tools/shell:1") is imported
    assert not state.registry  # imported, not pullable
    # an Image keeps what it has (a digest too), and known content gains its names
    with_digest = Image.from_ref("localhost/tools/shell:1", user="1000")
    again = state.import_image(with_digest.named("localhost/tools/alias:2"))
    assert again is imported and len(state.images) == 1
    assert imported.repo_tags == ["localhost/tools/shell:1", "localhost/tools/alias:2"]
    assert [d.split("@")[0] for d in imported.repo_digests] == ["localhost/tools/alias"]
