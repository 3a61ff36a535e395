"""The fake CRI runtime, driven through raw grpc.aio channels (not aiocri's client)."""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import os
import random
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

import aiocri
from aiocri import api
from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri._rpc import RPC, RPCS
from aiocri.testing import (
    ExecResult,
    FakeRuntime,
    FakeRuntimeProcess,
    FakeState,
    StatusError,
    churn_once,
    main,
    normalize_ref,
    serve,
)
from aiocri.testing._server import missing_rpcs
from aiocri.testing._servicer import FakeServicer
from aiocri.testing._state import frame
from aiocri.versions import V1, V1ALPHA2, CRIVersion, resolve_versions

pytestmark = pytest.mark.anyio

BUSYBOX = "docker.io/library/busybox:1.36"


def path_of(rpc: RPC, version: CRIVersion) -> str:
    # built by hand: version.paths lacks the RPCs a version does not have
    return f"/{version.package}.{rpc.service}/{rpc.name}"


class Raw:
    """A bare grpc.aio channel speaking v1 messages on any version's paths."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(
            endpoint,
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.use_local_subchannel_pool", 1),  # no backoff inherited between tests
            ],
        )

    def unary(self, name: str, version: CRIVersion = V1) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        rpc = RPCS[name]
        return self.channel.unary_unary(
            path_of(rpc, version),
            request_serializer=rpc.request_type.SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )

    def stream(self, name: str, version: CRIVersion = V1) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        rpc = RPCS[name]
        return self.channel.unary_stream(
            path_of(rpc, version),
            request_serializer=rpc.request_type.SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )

    async def call(
        self,
        name: str,
        request: Message | None = None,
        version: CRIVersion = V1,
        timeout: float = 5.0,
    ) -> Any:
        """The response, or the list of a stream's messages."""
        rpc = RPCS[name]
        request = request if request is not None else rpc.request_type()
        if rpc.server_streaming:
            return [m async for m in self.stream(name, version)(request, timeout=timeout)]
        return await self.unary(name, version)(request, timeout=timeout)

    async def code(self, name: str, request: Message | None = None, version: CRIVersion = V1,
                   timeout: float = 5.0) -> grpc.StatusCode:
        try:
            await self.call(name, request, version, timeout)
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    async def error(self, name: str, request: Message | None = None,
                    version: CRIVersion = V1) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.call(name, request, version)
        return info.value

    async def close(self) -> None:
        await self.channel.close(None)


@pytest.fixture
async def rt(sock_dir: Path) -> AsyncIterator[FakeRuntime]:
    async with FakeRuntime(sock_dir / "cri.sock", seed=7) as runtime:
        yield runtime


@pytest.fixture
async def raw(rt: FakeRuntime) -> AsyncIterator[Raw]:
    client = Raw(rt.endpoint)
    yield client
    await client.close()


LOG_ROOT = tempfile.mkdtemp(prefix="aiocri-test-logs-")  # the fake makes folders in it
atexit.register(shutil.rmtree, LOG_ROOT, True)


def pod_config(name: str, **labels: str) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="default"),
        labels=labels,
        log_directory=f"{LOG_ROOT}/{name}",
    )


