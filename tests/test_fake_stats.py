"""The fake runtime's stats answer as containerd 1.7's (and 1.6's with ``compat``) do.

The stats lists cover containers in every state; one that is not running has its
attributes and writable layer only, and ContainerStats of it fails. A pod that is not
ready has no stats: PodSandboxStats fails (UNAVAILABLE on 1.7, UNKNOWN on 1.6), and
ListPodSandboxStats leaves it out on 1.7 but fails altogether on 1.6.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri._rpc import RPCS
from aiocri.testing import FakeRuntime

pytestmark = pytest.mark.anyio


class Node:
    """A fake runtime with a ready pod (a running, a created and an exited container)
    and a stopped pod, and a bare channel to it."""

    def __init__(self, rt: FakeRuntime, channel: grpc.aio.Channel) -> None:
        self.rt = rt
        self.channel = channel
        state = rt.state
        self.ready = state.add_pod("ready")
        self.running = state.add_container(self.ready, "running")
        self.created = state.add_container(self.ready, "created", start=False)
        self.exited = state.add_container(self.ready, "exited")
        state.exit_container(self.exited, exit_code=2)
        self.stopped = state.add_pod("stopped")
        self.in_stopped = state.add_container(self.stopped, "gone")
        state.stop_pod_sandbox(self.stopped)

    async def call(self, method: str, request: Message) -> Any:
        rpc = RPCS[method]
        fn = self.channel.unary_unary(
            f"/runtime.v1.{rpc.service}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )
        return await fn(request, timeout=10)

    async def error(self, method: str, request: Message) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), caught.value.details() or ""


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with FakeRuntime(tmp_path / "rt.sock") as rt, \
            grpc.aio.insecure_channel(rt.endpoint) as channel:
        yield Node(rt, channel)


async def test_container_stats_lists_cover_every_state(node: Node) -> None:
    stats = (await node.call("ListContainerStats", pb.ListContainerStatsRequest())).stats
    by_id = {s.attributes.id: s for s in stats}
    assert set(by_id) == {node.running, node.created, node.exited, node.in_stopped}
    assert by_id[node.running].HasField("cpu") and by_id[node.running].HasField("memory")
    for cid in (node.created, node.exited, node.in_stopped):
        # what containerd has for a container without a task: attributes, writable layer
        assert by_id[cid].attributes.metadata.name
        assert by_id[cid].writable_layer.fs_id.mountpoint
        assert not by_id[cid].HasField("cpu") and not by_id[cid].HasField("memory")
    in_pod = await node.call("ListContainerStats", pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=node.ready)))
    assert {s.attributes.id for s in in_pod.stats} == {node.running, node.created, node.exited}
    streamed = node.channel.unary_stream(
        "/runtime.v1.RuntimeService/StreamContainerStats",
        request_serializer=pb.StreamContainerStatsRequest.SerializeToString,
        response_deserializer=pb.StreamContainerStatsResponse.FromString,
    )(pb.StreamContainerStatsRequest())
    assert sum([len(r.container_stats) async for r in streamed]) == 4


async def test_container_stats_of_a_container_without_a_task_fails(node: Node) -> None:
    ok = await node.call("ContainerStats", pb.ContainerStatsRequest(container_id=node.running))
    assert ok.stats.attributes.id == node.running
    for cid in (node.created, node.exited):
        assert await node.error("ContainerStats", pb.ContainerStatsRequest(
            container_id=cid)) == (grpc.StatusCode.UNKNOWN, "unexpected metrics response: []")


def _not_ready(pod: str) -> str:
    return (f'failed to get pod sandbox stats since sandbox container "{pod}" is not in '
            "ready state")


@pytest.mark.parametrize("compat", ["1.7", "1.6"])
async def test_pod_stats_of_a_stopped_pod_fail(node: Node, compat: str) -> None:
    node.rt.state.compat = compat
    code, words = await node.error("PodSandboxStats", pb.PodSandboxStatsRequest(
        pod_sandbox_id=node.stopped))
    expected = f"failed to decode pod sandbox metrics {node.stopped}: {_not_ready(node.stopped)}"
    if compat == "1.7":
        assert (code, words) == (grpc.StatusCode.UNAVAILABLE, expected + ": unavailable")
    else:
        assert (code, words) == (grpc.StatusCode.UNKNOWN, expected)
    ok = await node.call("PodSandboxStats", pb.PodSandboxStatsRequest(pod_sandbox_id=node.ready))
    assert len(ok.stats.linux.containers) == 3


async def test_pod_stats_list_skips_a_stopped_pod_on_17_and_fails_on_16(node: Node) -> None:
    stats = (await node.call("ListPodSandboxStats", pb.ListPodSandboxStatsRequest())).stats
    assert [s.attributes.id for s in stats] == [node.ready]
    # every container of the pod, not only the running one; one process each running
    assert {c.attributes.id for c in stats[0].linux.containers} == {
        node.running, node.created, node.exited}
    assert stats[0].linux.process.process_count.value == 2  # the pause process + one

    node.rt.state.compat = "1.6"
    assert await node.error("ListPodSandboxStats", pb.ListPodSandboxStatsRequest()) == (
        grpc.StatusCode.UNKNOWN,
        f'failed to decode sandbox container metrics for sandbox "{node.stopped}": '
        + _not_ready(node.stopped))
    # a filter that leaves the stopped pod out lists as on 1.7
    only_ready = await node.call("ListPodSandboxStats", pb.ListPodSandboxStatsRequest(
        filter=pb.PodSandboxStatsFilter(id=node.ready)))
    assert [s.attributes.id for s in only_ready.stats] == [node.ready]
