"""The fake runtime's stats and metrics: plausible numbers, stable per object.

As containerd 1.6/1.7: the stats lists cover containers in every state (a created or
exited one has its attributes and writable layer only, no cpu or memory), while
ContainerStats of one that is not running fails; a pod that is not ready has no
stats (PodSandboxStats fails, ListPodSandboxStats skips it on 1.7 and fails on 1.6).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._model import IMAGE_FS, Container, Pod, StatusError, frame
from aiocri.testing._shared import Response, ServicerBase, chunks
from aiocri.versions import CRIVersion

__all__ = ["StatsRPCs"]

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


def _not_ready(pod: Pod) -> str:
    return (
        f'failed to get pod sandbox stats since sandbox container "{pod.id}" is not in '
        "ready state"
    )


class StatsRPCs(ServicerBase):
    """RuntimeService: container and pod stats, metric descriptors and metrics."""

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
        containers = [self._container_stats(c, now) for c in pod.containers.values()]
        running = sum(c.running for c in pod.containers.values())
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
                process=pb.ProcessUsage(timestamp=now, process_count=_u64(1 + running)),
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
        )  # every state: containerd lists created and exited containers too
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
            id=f.id if f else "", label_selector=f.label_selector if f else None
        )
        out = []
        for p in found:
            if not p.ready:
                if self.state.compat == "1.6":  # one pod not ready fails the whole list
                    raise StatusError(
                        grpc.StatusCode.UNKNOWN,
                        f'failed to decode sandbox container metrics for sandbox "{p.id}": '
                        + _not_ready(p),
                    )
                continue  # 1.7 leaves it out
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

    # -- RuntimeService: stats and metrics ------------------------------------------

    def container_stats(
        self, request: pb.ContainerStatsRequest, version: CRIVersion
    ) -> pb.ContainerStatsResponse:
        container = self.state.get_container(request.container_id, "failed to find container")
        if not container.running:  # no task, so no metrics: containerd's words
            raise StatusError(grpc.StatusCode.UNKNOWN, "unexpected metrics response: []")
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
        for chunk in chunks(items, self.stream_chunk):
            yield chunk

    def pod_sandbox_stats(
        self, request: pb.PodSandboxStatsRequest, version: CRIVersion
    ) -> pb.PodSandboxStatsResponse:
        pod = self.state.get_pod(request.pod_sandbox_id,
                                 "an error occurred when trying to find sandbox {}")
        if not pod.ready:
            words = f"failed to decode pod sandbox metrics {pod.id}: {_not_ready(pod)}"
            if self.state.compat == "1.6":
                raise StatusError(grpc.StatusCode.UNKNOWN, words)
            raise StatusError(grpc.StatusCode.UNAVAILABLE, words + ": unavailable")
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
        for chunk in chunks(items, self.stream_chunk):
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
        for chunk in chunks(self._pod_metrics_items(), self.stream_chunk):
            yield chunk