def container_config(name: str, image: str = BUSYBOX, **labels: str) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=["sleep", "infinity"],
        labels=labels,
        annotations={"note": name},
        log_path=f"{name}.log",
    )


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def is_socket(path: str | Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def running(state: pb.ContainerState.ValueType = pb.CONTAINER_RUNNING) -> pb.ContainerFilter:
    return pb.ContainerFilter(state=pb.ContainerStateValue(state=state))


# -- every RPC under every version setting ---------------------------------------------


def request_factories(rt: FakeRuntime) -> dict[str, Callable[[], Message]]:
    """A valid request for every RPC; objects that a call consumes are made fresh."""
    st = rt.state
    pod = st.add_pod("matrix")
    cid = st.add_container(pod, "main")
    seq = itertools.count()

    def fresh_pod() -> str:
        return st.add_pod(f"p{next(seq)}")

    def fresh_container(start: bool = True) -> str:
        return st.add_container(pod, f"c{next(seq)}", start=start)

    def restore() -> pb.RestorePodRequest:
        n = next(seq)
        st.pod_checkpoints[f"/cp/{n}"] = (pod_config(f"restored{n}"), [container_config("r")])
        return pb.RestorePodRequest(checkpoint_path=f"/cp/{n}")

    resources = pb.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20)
    return {
        "Version": lambda: pb.VersionRequest(version="0.1.0"),
        "RunPodSandbox": lambda: pb.RunPodSandboxRequest(config=pod_config(f"run{next(seq)}")),
        "StopPodSandbox": lambda: pb.StopPodSandboxRequest(pod_sandbox_id=fresh_pod()),
        "RemovePodSandbox": lambda: pb.RemovePodSandboxRequest(pod_sandbox_id=fresh_pod()),
        "PodSandboxStatus": lambda: pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
        "ListPodSandbox": pb.ListPodSandboxRequest,
        "StreamPodSandboxes": pb.StreamPodSandboxesRequest,
        "CreateContainer": lambda: pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config(f"new{next(seq)}")
        ),
        "StartContainer": lambda: pb.StartContainerRequest(container_id=fresh_container(False)),
        "StopContainer": lambda: pb.StopContainerRequest(container_id=fresh_container(), timeout=1),
        "RemoveContainer": lambda: pb.RemoveContainerRequest(container_id=fresh_container()),
        "ListContainers": pb.ListContainersRequest,
        "StreamContainers": pb.StreamContainersRequest,
        "ContainerStatus": lambda: pb.ContainerStatusRequest(container_id=cid, verbose=True),
        "UpdateContainerResources": lambda: pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=resources
        ),
        "ReopenContainerLog": lambda: pb.ReopenContainerLogRequest(container_id=cid),
        "ExecSync": lambda: pb.ExecSyncRequest(container_id=cid, cmd=["echo", "hi"], timeout=5),
        "Exec": lambda: pb.ExecRequest(container_id=cid, cmd=["sh"], stdin=True, stdout=True),
        "Attach": lambda: pb.AttachRequest(container_id=cid, stdout=True),
        "PortForward": lambda: pb.PortForwardRequest(pod_sandbox_id=pod, port=[80]),
        "ContainerStats": lambda: pb.ContainerStatsRequest(container_id=cid),
        "ListContainerStats": pb.ListContainerStatsRequest,
        "StreamContainerStats": pb.StreamContainerStatsRequest,
        "PodSandboxStats": lambda: pb.PodSandboxStatsRequest(pod_sandbox_id=pod),
        "ListPodSandboxStats": pb.ListPodSandboxStatsRequest,
        "StreamPodSandboxStats": pb.StreamPodSandboxStatsRequest,
        "UpdateRuntimeConfig": lambda: pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.9.0.0/16"))
        ),
        "Status": lambda: pb.StatusRequest(verbose=True),
        "CheckpointContainer": lambda: pb.CheckpointContainerRequest(
            container_id=cid, location=f"/cp/c{next(seq)}.tar"
        ),
        "CheckpointPod": lambda: pb.CheckpointPodRequest(
            pod_sandbox_id=pod, output_path=f"/cp/p{next(seq)}"
        ),
        "RestorePod": restore,
        "GetContainerEvents": pb.GetEventsRequest,
        "ListMetricDescriptors": pb.ListMetricDescriptorsRequest,
        "ListPodSandboxMetrics": pb.ListPodSandboxMetricsRequest,
        "StreamPodSandboxMetrics": pb.StreamPodSandboxMetricsRequest,
        "RuntimeConfig": pb.RuntimeConfigRequest,
        "UpdatePodSandboxResources": lambda: pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod, resources=resources
        ),
        "ListImages": pb.ListImagesRequest,
        "StreamImages": pb.StreamImagesRequest,
        "ImageStatus": lambda: pb.ImageStatusRequest(image=pb.ImageSpec(image=BUSYBOX)),
        "PullImage": lambda: pb.PullImageRequest(image=pb.ImageSpec(image="busybox:1.36")),
        "RemoveImage": lambda: pb.RemoveImageRequest(
            image=pb.ImageSpec(image="docker.io/library/redis:7.2")
        ),
        "ImageFsInfo": pb.ImageFsInfoRequest,
    }


async def events_code(rt: FakeRuntime, raw: Raw, version: CRIVersion) -> grpc.StatusCode:
    """GetContainerEvents never ends by itself: served means it delivers an event."""
    call = raw.stream("GetContainerEvents", version)(pb.GetEventsRequest(), timeout=5)
    try:
        read = asyncio.ensure_future(call.read())
        with anyio.move_on_after(0.5):
            await until(lambda: rt.state.subscribers > 0 or read.done())
        if not read.done():
            rt.state.add_pod(f"ev{time.monotonic_ns()}")
        event: Any = await asyncio.wait_for(read, 3)
        assert event.container_event_type == pb.CONTAINER_CREATED_EVENT
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        return err.code()
    finally:
        call.cancel()


def test_every_rpc_has_an_implementation() -> None:
    assert len(RPCS) == 43
    assert missing_rpcs(FakeServicer(FakeState())) == []


@pytest.mark.parametrize("served", [("v1",), ("v1alpha2",), ("v1", "v1alpha2")])
async def test_every_rpc_answers_on_served_paths_only(
    sock_dir: Path, served: tuple[str, ...]
) -> None:
    async with FakeRuntime(sock_dir / "m.sock", versions=served) as rt:
        factories = request_factories(rt)
        assert set(factories) == set(RPCS)
        raw = Raw(rt.endpoint)
        try:
            for rpc in RPCS.values():
                for version in (V1, V1ALPHA2):
                    expected_ok = version.name in served and rpc.name in version.rpcs
                    if rpc.name == "GetContainerEvents":
                        code = await events_code(rt, raw, version)
                    else:
                        code = await raw.code(rpc.name, factories[rpc.name](), version)
                    want = grpc.StatusCode.OK if expected_ok else grpc.StatusCode.UNIMPLEMENTED
                    assert code == want, f"{path_of(rpc, version)} with {served} served"
            for version in resolve_versions(served):
                answer = await raw.call("Version", version=version)
                assert answer.runtime_api_version == version.name
                assert (answer.version, answer.runtime_name) == ("0.1.0", "aiocri-fake")
        finally:
            await raw.close()
        # counted per path: v1alpha2 calls reached v1alpha2 handlers; unserved, none did
        assert rt.calls_by_path[V1ALPHA2.paths["Version"]] == (2 if "v1alpha2" in served else 0)
        assert rt.calls_by_path[V1.paths["Version"]] == (2 if "v1" in served else 0)


# -- lifecycle and errors ---------------------------------------------------------------


