"""Every CRI RPC through the typed services, over a real grpc server, on both versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest
from google.protobuf.message import Message

import aiocri
from aiocri import api
from aiocri._rpc import RPCS
from aiocri.services import ImageService, RuntimeService
from aiocri.testing import FakeRuntime
from aiocri.versions import VERSIONS

IMAGE = "docker.io/library/busybox:1.36"


def test_every_rpc_has_exactly_one_typed_method() -> None:
    declared = {**RuntimeService._rpcs, **ImageService._rpcs}
    assert set(declared) == set(RPCS)
    assert set(RuntimeService._rpcs).isdisjoint(ImageService._rpcs)
    for rpc in RPCS.values():
        owner = RuntimeService if rpc.service == "RuntimeService" else ImageService
        assert getattr(owner, rpc.attr).rpc is rpc


def test_a_descriptor_that_disagrees_with_the_schema_is_refused() -> None:
    from aiocri.services import _Service, unary

    with pytest.raises(Exception) as info:  # noqa: PT011 (3.11 wraps __set_name__ errors)

        class Broken(_Service):
            _service_name = "RuntimeService"
            version = unary(api.StatusRequest, api.VersionResponse)

    cause = info.value.__cause__ or info.value
    assert isinstance(cause, TypeError)
    assert "disagrees with the schema of Version" in str(cause)


def _request(name: str, pod: str, cid: str) -> Message:
    """A valid request for ``name`` against the ids the fake runtime just made."""
    rpc = RPCS[name]
    special: dict[str, Callable[[], Message]] = {
        "RunPodSandbox": lambda: api.RunPodSandboxRequest(
            config=api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="p", uid="u", namespace="n"))
        ),
        "CreateContainer": lambda: api.CreateContainerRequest(
            pod_sandbox_id=pod,
            config=api.ContainerConfig(
                metadata=api.ContainerMetadata(name="c2"), image=api.ImageSpec(image=IMAGE)
            ),
        ),
        "ExecSync": lambda: api.ExecSyncRequest(container_id=cid, cmd=["echo", "hi"]),
        "Exec": lambda: api.ExecRequest(container_id=cid, cmd=["sh"], stdout=True),
        "Attach": lambda: api.AttachRequest(container_id=cid, stdout=True),
        "PortForward": lambda: api.PortForwardRequest(pod_sandbox_id=pod, port=[80]),
        "ImageStatus": lambda: api.ImageStatusRequest(image=api.ImageSpec(image=IMAGE)),
        "PullImage": lambda: api.PullImageRequest(image=api.ImageSpec(image=IMAGE)),
        "RemoveImage": lambda: api.RemoveImageRequest(image=api.ImageSpec(image=IMAGE)),
        "CheckpointContainer": lambda: api.CheckpointContainerRequest(
            container_id=cid, location="/tmp/x.tar"
        ),
        "CheckpointPod": lambda: api.CheckpointPodRequest(pod_sandbox_id=pod, output_path="/tmp/p"),
        "RestorePod": lambda: api.RestorePodRequest(
            checkpoint_path="/tmp/p",
            config=api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="restored", uid="r")),
        ),
    }
    if name in special:
        return special[name]()
    request = rpc.request_type()
    fields = request.DESCRIPTOR.fields_by_name
    if "pod_sandbox_id" in fields:
        request.pod_sandbox_id = pod  # type: ignore[attr-defined]
    if "container_id" in fields:
        request.container_id = cid  # type: ignore[attr-defined]
    return request


async def _call(client: aiocri.CRIClient, rt: FakeRuntime, name: str, request: Message) -> Any:
    rpc = RPCS[name]
    service: Any = client.runtime if rpc.service == "RuntimeService" else client.image
    method = getattr(service, rpc.attr)
    if not rpc.server_streaming:
        return await method(request)
    items = []
    if name == "GetContainerEvents":
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def change() -> None:
                    await rt.wait_for_event_streams(1)
                    rt.state.add_pod("evt")

                tg.start_soon(change)
                async for item in method(request):
                    items.append(item)
                    break
        return items
    async for item in method(request):
        items.append(item)
    return items


@pytest.mark.anyio
@pytest.mark.parametrize("served", ["v1", "v1alpha2"])
async def test_every_rpc_on_each_version(sock_dir: Path, served: str) -> None:
    version = VERSIONS[served]
    async with (
        FakeRuntime(str(sock_dir / "rt.sock"), versions=(served,)) as rt,
        aiocri.connect(rt.endpoint) as client,
    ):
        assert client.version is version
        answered: list[str] = []
        for name, rpc in RPCS.items():
            made = rt.populate(pods=1, containers_per_pod=1)
            pod, cid = made.pod_ids[0], made.container_ids[0]
            if name == "StartContainer":
                cid = rt.state.add_container(pod, "fresh", start=False)
            request = _request(name, pod, cid)
            before = rt.calls_by_path[version.paths.get(name, "")]
            if not version.has(rpc):
                service: Any = client.runtime if rpc.service == "RuntimeService" else client.image
                with pytest.raises(aiocri.UnsupportedByVersion, match=f"{name}.*{served}"):
                    if rpc.server_streaming:
                        async for _ in getattr(service, rpc.attr)(request):
                            pass
                    else:
                        await getattr(service, rpc.attr)(request)
                continue
            response = await _call(client, rt, name, request)
            # Sent on the pinned version's path, and typed as the schema says.
            assert rt.calls_by_path[version.path(rpc)] == before + 1, name
            for item in response if rpc.server_streaming else [response]:
                assert type(item) is rpc.response_type
            answered.append(name)
        assert len(answered) == len(version.rpcs)


@pytest.mark.anyio
async def test_responses_carry_what_the_runtime_did(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint) as client:
        made = rt.populate(pods=2, containers_per_pod=3)
        listed = await client.runtime.list_containers()
        assert {c.id for c in listed.containers} == set(made.container_ids)
        streamed = [c.id async for chunk in client.runtime.stream_containers()
                    for c in chunk.containers]
        assert sorted(streamed) == sorted(made.container_ids)
        executed = await client.runtime.exec_sync(
            api.ExecSyncRequest(container_id=made.container_ids[0], cmd=["echo", "hi"])
        )
        assert (executed.stdout, executed.exit_code) == (b"hi\n", 0)
        with pytest.raises(aiocri.NotFound, match="not found"):
            await client.runtime.container_status(api.ContainerStatusRequest(container_id="nope"))
        image = await client.image.image_status(api.ImageStatusRequest(image=api.ImageSpec(image=IMAGE)))
        assert IMAGE in image.image.repo_tags


@pytest.mark.anyio
async def test_per_call_timeout_overrides_default(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint, timeout=0.2) as client:
        rt.inject_latency("Status", 0.5)
        with pytest.raises(aiocri.DeadlineExceeded):
            await client.runtime.status()  # the client's default, 0.2 s
        await client.runtime.status(timeout=5)


# -- keyword calls, wrong arguments and empty references: refused before any round trip --


@pytest.mark.anyio
async def test_keyword_calls(runtime: FakeRuntime) -> None:
    cid = runtime.populate(1, 1).container_ids[0]
    async with aiocri.connect(runtime.endpoint) as client:
        by_keywords = await client.runtime.container_status(container_id=cid, verbose=True)
        by_message = await client.runtime.container_status(
            api.ContainerStatusRequest(container_id=cid, verbose=True))
        assert by_keywords.status == by_message.status and by_keywords.info
        running = await client.runtime.list_containers(filter=api.ContainerFilter(
            state=api.ContainerStateValue(state=api.CONTAINER_RUNNING)))
        assert [c.id for c in running.containers] == [cid]
        assert (await client.runtime.list_containers(filter={"id": cid})).containers[0].id == cid
        done = await client.runtime.exec_sync(container_id=cid, cmd=["echo", "kw"])
        assert done.stdout == b"kw\n"
        # timeout= is the deadline; requests with a timeout of their own say so at once
        with pytest.raises(TypeError, match="has a timeout of its own"):
            await client.runtime.stop_container(container_id=cid, timeout=30)
        with pytest.raises(TypeError, match=r"cmd takes a list, not a str"):
            await client.runtime.exec_sync(container_id=cid, cmd="ls -l")  # type: ignore[arg-type]
        timed = await client.runtime.exec_sync(
            api.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=5), timeout=10)
        assert timed.exit_code == 0


@pytest.mark.anyio
async def test_wrong_arguments_fail_at_once(runtime: FakeRuntime) -> None:
    cid = runtime.populate(1, 1).container_ids[0]
    async with aiocri.connect(runtime.endpoint) as client:
        before = sum(runtime.calls.values())
        with pytest.raises(TypeError, match=r"takes a ContainerStatusRequest or keyword fields "
                                            r"\(container_id=...\), not str"):
            await client.runtime.container_status(cid)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not both"):
            await client.runtime.container_status(  # type: ignore[call-overload]
                api.ContainerStatusRequest(container_id=cid), container_id=cid)
        with pytest.raises(TypeError, match='has no "container" field'):
            await client.runtime.container_status(container="x")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="container_status"):
            await client.runtime.container_status(container_id=7)  # type: ignore[arg-type]
        assert sum(runtime.calls.values()) == before


@pytest.mark.anyio
@pytest.mark.parametrize("call", [
    lambda c: c.runtime.container_status(container_id=""),
    lambda c: c.runtime.container_status(),
    lambda c: c.runtime.stop_container(api.StopContainerRequest(container_id="  ", timeout=1)),
    lambda c: c.runtime.remove_pod_sandbox(pod_sandbox_id="\t"),
    lambda c: c.runtime.port_forward(pod_sandbox_id="", port=[80]),
    lambda c: c.image.remove_image(image=api.ImageSpec(image="")),
    lambda c: c.image.remove_image(),
    lambda c: c.image.image_status(image=api.ImageSpec(image=" ")),
    lambda c: c.image.pull_image(api.PullImageRequest()),
    lambda c: c.runtime.create_container(pod_sandbox_id="p", config=api.ContainerConfig(
        metadata=api.ContainerMetadata(name="x"))),
])
async def test_empty_references_are_never_sent(runtime: FakeRuntime,
                                               call: Callable[[aiocri.CRIClient], Any]) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        images = len(runtime.state.images)
        before = sum(runtime.calls.values())
        pending = call(client)  # refused where it is awaited, like the runtime's answer
        with pytest.raises(aiocri.InvalidArgument, match="nothing was sent") as refused:
            await pending
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert sum(runtime.calls.values()) == before
        assert len(runtime.state.images) == images
        # filters may be empty: they mean "everything"
        await client.runtime.list_containers(filter=api.ContainerFilter(id=""))
        await client.image.list_images()
