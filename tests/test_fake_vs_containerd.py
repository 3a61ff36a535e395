"""The fake runtime behaves like containerd to a client that is not aiocri.

Both runtimes get the same raw gRPC requests (a plain grpc.aio channel, no
aiocri client code involved) and must give the same observable answers:
Version fields, status codes for unknown ids, filter semantics, state names.
Ids differ between runtimes, so answers are compared through roles
("running", "created") rather than ids.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing import FakeRuntime
from aiocri.testing.containerd import BUSYBOX_IMAGE, Containerd, container_config, pod_config
from tests.containerd_fixture import series

pytestmark = pytest.mark.anyio


class RawCRI:
    """A minimal CRI client written straight on grpc.aio."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    async def call(self, method: str, request: Message, response: type[Message],
                   package: str = "runtime.v1", service: str = "RuntimeService") -> Any:
        fn = self.channel.unary_unary(
            f"/{package}.{service}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return await fn(request, timeout=10)

    async def code(self, method: str, request: Message, response: type[Message]) -> str:
        try:
            await self.call(method, request, response)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return "OK"


async def _observe(endpoint: str, pod: pb.PodSandboxConfig) -> dict[str, Any]:
    """Drive one runtime through the same script; return what a client sees."""
    seen: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(endpoint) as channel:
        cri = RawCRI(channel)
        for package in ("runtime.v1", "runtime.v1alpha2"):
            v = await cri.call("Version", pb.VersionRequest(version="0.1.0"), pb.VersionResponse,
                               package=package)
            seen[f"version {package}"] = (v.version, v.runtime_api_version, bool(v.runtime_name))

        pod_id = (await cri.call("RunPodSandbox", pb.RunPodSandboxRequest(config=pod),
                                 pb.RunPodSandboxResponse)).pod_sandbox_id
        roles: dict[str, str] = {pod_id: "pod"}
        try:
            for name, start in (("running", True), ("created", False)):
                config = container_config(name, BUSYBOX_IMAGE, labels={"role": name})
                cid = (await cri.call("CreateContainer", pb.CreateContainerRequest(
                    pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
                    pb.CreateContainerResponse)).container_id
                roles[cid] = name
                if start:
                    await cri.call("StartContainer", pb.StartContainerRequest(container_id=cid),
                                   pb.StartContainerResponse)
            running = next(k for k, v in roles.items() if v == "running")

            async def listed(**filter_fields: Any) -> list[str]:
                request = pb.ListContainersRequest(filter=pb.ContainerFilter(**filter_fields))
                reply = await cri.call("ListContainers", request, pb.ListContainersResponse)
                return sorted(roles.get(c.id, "other") for c in reply.containers
                              if c.pod_sandbox_id == pod_id or "pod_sandbox_id" not in filter_fields)

            state = pb.ContainerStateValue
            seen["filter pod"] = await listed(pod_sandbox_id=pod_id)
            seen["filter state running"] = await listed(
                pod_sandbox_id=pod_id, state=state(state=pb.CONTAINER_RUNNING))
            seen["filter state created"] = await listed(
                pod_sandbox_id=pod_id, state=state(state=pb.CONTAINER_CREATED))
            seen["filter label"] = await listed(pod_sandbox_id=pod_id,
                                                label_selector={"role": "created"})
            seen["filter label miss"] = await listed(pod_sandbox_id=pod_id,
                                                     label_selector={"role": "nobody"})
            seen["filter id prefix"] = await listed(id=running[:12])
            seen["filter unknown id"] = await listed(id="0" * 64)
            seen["filter unknown pod"] = await listed(pod_sandbox_id="0" * 64)

            status = (await cri.call("ContainerStatus", pb.ContainerStatusRequest(
                container_id=running), pb.ContainerStatusResponse)).status
            seen["running status"] = (pb.ContainerState.Name(status.state),
                                      status.metadata.name, dict(status.labels).get("role"),
                                      status.started_at > 0, status.finished_at)
            pod_status = (await cri.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
                pod_sandbox_id=pod_id), pb.PodSandboxStatusResponse)).status
            seen["pod state"] = pb.PodSandboxState.Name(pod_status.state)

            unknown = "f" * 64
            for method, request, response in [
                ("ContainerStatus", pb.ContainerStatusRequest(container_id=unknown),
                 pb.ContainerStatusResponse),
                ("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=unknown),
                 pb.PodSandboxStatusResponse),
                ("StartContainer", pb.StartContainerRequest(container_id=unknown),
                 pb.StartContainerResponse),
                ("ExecSync", pb.ExecSyncRequest(container_id=unknown, cmd=["true"]),
                 pb.ExecSyncResponse),
                ("ContainerStats", pb.ContainerStatsRequest(container_id=unknown),
                 pb.ContainerStatsResponse),
                ("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=unknown),
                 pb.StopPodSandboxResponse),
                ("StopContainer", pb.StopContainerRequest(container_id=unknown),
                 pb.StopContainerResponse),
                ("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=unknown),
                 pb.RemovePodSandboxResponse),
            ]:
                seen[f"unknown id {method}"] = await cri.code(method, request, response)

            image = await cri.call("ImageStatus", pb.ImageStatusRequest(
                image=pb.ImageSpec(image="example.invalid/none:1")), pb.ImageStatusResponse,
                service="ImageService")
            seen["unknown image"] = image.HasField("image")

            await cri.call("StopContainer", pb.StopContainerRequest(container_id=running, timeout=0),
                           pb.StopContainerResponse)
            status = (await cri.call("ContainerStatus", pb.ContainerStatusRequest(
                container_id=running), pb.ContainerStatusResponse)).status
            seen["stopped"] = (pb.ContainerState.Name(status.state), status.finished_at > 0)
        finally:
            await cri.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id),
                           pb.StopPodSandboxResponse)
            await cri.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                           pb.RemovePodSandboxResponse)
        reply = await cri.call("ListContainers", pb.ListContainersRequest(
            filter=pb.ContainerFilter(pod_sandbox_id=pod_id)), pb.ListContainersResponse)
        seen["after pod removal"] = len(reply.containers)
    return seen


@pytest.fixture
async def fake(sock_dir: Path) -> AsyncIterator[FakeRuntime]:
    async with FakeRuntime(str(sock_dir / "fake.sock"), images=[BUSYBOX_IMAGE]) as rt:
        yield rt


async def test_fake_runtime_answers_like_containerd(containerd: Containerd, fake: FakeRuntime) -> None:
    name = f"cmp-{uuid.uuid4().hex[:6]}"
    # Stop of an unknown id: NOT_FOUND on 1.6, OK on 1.7 (the CRI's idempotence rule);
    # the fake answers either way (stop_missing).
    version = series(containerd)
    fake.state.stop_missing = {"1.6": "not-found", "1.7": "ok"}[version]
    real = await _observe(containerd.endpoint, containerd.pod_config(name))
    ours = await _observe(fake.endpoint, pod_config(name, uid=str(uuid.uuid4())))
    # Sanity: the script observed what it means to observe.
    assert real["filter state running"] == ["running"]
    assert real["unknown id ContainerStatus"] == "NOT_FOUND"
    assert real["version runtime.v1alpha2"][1] == "v1alpha2"
    stop_unknown = {"1.6": "NOT_FOUND", "1.7": "OK"}[version]
    assert real["unknown id StopPodSandbox"] == real["unknown id StopContainer"] == stop_unknown
    differences = {k: (real[k], ours.get(k)) for k in real if real[k] != ours.get(k)}
    assert not differences, differences