async def test_pod_and_container_lifecycle(rt: FakeRuntime, raw: Raw) -> None:
    pod_id = (await raw.call("RunPodSandbox", pb.RunPodSandboxRequest(
        config=pod_config("web", app="web"), runtime_handler="runc"))).pod_sandbox_id
    assert len(pod_id) == 64
    status = (await raw.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id))).status
    assert status.state == pb.SANDBOX_READY and status.runtime_handler == "runc"
    assert status.network.ip.startswith("10.88.") and status.labels["app"] == "web"

    before = time.time_ns()
    cid = (await raw.call("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config("app", tier="front")))).container_id
    st = (await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))).status
    assert st.state == pb.CONTAINER_CREATED and st.created_at >= before and st.started_at == 0
    assert "@sha256:" in st.image_ref and st.log_path == f"{LOG_ROOT}/web/app.log"
    assert st.labels["tier"] == "front" and st.annotations["note"] == "app"

    await raw.call("StartContainer", pb.StartContainerRequest(container_id=cid))
    st = (await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))).status
    assert st.state == pb.CONTAINER_RUNNING and st.started_at >= st.created_at

    await raw.call("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=10))
    st = (await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))).status
    assert st.state == pb.CONTAINER_EXITED and st.finished_at >= st.started_at
    assert (st.exit_code, st.reason) == (143, "Error")  # SIGTERM, as containerd reports it
    # stopping again is fine; starting an exited container is not
    await raw.call("StopContainer", pb.StopContainerRequest(container_id=cid))
    err = await raw.error("StartContainer", pb.StartContainerRequest(container_id=cid))
    assert err.code() == grpc.StatusCode.UNKNOWN  # containerd's code, "failed to set starting"

    await raw.call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid))
    err = await raw.error("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == f'an error occurred when try to find container "{cid}": not found'
    await raw.call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid))  # idempotent

    # the name is free again once removed
    cid2 = (await raw.call("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config("app")))).container_id
    await raw.call("StartContainer", pb.StartContainerRequest(container_id=cid2))
    await raw.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    status = (await raw.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
        pod_sandbox_id=pod_id))).status
    assert status.state == pb.SANDBOX_NOTREADY
    assert rt.state.containers[cid2].state == pb.CONTAINER_EXITED
    err = await raw.error("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config("late")))
    assert err.code() == grpc.StatusCode.NOT_FOUND  # "failed to get sandbox container task"

    await raw.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert pod_id not in rt.state.pods and cid2 not in rt.state.containers
    await raw.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert (await raw.call("ListContainers")).containers == []


async def test_scripted_exits_and_removal_of_running(rt: FakeRuntime, raw: Raw) -> None:
    pod = rt.state.add_pod("job")
    cid = rt.state.add_container(pod, "worker")
    rt.state.exit_container(cid, exit_code=137, reason="OOMKilled", message="out of memory")
    st = (await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))).status
    assert (st.state, st.exit_code, st.reason, st.message) == (
        pb.CONTAINER_EXITED, 137, "OOMKilled", "out of memory")
    with pytest.raises(StatusError) as info:
        rt.state.exit_container(cid)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    other = rt.state.add_container(pod, "side")
    rt.state.exit_container(other, exit_code=2)
    assert rt.state.containers[other].reason == "Error"
    # RemoveContainer on a running container stops it first
    third = rt.state.add_container(pod, "third")
    await raw.call("RemoveContainer", pb.RemoveContainerRequest(container_id=third))
    assert third not in rt.state.containers


