"""The fake runtime's RPC implementations: one method per CRI RPC.

Method names are the RPCs' snake_case names (``RPC.attr``) so the server can
derive its handler table from ``aiocri._rpc.RPCS``. Each takes the request and
the CRI version whose path it was called on, and returns a message, or bytes
that are already a serialized response (the list fast path). Streaming RPCs
are async generators. Errors are raised as :class:`StatusError`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._exec import ExecHandler, ExecResult, default_exec_handler
from aiocri.testing._state import (
    IMAGE_FS,
    Container,
    FakeState,
    Pod,
    StatusError,
    frame,
)
from aiocri.testing._streaming import StreamingServer
from aiocri.versions import CRIVersion

__all__ = ["FakeServicer", "Response"]

#: A message, or bytes that already are the serialized response.
Response = Message | bytes

STREAMING_ADDRESS = "127.0.0.1:10010"  # nothing listens there: the URLs are only handed out
_MiB = 1 << 20
# List*Stats reuse a sample this young, as a stats collector's housekeeping period does:
# building 10,000 ContainerStats takes ~0.3 s of Python.
STATS_PERIOD_NS = 1_000_000_000

_METRICS = (
    pb.MetricDescriptor(
        name="container_cpu_usage_seconds_total",
        help="Cumulative cpu time consumed by the container in seconds.",
        label_keys=["container", "pod", "namespace"],
    ),
    pb.MetricDescriptor(
        name="container_memory_working_set_bytes",
        help="Current working set of the container in bytes.",
        label_keys=["container", "pod", "namespace"],
    ),
)


def _u64(value: int) -> pb.UInt64Value:
    return pb.UInt64Value(value=value)


def _copy_message(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _chunks(items: Sequence[bytes], size: int) -> Iterable[bytes]:
    for start in range(0, len(items), size):
        yield b"".join(items[start : start + size])


def _container_state_filter(f: pb.ContainerFilter) -> pb.ContainerState.ValueType | None:
    return f.state.state if f.HasField("state") else None


class FakeServicer:
    """Serves a :class:`FakeState` over the CRI."""

    def __init__(
        self,
        state: FakeState,
        *,
        runtime_name: str = "aiocri-fake",
        runtime_version: str = "1.0.0",
        stream_chunk: int = 1000,
    ) -> None:
        self.state = state
        self.runtime_name = runtime_name
        self.runtime_version = runtime_version
        #: Items per message of the Stream* RPCs.
        self.stream_chunk = stream_chunk
        self.exec_handler: ExecHandler = default_exec_handler
        #: serves the URLs of Exec, Attach and PortForward (set by FakeRuntime)
        self.streaming: StreamingServer | None = None
        self.cgroup_driver: pb.CgroupDriver.ValueType = pb.SYSTEMD
        # Filtered list answers by (kind, filter bytes), valid for one state generation:
        # a poller repeating the same filter on 10,000 containers costs a lookup.
        self._filtered: dict[tuple[str, bytes], tuple[int, bytes]] = {}

    def _store(self, key: tuple[str, bytes], data: bytes) -> bytes:
        if len(self._filtered) >= 64:
            self._filtered.clear()
        self._filtered[key] = (self.state.generation, data)
        return data

    # -- shared pieces ---------------------------------------------------------

    def _container_items(self, f: pb.ContainerFilter | None) -> list[bytes] | bytes:
        if f is None or not (f.id or f.pod_sandbox_id or f.HasField("state") or f.label_selector):
            return self.state.containers_bytes()
        found = self.state.filter_containers(
            id=f.id,
            state=_container_state_filter(f),
            pod_sandbox_id=f.pod_sandbox_id,
            label_selector=f.label_selector,
        )
        return [c.list_item() for c in found]

    def _pod_items(self, f: pb.PodSandboxFilter | None) -> list[bytes] | bytes:
        if f is None or not (f.id or f.HasField("state") or f.label_selector):
            return self.state.pods_bytes()
        found = self.state.filter_pods(
            id=f.id,
            state=f.state.state if f.HasField("state") else None,
            label_selector=f.label_selector,
        )
        return [p.list_item() for p in found]

    def _all_container_items(self, f: pb.ContainerFilter | None) -> list[bytes]:
        items = self._container_items(f)
        if isinstance(items, bytes):  # the cached whole list; streams need the pieces
            return [c.list_item() for c in self.state.containers.values()]
        return items

    def _all_pod_items(self, f: pb.PodSandboxFilter | None) -> list[bytes]:
        items = self._pod_items(f)
        if isinstance(items, bytes):
            return [p.list_item() for p in self.state.pods.values()]
        return items

    def _running(self, container_id: str) -> Container:
        container = self.state.get_container(container_id)
        if not container.running:
            state = pb.ContainerState.Name(container.state)
            raise StatusError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'container "{container.id}" is in {state} state',
            )
        return container

    def _ready_pod(self, pod_id: str) -> Pod:
        pod = self.state.get_pod(pod_id)
        if not pod.ready:
            raise StatusError(
                grpc.StatusCode.FAILED_PRECONDITION, f'sandbox "{pod.id}" is not running'
            )
        return pod

    def _url(self, kind: str, request: object) -> str:
        if self.streaming is None:
            return f"http://{STREAMING_ADDRESS}/{kind}/{secrets.token_urlsafe(6)}"
        return self.streaming.url(kind, request)

    # -- stats -------------------------------------------------------------------

    def _container_stats(self, c: Container, now: int) -> pb.ContainerStats:
        seed = zlib.crc32(c.id.encode())  # stable per container, differs between them
        stats = pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=c.id,
                metadata=c.config.metadata,
                labels=c.config.labels,
                annotations=c.config.annotations,
            ),
            writable_layer=pb.FilesystemUsage(
                timestamp=now,
                fs_id=pb.FilesystemIdentifier(mountpoint=IMAGE_FS),
                used_bytes=_u64(4096 * (1 + seed % 512)),
                inodes_used=_u64(1 + seed % 64),
            ),
        )
        if c.running:
            ran = max(now - c.started_at, 0)
            working = 8 * _MiB + seed % (64 * _MiB)
            stats.cpu.CopyFrom(
                pb.CpuUsage(
                    timestamp=now,
                    usage_core_nano_seconds=_u64(ran // 100),  # about 1 % of a core
                    usage_nano_cores=_u64(5_000_000 + seed % 20_000_000),
                )
            )
            stats.memory.CopyFrom(
                pb.MemoryUsage(
                    timestamp=now,
                    working_set_bytes=_u64(working),
                    available_bytes=_u64(512 * _MiB - working),
                    usage_bytes=_u64(working + 2 * _MiB),
                    rss_bytes=_u64(working - _MiB),
                    page_faults=_u64(1000 + seed % 5000),
                    major_page_faults=_u64(seed % 7),
                )
            )
            stats.swap.CopyFrom(
                pb.SwapUsage(timestamp=now, swap_available_bytes=_u64(0), swap_usage_bytes=_u64(0))
            )
        return stats

    def _pod_stats(self, pod: Pod, now: int) -> pb.PodSandboxStats:
        containers = [self._container_stats(c, now) for c in pod.containers.values() if c.running]
        cpu = sum(s.cpu.usage_core_nano_seconds.value for s in containers)
        nano = sum(s.cpu.usage_nano_cores.value for s in containers)
        mem = sum(s.memory.working_set_bytes.value for s in containers) + _MiB  # + pause
        ran = max(now - pod.created_at, 0)
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(
                id=pod.id,
                metadata=pod.config.metadata,
                labels=pod.config.labels,
                annotations=pod.config.annotations,
            ),
            linux=pb.LinuxPodSandboxStats(
                cpu=pb.CpuUsage(
                    timestamp=now, usage_core_nano_seconds=_u64(cpu), usage_nano_cores=_u64(nano)
                ),
                memory=pb.MemoryUsage(
                    timestamp=now,
                    working_set_bytes=_u64(mem),
                    usage_bytes=_u64(mem + _MiB),
                    rss_bytes=_u64(mem),
                ),
                network=pb.NetworkUsage(
                    timestamp=now,
                    default_interface=pb.NetworkInterfaceUsage(
                        name="eth0",
                        rx_bytes=_u64(ran // 10_000),
                        rx_errors=_u64(0),
                        tx_bytes=_u64(ran // 20_000),
                        tx_errors=_u64(0),
                    ),
                ),
                process=pb.ProcessUsage(timestamp=now, process_count=_u64(1 + len(containers))),
                containers=containers,
            ),
        )

    def _container_stats_items(self, f: pb.ContainerStatsFilter | None) -> list[bytes]:
        now = time.time_ns()
        oldest = now - STATS_PERIOD_NS
        found = self.state.filter_containers(
            id=f.id if f else "",
            pod_sandbox_id=f.pod_sandbox_id if f else "",
            label_selector=f.label_selector if f else None,
            state=pb.CONTAINER_RUNNING,  # containerd reports running tasks only
        )
        out = []
        for c in found:
            cached = c.stats_cache
            if cached is None or cached[0] < oldest:
                stats = self._container_stats(c, now)
                cached = c.stats_cache = (now, frame(stats.SerializeToString()))
            out.append(cached[1])
        return out

    def _pod_stats_items(self, f: pb.PodSandboxStatsFilter | None) -> list[bytes]:
        now = time.time_ns()
        oldest = now - STATS_PERIOD_NS
        found = self.state.filter_pods(
            id=f.id if f else "",
            state=pb.SANDBOX_READY,
            label_selector=f.label_selector if f else None,
        )
        out = []
        for p in found:
            cached = p.stats_cache
            if cached is None or cached[0] < oldest:
                cached = p.stats_cache = (now, frame(self._pod_stats(p, now).SerializeToString()))
            out.append(cached[1])
        return out

    def _pod_metrics_items(self) -> list[bytes]:
        now = time.time_ns()
        out = []
        for pod in self.state.pods.values():
            if not pod.ready:
                continue
            meta = pod.config.metadata
            per_container = []
            for c in pod.containers.values():
                if not c.running:
                    continue
                stats = self._container_stats(c, now)
                labels = [c.name, meta.name, meta.namespace]
                per_container.append(
                    pb.ContainerMetrics(
                        container_id=c.id,
                        metrics=[
                            pb.Metric(
                                name=_METRICS[0].name,
                                timestamp=now,
                                metric_type=pb.COUNTER,
                                label_values=labels,
                                value=_u64(stats.cpu.usage_core_nano_seconds.value // 10**9),
                            ),
                            pb.Metric(
                                name=_METRICS[1].name,
                                timestamp=now,
                                metric_type=pb.GAUGE,
                                label_values=labels,
                                value=stats.memory.working_set_bytes,
                            ),
                        ],
                    )
                )
            metrics = pb.PodSandboxMetrics(pod_sandbox_id=pod.id, container_metrics=per_container)
            out.append(frame(metrics.SerializeToString()))
        return out

    def _image_items(self, f: pb.ImageFilter | None) -> list[bytes]:
        if f is not None and f.image.image:
            image = self.state.find_image(f.image.image)
            images = [image] if image is not None else []
        else:
            images = list(self.state.images.values())
        return [frame(i.to_proto().SerializeToString()) for i in images]

    # -- RuntimeService: runtime ----------------------------------------------------

    def version(self, request: pb.VersionRequest, version: CRIVersion) -> pb.VersionResponse:
        # containerd answers with the API version of the path that was called
        return pb.VersionResponse(
            version="0.1.0",
            runtime_name=self.runtime_name,
            runtime_version=self.runtime_version,
            runtime_api_version=version.name,
        )

    def status(self, request: pb.StatusRequest, version: CRIVersion) -> pb.StatusResponse:
        state = self.state
        conditions = [
            pb.RuntimeCondition(type="RuntimeReady", status=state.runtime_ready),
            pb.RuntimeCondition(type="NetworkReady", status=state.network_ready),
        ]
        if not state.network_ready:
            conditions[1].reason = "NetworkPluginNotReady"
            conditions[1].message = "Network plugin returns error: cni plugin not initialized"
        if not state.runtime_ready:
            conditions[0].reason = "RuntimeNotReady"
            conditions[0].message = "runtime is not ready"
        features = pb.RuntimeHandlerFeatures(recursive_read_only_mounts=True, user_namespaces=True)
        response = pb.StatusResponse(
            status=pb.RuntimeStatus(conditions=conditions),
            runtime_handlers=[
                pb.RuntimeHandler(name="", features=features),
                pb.RuntimeHandler(name="runc", features=features),
            ],
            features=pb.RuntimeFeatures(supplemental_groups_policy=True, mount_options=True),
        )
        if request.verbose:
            config = {
                "runtimeName": self.runtime_name,
                "runtimeVersion": self.runtime_version,
                "podCIDR": state.pod_cidr,
                "pods": len(state.pods),
                "containers": len(state.containers),
                "images": len(state.images),
            }
            response.info["config"] = json.dumps(config)
            response.info["lastCNILoadStatus"] = "OK"
        return response

    def runtime_config(
        self, request: pb.RuntimeConfigRequest, version: CRIVersion
    ) -> pb.RuntimeConfigResponse:
        return pb.RuntimeConfigResponse(
            linux=pb.LinuxRuntimeConfiguration(cgroup_driver=self.cgroup_driver)
        )

    def update_runtime_config(
        self, request: pb.UpdateRuntimeConfigRequest, version: CRIVersion
    ) -> pb.UpdateRuntimeConfigResponse:
        self.state.pod_cidr = request.runtime_config.network_config.pod_cidr
        return pb.UpdateRuntimeConfigResponse()

    # -- RuntimeService: pods ---------------------------------------------------------

    def run_pod_sandbox(
        self, request: pb.RunPodSandboxRequest, version: CRIVersion
    ) -> pb.RunPodSandboxResponse:
        pod_id = self.state.run_pod_sandbox(request.config, request.runtime_handler)
        return pb.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    def stop_pod_sandbox(
        self, request: pb.StopPodSandboxRequest, version: CRIVersion
    ) -> pb.StopPodSandboxResponse:
        self.state.stop_pod_sandbox(request.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    def remove_pod_sandbox(
        self, request: pb.RemovePodSandboxRequest, version: CRIVersion
    ) -> pb.RemovePodSandboxResponse:
        self.state.remove_pod_sandbox(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    def pod_sandbox_status(
        self, request: pb.PodSandboxStatusRequest, version: CRIVersion
    ) -> pb.PodSandboxStatusResponse:
        pod = self.state.get_pod(request.pod_sandbox_id)
        response = pb.PodSandboxStatusResponse(
            status=pod.to_status(),
            containers_statuses=[c.to_status() for c in pod.containers.values()],
            timestamp=time.time_ns(),
        )
        if request.verbose:
            response.info.update(self.state.pod_info(pod))
        return response

    def list_pod_sandbox(self, request: pb.ListPodSandboxRequest, version: CRIVersion) -> Response:
        f = request.filter if request.HasField("filter") else None
        return self._cached_list("pods", f, self.state.pods_bytes, self._pod_items)

    def _cached_list(
        self, kind: str, f: Any, everything: Callable[[], bytes], items: Callable[[Any], Any]
    ) -> Response:
        """A list answer as bytes, cached per filter until the state changes."""
        if f is None:
            return everything()
        key = (kind, f.SerializeToString(deterministic=True))
        hit = self._filtered.get(key)
        if hit is not None and hit[0] == self.state.generation:
            return hit[1]
        found = items(f)
        return found if isinstance(found, bytes) else self._store(key, b"".join(found))

    async def stream_pod_sandboxes(
        self, request: pb.StreamPodSandboxesRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._all_pod_items(request.filter if request.HasField("filter") else None)
        for chunk in _chunks(items, self.stream_chunk):
            yield chunk

    def update_pod_sandbox_resources(
        self, request: pb.UpdatePodSandboxResourcesRequest, version: CRIVersion
    ) -> pb.UpdatePodSandboxResourcesResponse:
        pod = self.state.get_pod(request.pod_sandbox_id)
        if request.HasField("resources"):
            pod.resources = pb.LinuxContainerResources()
            pod.resources.CopyFrom(request.resources)
        return pb.UpdatePodSandboxResourcesResponse()

    def port_forward(
        self, request: pb.PortForwardRequest, version: CRIVersion
    ) -> pb.PortForwardResponse:
        self._ready_pod(request.pod_sandbox_id)
        return pb.PortForwardResponse(url=self._url("portforward", _copy_message(request)))

    # -- RuntimeService: containers ---------------------------------------------------

    def create_container(
        self, request: pb.CreateContainerRequest, version: CRIVersion
    ) -> pb.CreateContainerResponse:
        sandbox = request.sandbox_config if request.HasField("sandbox_config") else None
        container_id = self.state.create_container(request.pod_sandbox_id, request.config, sandbox)
        return pb.CreateContainerResponse(container_id=container_id)

    def start_container(
        self, request: pb.StartContainerRequest, version: CRIVersion
    ) -> pb.StartContainerResponse:
        self.state.start_container(request.container_id)
        return pb.StartContainerResponse()

    def stop_container(
        self, request: pb.StopContainerRequest, version: CRIVersion
    ) -> pb.StopContainerResponse:
        self.state.stop_container(request.container_id, request.timeout)
        return pb.StopContainerResponse()

    def remove_container(
        self, request: pb.RemoveContainerRequest, version: CRIVersion
    ) -> pb.RemoveContainerResponse:
        self.state.remove_container(request.container_id)
        return pb.RemoveContainerResponse()

    def list_containers(self, request: pb.ListContainersRequest, version: CRIVersion) -> Response:
        f = request.filter if request.HasField("filter") else None
        return self._cached_list("containers", f, self.state.containers_bytes,
                                 self._container_items)

    async def stream_containers(
        self, request: pb.StreamContainersRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._all_container_items(request.filter if request.HasField("filter") else None)
        for chunk in _chunks(items, self.stream_chunk):
            yield chunk

    def container_status(
        self, request: pb.ContainerStatusRequest, version: CRIVersion
    ) -> pb.ContainerStatusResponse:
        container = self.state.get_container(request.container_id)
        response = pb.ContainerStatusResponse(status=container.to_status())
        if request.verbose:
            response.info.update(self.state.container_info(container))
        return response

    def update_container_resources(
        self, request: pb.UpdateContainerResourcesRequest, version: CRIVersion
    ) -> pb.UpdateContainerResourcesResponse:
        linux = request.linux if request.HasField("linux") else None
        self.state.update_container_resources(request.container_id, linux)
        return pb.UpdateContainerResourcesResponse()

    def reopen_container_log(
        self, request: pb.ReopenContainerLogRequest, version: CRIVersion
    ) -> pb.ReopenContainerLogResponse:
        self.state.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    async def exec_sync(
        self, request: pb.ExecSyncRequest, version: CRIVersion
    ) -> pb.ExecSyncResponse:
        container = self._running(request.container_id)
        if not request.cmd:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "cmd is empty")
        handler = self.exec_handler

        async def run() -> ExecResult:
            result = handler(container, list(request.cmd))
            if inspect.isawaitable(result):
                return await result
            return result

        try:
            if request.timeout > 0:
                result = await asyncio.wait_for(run(), request.timeout)
            else:
                result = await run()
        except TimeoutError:
            raise StatusError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"timeout {request.timeout}s exceeded: context deadline exceeded",
            ) from None
        return pb.ExecSyncResponse(
            stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code
        )

    def exec(self, request: pb.ExecRequest, version: CRIVersion) -> pb.ExecResponse:
        # the kubelet streaming server's checks and words
        if not request.cmd:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "cmd is empty")
        if not (request.stdin or request.stdout or request.stderr):
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT, "one of stdin, stdout, or stderr must be set"
            )
        if request.tty and request.stderr:
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT, "tty and stderr cannot both be true"
            )
        self._running(request.container_id)
        return pb.ExecResponse(url=self._url("exec", _copy_message(request)))

    def attach(self, request: pb.AttachRequest, version: CRIVersion) -> pb.AttachResponse:
        if not (request.stdin or request.stdout or request.stderr):
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT, "one of stdin, stdout, or stderr must be set"
            )
        if request.tty and request.stderr:
            raise StatusError(
                grpc.StatusCode.INVALID_ARGUMENT, "tty and stderr cannot both be true"
            )
        self._running(request.container_id)
        return pb.AttachResponse(url=self._url("attach", _copy_message(request)))

    # -- RuntimeService: stats and metrics ------------------------------------------

    def container_stats(
        self, request: pb.ContainerStatsRequest, version: CRIVersion
    ) -> pb.ContainerStatsResponse:
        container = self.state.get_container(request.container_id)
        return pb.ContainerStatsResponse(stats=self._container_stats(container, time.time_ns()))

    def list_container_stats(
        self, request: pb.ListContainerStatsRequest, version: CRIVersion
    ) -> Response:
        return b"".join(
            self._container_stats_items(request.filter if request.HasField("filter") else None)
        )

    async def stream_container_stats(
        self, request: pb.StreamContainerStatsRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._container_stats_items(request.filter if request.HasField("filter") else None)
        for chunk in _chunks(items, self.stream_chunk):
            yield chunk

    def pod_sandbox_stats(
        self, request: pb.PodSandboxStatsRequest, version: CRIVersion
    ) -> pb.PodSandboxStatsResponse:
        pod = self.state.get_pod(request.pod_sandbox_id)
        return pb.PodSandboxStatsResponse(stats=self._pod_stats(pod, time.time_ns()))

    def list_pod_sandbox_stats(
        self, request: pb.ListPodSandboxStatsRequest, version: CRIVersion
    ) -> Response:
        f = request.filter if request.HasField("filter") else None
        return b"".join(self._pod_stats_items(f))

    async def stream_pod_sandbox_stats(
        self, request: pb.StreamPodSandboxStatsRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._pod_stats_items(request.filter if request.HasField("filter") else None)
        for chunk in _chunks(items, self.stream_chunk):
            yield chunk

    def list_metric_descriptors(
        self, request: pb.ListMetricDescriptorsRequest, version: CRIVersion
    ) -> pb.ListMetricDescriptorsResponse:
        return pb.ListMetricDescriptorsResponse(descriptors=_METRICS)

    def list_pod_sandbox_metrics(
        self, request: pb.ListPodSandboxMetricsRequest, version: CRIVersion
    ) -> Response:
        return b"".join(self._pod_metrics_items())

    async def stream_pod_sandbox_metrics(
        self, request: pb.StreamPodSandboxMetricsRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        for chunk in _chunks(self._pod_metrics_items(), self.stream_chunk):
            yield chunk

    # -- RuntimeService: checkpoints ---------------------------------------------------

    def checkpoint_container(
        self, request: pb.CheckpointContainerRequest, version: CRIVersion
    ) -> pb.CheckpointContainerResponse:
        container = self._running(request.container_id)
        if not request.location:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "checkpoint location is empty")
        self.state.container_checkpoints[request.location] = container.to_status()
        return pb.CheckpointContainerResponse()

    def checkpoint_pod(
        self, request: pb.CheckpointPodRequest, version: CRIVersion
    ) -> pb.CheckpointPodResponse:
        pod = self._ready_pod(request.pod_sandbox_id)
        if not request.output_path:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, "checkpoint output path is empty")
        wanted = set(request.container_ids)
        configs = []
        for c in pod.containers.values():
            if wanted and c.id not in wanted:
                continue
            config = pb.ContainerConfig()
            config.CopyFrom(c.config)
            configs.append(config)
        pod_config = pb.PodSandboxConfig()
        pod_config.CopyFrom(pod.config)
        self.state.pod_checkpoints[request.output_path] = (pod_config, configs)
        return pb.CheckpointPodResponse()

    def restore_pod(
        self, request: pb.RestorePodRequest, version: CRIVersion
    ) -> pb.RestorePodResponse:
        saved = self.state.pod_checkpoints.get(request.checkpoint_path)
        if saved is None:
            raise StatusError(
                grpc.StatusCode.NOT_FOUND, f'checkpoint "{request.checkpoint_path}": not found'
            )
        pod_config = request.config if request.HasField("config") else saved[0]
        configs = list(request.container_configs) or saved[1]
        pod_id = self.state.run_pod_sandbox(pod_config, request.runtime_handler)
        restored = []
        for config in configs:
            container_id = self.state.create_container(pod_id, config)
            self.state.start_container(container_id)
            restored.append(
                pb.RestoredContainer(name=config.metadata.name, container_id=container_id)
            )
        return pb.RestorePodResponse(pod_sandbox_id=pod_id, restored_containers=restored)

    # -- RuntimeService: events -------------------------------------------------------

    async def get_container_events(
        self, request: pb.GetEventsRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        queue = self.state.subscribe()
        try:
            while True:
                yield await queue.get()
        finally:
            self.state.unsubscribe(queue)

    # -- ImageService --------------------------------------------------------------------

    def list_images(self, request: pb.ListImagesRequest, version: CRIVersion) -> Response:
        return b"".join(self._image_items(request.filter if request.HasField("filter") else None))

    async def stream_images(
        self, request: pb.StreamImagesRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._image_items(request.filter if request.HasField("filter") else None)
        for chunk in _chunks(items, self.stream_chunk):
            yield chunk

    def image_status(
        self, request: pb.ImageStatusRequest, version: CRIVersion
    ) -> pb.ImageStatusResponse:
        image = self.state.find_image(request.image.image)
        if image is None:  # absent is an empty answer, not an error
            return pb.ImageStatusResponse()
        response = pb.ImageStatusResponse(image=image.to_proto())
        if request.verbose:
            info = {
                "imageSpec": {"architecture": "amd64", "os": "linux"},
                "chainID": f"sha256:{image.id[7:][::-1]}",
            }
            response.info["info"] = json.dumps(info)
        return response

    def pull_image(self, request: pb.PullImageRequest, version: CRIVersion) -> pb.PullImageResponse:
        image = self.state.pull_image(request.image.image)
        return pb.PullImageResponse(image_ref=image.id)

    def remove_image(
        self, request: pb.RemoveImageRequest, version: CRIVersion
    ) -> pb.RemoveImageResponse:
        self.state.remove_image(request.image.image)
        return pb.RemoveImageResponse()

    def image_fs_info(
        self, request: pb.ImageFsInfoRequest, version: CRIVersion
    ) -> pb.ImageFsInfoResponse:
        now = time.time_ns()
        used = sum(i.size for i in self.state.images.values())
        images = pb.FilesystemUsage(
            timestamp=now,
            fs_id=pb.FilesystemIdentifier(mountpoint=IMAGE_FS),
            used_bytes=_u64(used),
            inodes_used=_u64(len(self.state.images) * 1200),
        )
        containers = pb.FilesystemUsage(
            timestamp=now,
            fs_id=pb.FilesystemIdentifier(mountpoint=IMAGE_FS),
            used_bytes=_u64(len(self.state.containers) * 64 * 1024),
            inodes_used=_u64(len(self.state.containers) * 16),
        )
        return pb.ImageFsInfoResponse(
            image_filesystems=[images], container_filesystems=[containers]
        )
