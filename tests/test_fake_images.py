"""The fake runtime's images behave as containerd's CRI image service does.

One content under several names is one image; removing it by any name removes
every name; digests pull and remove; the image's user shows as uid/username;
a pull honours its deadline; prune keeps the pinned sandbox image.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import aiocri
from aiocri import api
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