async def test_error_codes(rt: FakeRuntime, raw: Raw) -> None:
    pod = rt.state.add_pod("p")
    cases: list[tuple[str, Message, grpc.StatusCode]] = [
        # containerd's codes: an empty id is UNKNOWN ("prefix can't be empty")
        ("ContainerStatus", pb.ContainerStatusRequest(), grpc.StatusCode.UNKNOWN),
        ("StartContainer", pb.StartContainerRequest(container_id="nope"),
         grpc.StatusCode.NOT_FOUND),
        ("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id="nope"),
         grpc.StatusCode.OK),  # the CRI's idempotence rule (containerd 1.7, 2.x)
        ("PodSandboxStatus", pb.PodSandboxStatusRequest(), grpc.StatusCode.UNKNOWN),
        ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id="nope", config=container_config("x")), grpc.StatusCode.NOT_FOUND),
        ("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config("x", image="ghost:1")),
         grpc.StatusCode.NOT_FOUND),
        ("CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=pod),
         grpc.StatusCode.UNKNOWN),
        ("RunPodSandbox", pb.RunPodSandboxRequest(), grpc.StatusCode.UNKNOWN),
        ("RunPodSandbox", pb.RunPodSandboxRequest(config=pod_config("p")),
         grpc.StatusCode.OK),
        ("RunPodSandbox", pb.RunPodSandboxRequest(config=pod_config("p")),
         grpc.StatusCode.UNKNOWN),  # "failed to reserve sandbox name"
        ("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="ghost:1")),
         grpc.StatusCode.NOT_FOUND),
        ("PullImage", pb.PullImageRequest(), grpc.StatusCode.UNKNOWN),  # as containerd
        ("ExecSync", pb.ExecSyncRequest(container_id="nope", cmd=["true"]),
         grpc.StatusCode.NOT_FOUND),
        ("Exec", pb.ExecRequest(container_id="x", cmd=["sh"]), grpc.StatusCode.INVALID_ARGUMENT),
        ("RestorePod", pb.RestorePodRequest(checkpoint_path="/none"), grpc.StatusCode.NOT_FOUND),
        ("ContainerStats", pb.ContainerStatsRequest(container_id="nope"),
         grpc.StatusCode.NOT_FOUND),
    ]
    for name, request, code in cases:
        assert await raw.code(name, request) == code, (name, request)
    err = await raw.error("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id="gone"))
    assert err.details() == "an error occurred when try to find sandbox: not found"
    err = await raw.error("ExecSync", pb.ExecSyncRequest(container_id="gone", cmd=["true"]))
    assert err.details() == ('failed to exec in container: failed to find container "gone" in '
                             "store: not found")
    # created-but-not-running containers refuse exec and log reopening, as UNKNOWN
    created = rt.state.add_container(pod, "idle", start=False)
    for name, request, words in [
        ("ExecSync", pb.ExecSyncRequest(container_id=created, cmd=["true"]),
         "failed to exec in container: container is in CONTAINER_CREATED state"),
        ("ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=created),
         "container is not running"),
        ("Attach", pb.AttachRequest(container_id=created, stdout=True),
         "container is in CONTAINER_CREATED state"),
    ]:
        err = await raw.error(name, request)
        assert (err.code(), err.details()) == (grpc.StatusCode.UNKNOWN, words), name


# -- filters ------------------------------------------------------------------------------


async def test_container_filters(rt: FakeRuntime, raw: Raw) -> None:
    made = rt.populate(pods=6, containers_per_pod=5)
    ids = made.container_ids
    rt.state.exit_container(ids[0], exit_code=1)
    created = rt.state.add_container(made.pod_ids[1], "idle", start=False)

    async def listed(f: pb.ContainerFilter | None = None) -> list[str]:
        request = pb.ListContainersRequest(filter=f) if f is not None else None
        return [c.id for c in (await raw.call("ListContainers", request)).containers]

    everything = await listed()
    assert sorted(everything) == sorted([*ids, created])
    assert await listed(pb.ContainerFilter(id=ids[3])) == [ids[3]]
    assert await listed(pb.ContainerFilter(id=ids[3][:12])) == [ids[3]]  # unique prefix
    shared = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in everything) > 1)
    assert await listed(pb.ContainerFilter(id=shared)) == []  # ambiguous prefix: nothing
    assert await listed(pb.ContainerFilter(id="zz")) == []
    assert await listed(running(pb.CONTAINER_EXITED)) == [ids[0]]
    assert await listed(running(pb.CONTAINER_CREATED)) == [created]
    assert len(await listed(running())) == 29
    pod_ids = made.pod_ids
    assert await listed(pb.ContainerFilter(pod_sandbox_id=pod_ids[2])) == ids[10:15]
    assert await listed(pb.ContainerFilter(pod_sandbox_id=pod_ids[2][:10])) == ids[10:15]
    assert await listed(pb.ContainerFilter(pod_sandbox_id="ffff-none")) == []
    # labels: every selector entry must match
    side = await listed(pb.ContainerFilter(label_selector={"tier": "side"}))
    assert len(side) == 24
    pod2 = {"tier": "main", "io.kubernetes.pod.name": "pod-2"}
    assert await listed(pb.ContainerFilter(label_selector=pod2)) == [ids[10]]
    assert await listed(pb.ContainerFilter(label_selector={**pod2, "tier": "side"})) != [ids[10]]
    assert await listed(pb.ContainerFilter(label_selector={"tier": "nope"})) == []
    combined = pb.ContainerFilter(pod_sandbox_id=pod_ids[0], state=pb.ContainerStateValue(
        state=pb.CONTAINER_RUNNING), label_selector={"tier": "side"})
    assert await listed(combined) == ids[1:5]
    assert await listed(pb.ContainerFilter(id=ids[3], pod_sandbox_id=pod_ids[1])) == []

    stats = await raw.call("ListContainerStats", pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=pod_ids[2])))
    assert [s.attributes.id for s in stats.stats] == ids[10:15]
    assert all(s.memory.working_set_bytes.value > 0 for s in stats.stats)


async def test_pod_filters_and_stats(rt: FakeRuntime, raw: Raw) -> None:
    made = rt.populate(pods=5, containers_per_pod=2)
    await raw.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=made.pod_ids[4]))

    async def listed(f: pb.PodSandboxFilter) -> list[str]:
        response = await raw.call("ListPodSandbox", pb.ListPodSandboxRequest(filter=f))
        return [p.id for p in response.items]

    assert len((await raw.call("ListPodSandbox")).items) == 5
    assert await listed(pb.PodSandboxFilter(id=made.pod_ids[1][:8])) == [made.pod_ids[1]]
    ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    assert await listed(ready) == made.pod_ids[:4]
    notready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert await listed(notready) == [made.pod_ids[4]]
    assert await listed(pb.PodSandboxFilter(label_selector={"app": "app-3"})) == [made.pod_ids[3]]
    # stats cover ready pods (1.7 leaves the stopped one out), each with all its containers
    stats = (await raw.call("ListPodSandboxStats")).stats
    assert [s.attributes.id for s in stats] == made.pod_ids[:4]
    assert all(len(s.linux.containers) == 2 and s.linux.cpu.timestamp > 0 for s in stats)
    metrics = (await raw.call("ListPodSandboxMetrics")).pod_metrics
    assert len(metrics) == 4 and all(len(m.container_metrics) == 2 for m in metrics)


