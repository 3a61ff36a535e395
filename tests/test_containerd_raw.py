"""The private containerd fixture, proven through raw grpc.aio calls (no aiocri client).

Needs root and containerd, runc, busybox-static: skipped without them, except in CI.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from aiocri._proto.runtime.v1 import api_pb2
from aiocri.testing.containerd import (
    BUSYBOX_IMAGE,
    Containerd,
    ContainerdError,
    container_config,
    containerd_available,
)
from tests.containerd_fixture import series

pytestmark = pytest.mark.anyio

R = TypeVar("R", bound=Message)
RUNTIME = "/runtime.v1.RuntimeService/"
IMAGES = "/runtime.v1.ImageService/"


@asynccontextmanager
async def raw_channel(ctd: Containerd) -> AsyncIterator[grpc.aio.Channel]:
    # A local subchannel pool: no backoff inherited from an earlier channel.
    channel = grpc.aio.insecure_channel(
        ctd.endpoint, options=[("grpc.use_local_subchannel_pool", 1)]
    )
    try:
        yield channel
    finally:
        await channel.close(grace=None)


async def call(channel: grpc.aio.Channel, path: str, request: Message, response_type: type[R]) -> R:
    method = channel.unary_unary(
        path,
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_type.FromString,
    )
    response: R = await method(request, timeout=30)
    return response


async def run_pod(channel: grpc.aio.Channel, ctd: Containerd, name: str) -> tuple[str, Any]:
    config = ctd.pod_config(name)
    response = await call(
        channel,
        RUNTIME + "RunPodSandbox",
        api_pb2.RunPodSandboxRequest(config=config),
        api_pb2.RunPodSandboxResponse,
    )
    return response.pod_sandbox_id, config


async def run_sleeper(
    channel: grpc.aio.Channel, pod_id: str, pod_config: api_pb2.PodSandboxConfig, name: str
) -> str:
    created = await call(
        channel,
        RUNTIME + "CreateContainer",
        api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=container_config(name),
            sandbox_config=pod_config,
        ),
        api_pb2.CreateContainerResponse,
    )
    await call(
        channel,
        RUNTIME + "StartContainer",
        api_pb2.StartContainerRequest(container_id=created.container_id),
        api_pb2.StartContainerResponse,
    )
    return created.container_id


async def remove_pod(channel: grpc.aio.Channel, pod_id: str) -> None:
    await call(
        channel,
        RUNTIME + "StopPodSandbox",
        api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
        api_pb2.StopPodSandboxResponse,
    )
    await call(
        channel,
        RUNTIME + "RemovePodSandbox",
        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
        api_pb2.RemovePodSandboxResponse,
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"  # zombies are dead


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("package", "expected"), [("v1", "v1"), ("v1alpha2", "v1alpha2")])
async def test_version_on_both_packages(
    containerd: Containerd, package: str, expected: str
) -> None:
    async with raw_channel(containerd) as channel:
        response = await call(
            channel,
            f"/runtime.{package}.RuntimeService/Version",
            api_pb2.VersionRequest(version="0.1.0"),
            api_pb2.VersionResponse,
        )
    assert response.runtime_name == "containerd"
    assert response.runtime_api_version == expected


async def test_list_images_shows_busybox(containerd: Containerd) -> None:
    async with raw_channel(containerd) as channel:
        response = await call(
            channel, IMAGES + "ListImages", api_pb2.ListImagesRequest(), api_pb2.ListImagesResponse
        )
    tags = [tag for image in response.images for tag in image.repo_tags]
    assert BUSYBOX_IMAGE in tags


async def test_pod_and_container_lifecycle(containerd: Containerd) -> None:
    async with raw_channel(containerd) as channel:
        pod_id, pod_config = await run_pod(channel, containerd, unique("life"))
        try:
            container_id = await run_sleeper(channel, pod_id, pod_config, "sleeper")
            status = await call(
                channel,
                RUNTIME + "ContainerStatus",
                api_pb2.ContainerStatusRequest(container_id=container_id),
                api_pb2.ContainerStatusResponse,
            )
            assert status.status.state == api_pb2.ContainerState.CONTAINER_RUNNING
            assert status.status.image.image == BUSYBOX_IMAGE
            assert Path(status.status.log_path).parent == Path(pod_config.log_directory)

            executed = await call(
                channel,
                RUNTIME + "ExecSync",
                api_pb2.ExecSyncRequest(container_id=container_id, cmd=["echo", "hi"], timeout=10),
                api_pb2.ExecSyncResponse,
            )
            assert (executed.stdout, executed.stderr, executed.exit_code) == (b"hi\n", b"", 0)

            # sleep is PID 1 and ignores SIGTERM: timeout 0 means SIGKILL at once.
            await call(
                channel,
                RUNTIME + "StopContainer",
                api_pb2.StopContainerRequest(container_id=container_id, timeout=0),
                api_pb2.StopContainerResponse,
            )
            status = await call(
                channel,
                RUNTIME + "ContainerStatus",
                api_pb2.ContainerStatusRequest(container_id=container_id),
                api_pb2.ContainerStatusResponse,
            )
            assert status.status.state == api_pb2.ContainerState.CONTAINER_EXITED
            await call(
                channel,
                RUNTIME + "RemoveContainer",
                api_pb2.RemoveContainerRequest(container_id=container_id),
                api_pb2.RemoveContainerResponse,
            )
            listed = await call(
                channel,
                RUNTIME + "ListContainers",
                api_pb2.ListContainersRequest(),
                api_pb2.ListContainersResponse,
            )
            assert container_id not in [c.id for c in listed.containers]
        finally:
            await remove_pod(channel, pod_id)
        pods = await call(
            channel,
            RUNTIME + "ListPodSandbox",
            api_pb2.ListPodSandboxRequest(),
            api_pb2.ListPodSandboxResponse,
        )
        assert pod_id not in [p.id for p in pods.items]


async def test_running_container_survives_sigkill_restart(containerd: Containerd) -> None:
    async with raw_channel(containerd) as channel:
        pod_id, pod_config = await run_pod(channel, containerd, unique("restart"))
        container_id = await run_sleeper(channel, pod_id, pod_config, "survivor")
    old_pid = containerd.pid
    try:
        await containerd.arestart(signal.SIGKILL)
        assert containerd.pid != old_pid
        async with raw_channel(containerd) as channel:
            listed = await call(
                channel,
                RUNTIME + "ListContainers",
                api_pb2.ListContainersRequest(),
                api_pb2.ListContainersResponse,
            )
            states = {c.id: c.state for c in listed.containers}
            assert states.get(container_id) == api_pb2.ContainerState.CONTAINER_RUNNING
            executed = await call(
                channel,
                RUNTIME + "ExecSync",
                api_pb2.ExecSyncRequest(container_id=container_id, cmd=["true"], timeout=10),
                api_pb2.ExecSyncResponse,
            )
            assert executed.exit_code == 0
    finally:
        async with raw_channel(containerd) as channel:
            await remove_pod(channel, pod_id)


async def test_get_container_events_per_version(containerd: Containerd) -> None:
    """1.6 answers UNIMPLEMENTED; 1.7 streams the events of a new pod's sandbox."""
    async with raw_channel(containerd) as channel:
        method = channel.unary_stream(
            RUNTIME + "GetContainerEvents",
            request_serializer=api_pb2.GetEventsRequest.SerializeToString,
            response_deserializer=api_pb2.ContainerEventResponse.FromString,
        )
        stream = method(api_pb2.GetEventsRequest(), timeout=30)
        if series(containerd) == "1.6":
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stream:
                    pass
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            return
        pod_id, _ = await run_pod(channel, containerd, unique("events"))
        try:
            kinds = []
            async for event in stream:
                if event.container_id == pod_id:
                    kinds.append(api_pb2.ContainerEventType.Name(event.container_event_type))
                    if "CONTAINER_STARTED_EVENT" in kinds:
                        break
            stream.cancel()
        finally:
            await remove_pod(channel, pod_id)
    assert kinds == ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT"], kinds


async def test_stop_cleans_up_after_killed_containerd(containerd: Containerd) -> None:
    """A second containerd whose pods are left running and which cannot come back:
    stop() must kill its shim and container processes, unmount and remove its folder."""
    assert containerd_available() is None  # the fixture ran, so this must hold
    ctd = Containerd.start(bin_dir=containerd.bin_dir)  # the same version
    try:
        async with raw_channel(ctd) as channel:
            pod_id, pod_config = await run_pod(channel, ctd, unique("orphan"))
            await run_sleeper(channel, pod_id, pod_config, "orphan")
        await ctd.akill(signal.SIGKILL)
        orphans = ctd.own_processes()
        # at least: the shim, the sandbox's process, the container's process
        assert len(orphans) >= 3, orphans

        def refuse(**_: object) -> None:
            raise ContainerdError("not coming back")

        ctd.launch = refuse  # type: ignore[method-assign]
        ctd.stop()
    finally:
        ctd.stop()
    assert not ctd.workdir.exists()
    assert [pid for pid in orphans if alive(pid)] == []
    assert any("killed leftover" in note for note in ctd.stop_notes)