async def test_verbose_info_and_runtime_calls(rt: FakeRuntime, raw: Raw) -> None:
    pod = rt.state.add_pod("v")
    cid = rt.state.add_container(pod, "c")
    plain = await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))
    assert dict(plain.info) == {}
    verbose = await raw.call("ContainerStatus", pb.ContainerStatusRequest(
        container_id=cid, verbose=True))
    info = json.loads(verbose.info["info"])
    assert info["sandboxID"] == pod and info["pid"] > 0
    pod_info = await raw.call("PodSandboxStatus", pb.PodSandboxStatusRequest(
        pod_sandbox_id=pod, verbose=True))
    assert json.loads(pod_info.info["info"])["config"]["metadata"]["name"] == "v"
    assert [c.id for c in pod_info.containers_statuses] == [cid]

    status = await raw.call("Status", pb.StatusRequest(verbose=True))
    assert {(c.type, c.status) for c in status.status.conditions} == {
        ("RuntimeReady", True), ("NetworkReady", True)}
    assert json.loads(status.info["config"])["containers"] == 1
    rt.state.network_ready = False
    status = await raw.call("Status")
    net = next(c for c in status.status.conditions if c.type == "NetworkReady")
    assert not net.status and net.reason == "NetworkPluginNotReady"

    config = await raw.call("RuntimeConfig")
    assert config.linux.cgroup_driver == pb.SYSTEMD
    await raw.call("UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.1.0.0/16"))))
    assert rt.state.pod_cidr == "10.1.0.0/16"
    await raw.call("UpdateContainerResources", pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(cpu_quota=50_000)))
    st = await raw.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))
    assert st.status.resources.linux.cpu_quota == 50_000

    url = (await raw.call("Exec", pb.ExecRequest(container_id=cid[:10], cmd=["sh"],
                                                  stdout=True))).url
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    pf = await raw.call("PortForward", pb.PortForwardRequest(pod_sandbox_id=pod))
    assert "/portforward/" in pf.url


async def test_images(rt: FakeRuntime, raw: Raw) -> None:
    images = (await raw.call("ListImages")).images
    assert {i.repo_tags[0] for i in images} >= {BUSYBOX, "registry.k8s.io/pause:3.9"}
    assert next(i for i in images if "pause" in i.repo_tags[0]).pinned
    # short names, ids and digests all find the same image
    busy = await raw.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(
        image="busybox:1.36"), verbose=True))
    assert busy.image.repo_tags == [BUSYBOX] and "chainID" in json.loads(busy.info["info"])
    for ref in (busy.image.id, busy.image.repo_digests[0], busy.image.id[7:19]):
        found = await raw.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)))
        assert found.image.id == busy.image.id, ref
    # containerd ignores ListImages' filter: every image comes back
    filtered = await raw.call("ListImages", pb.ListImagesRequest(
        filter=pb.ImageFilter(image=pb.ImageSpec(image="busybox:1.36"))))
    assert [i.id for i in filtered.images] == [i.id for i in images] and len(images) > 1

    await raw.call("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=BUSYBOX)))
    gone = await raw.call("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=BUSYBOX)))
    assert not gone.HasField("image")
    await raw.call("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=BUSYBOX)))
    pulled = await raw.call("PullImage", pb.PullImageRequest(image=pb.ImageSpec(
        image="busybox:1.36")))
    assert pulled.image_ref == busy.image.id  # it is still in the registry
    err = await raw.error("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="ghost")))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "docker.io/library/ghost:latest" in (
        err.details() or "")
    fs = await raw.call("ImageFsInfo")
    total = sum(i.size for i in (await raw.call("ListImages")).images)
    assert fs.image_filesystems[0].used_bytes.value == total > 0


def test_normalize_ref_and_frame() -> None:
    assert normalize_ref("busybox") == "docker.io/library/busybox:latest"
    assert normalize_ref("docker.io/busybox:1") == "docker.io/library/busybox:1"
    assert normalize_ref("quay.io/x/y") == "quay.io/x/y:latest"
    assert normalize_ref("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalize_ref("user/app@sha256:ab") == "docker.io/user/app@sha256:ab"
    # framed items join into a valid message, across the 1- and 2-byte length boundary
    items = [pb.Container(id="x" * n) for n in (1, 120, 130, 20000)]
    data = b"".join(frame(c.SerializeToString()) for c in items)
    assert list(pb.ListContainersResponse.FromString(data).containers) == items


# -- streams ------------------------------------------------------------------------------


async def test_container_events_stream(rt: FakeRuntime, raw: Raw) -> None:
    pod = rt.state.add_pod("events")
    first = raw.stream("GetContainerEvents")(pb.GetEventsRequest())
    second = raw.stream("GetContainerEvents")(pb.GetEventsRequest())
    await rt.wait_for_event_streams(2)

    cid = (await raw.call("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod, config=container_config("watched")))).container_id
    await raw.call("StartContainer", pb.StartContainerRequest(container_id=cid))
    rt.state.exit_container(cid, exit_code=3)
    await raw.call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid))

    expected = [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT,
                pb.CONTAINER_STOPPED_EVENT, pb.CONTAINER_DELETED_EVENT]
    for stream in (first, second):
        events: list[Any] = [await asyncio.wait_for(stream.read(), 3) for _ in expected]
        assert [e.container_event_type for e in events] == expected
        assert {e.container_id for e in events} == {cid}
        assert all(e.pod_sandbox_status.id == pod and e.created_at > 0 for e in events)
        assert [s.state for s in events[1].containers_statuses] == [pb.CONTAINER_RUNNING]
        stopped = events[2].containers_statuses[0]
        assert (stopped.state, stopped.exit_code) == (pb.CONTAINER_EXITED, 3)
        assert list(events[3].containers_statuses) == []
    first.cancel()
    # the pod's own events carry its id, as containerd's do
    await raw.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    event: Any = await asyncio.wait_for(second.read(), 3)
    assert (event.container_id, event.container_event_type) == (pod, pb.CONTAINER_STOPPED_EVENT)
    assert event.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
    second.cancel()
    await until(lambda: rt.state.subscribers == 0)


async def test_stream_lists_come_in_chunks(rt: FakeRuntime, raw: Raw) -> None:
    made = rt.populate(pods=6, containers_per_pod=5)
    rt.stream_chunk = 7
    chunks = await raw.call("StreamContainers")
    assert [len(c.containers) for c in chunks] == [7, 7, 7, 7, 2]
    assert [c.id for chunk in chunks for c in chunk.containers] == made.container_ids
    pods = await raw.call("StreamPodSandboxes")
    assert [len(c.pod_sandboxes) for c in pods] == [6]
    filtered = await raw.call("StreamContainers", pb.StreamContainersRequest(
        filter=pb.ContainerFilter(pod_sandbox_id=made.pod_ids[0])))
    assert [c.id for chunk in filtered for c in chunk.containers] == made.container_ids[:5]
    stats = await raw.call("StreamContainerStats")
    assert sum(len(c.container_stats) for c in stats) == 30
    images = await raw.call("StreamImages")
    assert sum(len(c.images) for c in images) == len(rt.state.images)


# -- exec ---------------------------------------------------------------------------------


async def test_exec_sync(rt: FakeRuntime, raw: Raw) -> None:
    cid = rt.state.add_container(rt.state.add_pod("x"), "c")

    async def run(*cmd: str, timeout: int = 5) -> pb.ExecSyncResponse:
        answer: pb.ExecSyncResponse = await raw.call(
            "ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout))
        return answer

    echo = await run("echo", "hello", "world")
    assert (echo.stdout, echo.exit_code) == (b"hello world\n", 0)
    assert (await run("sh", "-c", "exit 3")).exit_code == 3
    script = await run("/bin/sh", "-c", "echo a; false; echo b")
    assert (script.stdout, script.exit_code) == (b"a\nb\n", 0)
    # no such program: containerd answers an error (runc's words), a shell exits 127
    err = await raw.error("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["frobnicate"]))
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert 'exec: "frobnicate": executable file not found in $PATH' in (err.details() or "")
    missing = await run("sh", "-c", "frobnicate")
    assert (missing.exit_code, missing.stderr) == (127, b"sh: frobnicate: not found\n")
    assert (await run("hostname")).stdout == b"x\n"

    calls: list[list[str]] = []

    def handler(container: Any, cmd: list[str]) -> ExecResult:
        calls.append(cmd)
        return ExecResult(stdout=container.name.encode(), exit_code=42)

    rt.set_exec_handler(handler)
    custom = await run("anything")
    assert (custom.stdout, custom.exit_code, calls) == (b"c", 42, [["anything"]])

    async def slow(container: Any, cmd: list[str]) -> ExecResult:
        await asyncio.sleep(60)
        return ExecResult()

    rt.set_exec_handler(slow)
    started = time.monotonic()
    err = await raw.error("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["x"], timeout=1))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.9 < time.monotonic() - started < 10  # its timeout, not the handler's 60 s
    rt.set_exec_handler(None)
    assert (await run("true")).exit_code == 0


# -- server life: restart, upgrade, kill -----------------------------------------------


async def test_restart_keeps_state_and_removes_socket_while_down(rt: FakeRuntime) -> None:
    made = rt.populate(pods=3, containers_per_pod=2)
    sock = Path(rt.socket_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(rt.restart, 0.4)
        await until(lambda: not is_socket(sock), 1.0)
        assert not rt.serving
        probe = Raw(rt.endpoint)
        assert await probe.code("Version", timeout=0.2) == grpc.StatusCode.UNAVAILABLE
        await probe.close()
    assert is_socket(sock) and rt.serving
    raw = Raw(rt.endpoint)
    try:
        listed = await raw.call("ListContainers")
        assert [c.id for c in listed.containers] == made.container_ids
    finally:
        await raw.close()


async def test_upgrade_changes_served_versions(sock_dir: Path) -> None:
    async with FakeRuntime(sock_dir / "u.sock", versions=("v1alpha2",),
                           runtime_version="1.6.20") as rt:
        raw = Raw(rt.endpoint)
        assert await raw.code("Version") == grpc.StatusCode.UNIMPLEMENTED
        assert (await raw.call("Version", version=V1ALPHA2)).runtime_version == "1.6.20"
        await raw.close()

        await rt.upgrade(versions=("v1",), runtime_version="2.0")
        assert rt.versions == (V1,)
        raw = Raw(rt.endpoint)
        try:
            answer = await raw.call("Version")
            assert (answer.runtime_version, answer.runtime_api_version) == ("2.0", "v1")
            assert await raw.code("Version", version=V1ALPHA2) == grpc.StatusCode.UNIMPLEMENTED
            # and back down to both
            await rt.restart(0.0, versions=("v1", "v1alpha2"))
            assert (await raw.call("Version", version=V1ALPHA2, timeout=5)).runtime_version == "2.0"
        finally:
            await raw.close()


async def test_kill_cuts_connections_and_leaves_socket(rt: FakeRuntime, raw: Raw) -> None:
    cid = rt.state.add_container(rt.state.add_pod("k"), "c")
    events = raw.stream("GetContainerEvents")(pb.GetEventsRequest())
    await rt.wait_for_event_streams(1)
    rt.inject_latency("ListContainers", 5.0)
    inflight = raw.unary("ListContainers")(pb.ListContainersRequest(), timeout=10)
    await until(lambda: rt.calls["ListContainers"] == 1)

    started = time.monotonic()
    await rt.kill()
    for pending in (inflight, events.read()):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(pending, 30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # no GOAWAY: a graceful stop says "Cancelling all calls"
        assert "Cancelling all calls" not in (info.value.details() or "")
    assert time.monotonic() - started < 10  # a sanity bound
    assert is_socket(rt.socket_path)  # left behind, as after SIGKILL
    probe = Raw(rt.endpoint)
    assert await probe.code("Version", timeout=1) == grpc.StatusCode.UNAVAILABLE
    await probe.close()

    rt.clear_injections()
    await rt.start()  # grpc replaces the stale socket file when it binds
    fresh = Raw(rt.endpoint)
    try:
        answer = await fresh.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid))
        assert answer.status.state == pb.CONTAINER_RUNNING
    finally:
        await fresh.close()


async def test_stop_without_serving_is_harmless(sock_dir: Path) -> None:
    rt = FakeRuntime(sock_dir / "s.sock")
    await rt.stop()
    with pytest.raises(RuntimeError):
        await rt.kill()
    await rt.start()
    with pytest.raises(RuntimeError):
        await rt.start()
    await rt.stop()
    assert not is_socket(rt.socket_path)


# -- fault injection ----------------------------------------------------------------------


async def test_latency_injection(rt: FakeRuntime, raw: Raw) -> None:
    await raw.call("Version")  # connect first
    rt.inject_latency("Version", 1.0)  # far above the generous bound for an undelayed call
    started = time.monotonic()
    await raw.call("Version")
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    await raw.call("Status")
    assert time.monotonic() - started < 0.8
    rt.inject_latency("*", 1.0)
    started = time.monotonic()
    await raw.call("Status")
    assert time.monotonic() - started >= 1.0
    rt.clear_injections()
    started = time.monotonic()
    await raw.call("Version")
    assert time.monotonic() - started < 0.8
    with pytest.raises(ValueError, match="unknown RPC"):
        rt.inject_latency("ListContainer", 1)


async def test_error_injection(rt: FakeRuntime, raw: Raw) -> None:
    rt.inject_errors("ListContainers")
    err = await raw.error("ListContainers")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert await raw.code("ListPodSandbox") == grpc.StatusCode.OK
    rt.inject_errors("ListContainers", grpc.StatusCode.RESOURCE_EXHAUSTED, count=2,
                     details="too big")
    codes = [await raw.code("ListContainers") for _ in range(3)]
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2 + [grpc.StatusCode.OK]
    rt.inject_errors("*", grpc.StatusCode.INTERNAL, rate=0.5)
    codes = [await raw.code("Version") for _ in range(40)]
    assert 5 < codes.count(grpc.StatusCode.INTERNAL) < 35
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.INTERNAL}
    rt.clear_injections("*")
    assert await raw.code("Version") == grpc.StatusCode.OK
    # streams fail before their first message
    rt.inject_errors("StreamContainers", grpc.StatusCode.UNAVAILABLE)
    assert await raw.code("StreamContainers") == grpc.StatusCode.UNAVAILABLE


# -- populate, churn and size ----------------------------------------------------------------


async def test_populate_100_by_10(rt: FakeRuntime, raw: Raw) -> None:
    started = time.monotonic()
    made = rt.populate(pods=100, containers_per_pod=10)
    assert time.monotonic() - started < 30  # a sanity bound
    assert len(made.pod_ids) == 100 and len(set(made.container_ids)) == 1000
    listed = (await raw.call("ListContainers")).containers
    assert len(listed) == 1000 and {c.state for c in listed} == {pb.CONTAINER_RUNNING}
    assert len((await raw.call("ListPodSandbox")).items) == 100
    # the cached lists, whole and filtered, follow changes
    running_only = pb.ListContainersRequest(filter=running())
    assert len((await raw.call("ListContainers", running_only)).containers) == 1000
    rt.state.exit_container(made.container_ids[5])
    assert len((await raw.call("ListContainers", running_only)).containers) == 999
    exited = await raw.call("ListContainers", pb.ListContainersRequest(
        filter=running(pb.CONTAINER_EXITED)))
    assert [c.id for c in exited.containers] == [made.container_ids[5]]
    listed = (await raw.call("ListContainers")).containers
    assert next(c for c in listed if c.id == made.container_ids[5]).state == pb.CONTAINER_EXITED
    more = rt.populate(pods=1, containers_per_pod=1)  # names never collide with earlier ones
    assert len((await raw.call("ListContainers")).containers) == 1001
    assert more.container_ids[0] in rt.state.containers


def test_churn_restarts_a_container() -> None:
    state = FakeState(seed=3)
    state.populate(pods=2, containers_per_pod=2)
    before = set(state.containers)
    new_id = churn_once(state, random.Random(1))
    assert new_id is not None and new_id not in before
    assert len(state.containers) == 4 and len(before - set(state.containers)) == 1
    fresh = state.containers[new_id]
    assert fresh.running and fresh.config.metadata.attempt == 1
    assert fresh.config.annotations["io.kubernetes.container.restartCount"] == "1"


async def test_serve_with_churn(sock_dir: Path) -> None:
    async with anyio.create_task_group() as tg:
        rt: FakeRuntime = await tg.start(partial(
            serve, sock_dir / "churn.sock", pods=2, containers_per_pod=3, churn_per_second=100))
        first = set(rt.state.containers)
        await until(lambda: len(set(rt.state.containers) - first) >= 3)
        assert len(rt.state.containers) == 6  # each exit is replaced, the dead one removed
        assert any(c.config.metadata.attempt > 0 for c in rt.state.containers.values())
        assert is_socket(rt.socket_path)
        tg.cancel_scope.cancel()
    assert not is_socket(sock_dir / "churn.sock")


def test_seeded_ids_repeat() -> None:
    one, two = FakeState(seed=5), FakeState(seed=5)
    assert one.populate(3, 2) == two.populate(3, 2)


# -- the process flavour ------------------------------------------------------------------


async def test_process_serves_and_survives_sigkill(sock_dir: Path) -> None:
    sock = sock_dir / "proc.sock"
    async with FakeRuntimeProcess(sock, versions=("v1alpha2",), pods=3,
                                  containers_per_pod=2) as proc:
        raw = Raw(proc.endpoint)
        try:
            answer = await raw.call("Version", version=V1ALPHA2)
            assert answer.runtime_api_version == "v1alpha2"
            assert await raw.code("Version") == grpc.StatusCode.UNIMPLEMENTED
            before = [c.id for c in (await raw.call("ListContainers", version=V1ALPHA2)).containers]
            assert len(before) == 6
        finally:
            await raw.close()

        assert await proc.kill() == -9
        assert is_socket(sock)
        await proc.restart()  # the new process binds over the stale socket file
        raw = Raw(proc.endpoint)
        try:
            after = [c.id for c in (await raw.call("ListContainers", version=V1ALPHA2)).containers]
            assert after == before  # same seed, same ids: like containerd after a restart
        finally:
            await raw.close()
    assert not proc.running and not is_socket(sock)  # SIGTERM: a clean exit removes the socket


def test_cli_rejects_unknown_versions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--socket", "/tmp/x.sock", "--versions", "v3"])
    assert info.value.code == 2
    assert "unknown CRI version 'v3'" in capsys.readouterr().err


# -- pull policy, stop idempotence, documented commands ----------------------------------


@pytest.mark.anyio
async def test_pull_policy_and_stop_idempotence(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, rt.connect() as client:
        spec = api.ImageSpec(image="example.com/team/tool:2.0")
        with pytest.raises(aiocri.NotFound, match="failed to pull"):
            await client.image.pull_image(image=spec)  # the default: a registry's answer
        rt.state.pull_policy = "any"
        pulled = await client.image.pull_image(image=spec)
        assert pulled.image_ref.startswith("sha256:")
        listed = await client.image.list_images()
        assert any("example.com/team/tool:2.0" in i.repo_tags for i in listed.images)
        missing = "0" * 64
        await client.runtime.stop_container(container_id=missing)  # the CRI's rule, 1.7
        await client.runtime.stop_pod_sandbox(pod_sandbox_id=missing)
        rt.state.stop_missing = "not-found"  # containerd 1.6
        with pytest.raises(aiocri.NotFound):
            await client.runtime.stop_container(container_id=missing)
        with pytest.raises(aiocri.NotFound):
            await client.runtime.stop_pod_sandbox(pod_sandbox_id=missing)


def test_the_help_lists_the_exec_commands() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "aiocri.testing", "--help"],
                          capture_output=True, text=True, check=True)
    for word in ("printf", "stty size", "--pull", "--stop-missing", "127", "not supported"):
        assert word in done.stdout


@pytest.mark.anyio
async def test_busybox_applets_in_exec_sync(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, rt.connect() as client:
        cid = rt.populate(1, 1).container_ids[0]
        done = await client.runtime.exec_sync(container_id=cid, cmd=["busybox", "echo", "hi"])
        assert done.stdout == b"hi\n" and done.exit_code == 0


@pytest.mark.anyio
async def test_compat_16_answers_as_containerd_16(sock_dir: Path) -> None:
    """Where containerd 1.6 and 1.7 differ the fake answers as 1.7, or as 1.6 when asked."""
    with pytest.raises(ValueError, match="compat must be one of 1.7, 1.6"):
        FakeRuntime(str(sock_dir / "x.sock"), compat="2.0")
    async with FakeRuntime(str(sock_dir / "rt.sock"), compat="1.6") as rt, \
            rt.connect() as client:
        assert rt.state.compat == "1.6" and rt.state.stop_missing == "not-found"
        with pytest.raises(aiocri.NotFound):
            await client.runtime.stop_container(container_id="0" * 64)
        with pytest.raises(aiocri.CRIError, match="unknown method GetContainerEvents"):
            async for _ in client.runtime.get_container_events():
                break
        config = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="p", uid="u"))
        config.linux.security_context.run_as_group.value = 1000
        with pytest.raises(aiocri.CRIError, match="failed to generate sanbdox container spec"):
            await client.runtime.run_pod_sandbox(api.RunPodSandboxRequest(config=config))
        rt.state.compat = "1.7"
        await client.runtime.stop_container(container_id="0" * 64)
        with pytest.raises(aiocri.CRIError, match="failed to generate sandbox container spec"):
            await client.runtime.run_pod_sandbox(api.RunPodSandboxRequest(config=config))
