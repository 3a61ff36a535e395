"""The fake runtime's RPC implementations: one method per CRI RPC.

Each area's RPCs live beside its state (``_pods``, ``_containers``, ``_images``,
``_stats``); :class:`FakeServicer` joins them and adds the runtime-wide ones.

Method names are the RPCs' snake_case names (``RPC.attr``) so the server can
derive its handler table from ``aiocri._rpc.RPCS``. Each takes the request and
the CRI version whose path it was called on, and returns a message, or bytes
that are already a serialized response (the list fast path). Streaming RPCs
are async generators. Errors are raised as :class:`StatusError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._containers import ContainerRPCs
from aiocri.testing._images import ImageRPCs
from aiocri.testing._model import StatusError
from aiocri.testing._pods import PodRPCs
from aiocri.testing._shared import Response, ServicerBase
from aiocri.testing._stats import StatsRPCs
from aiocri.versions import CRIVersion

__all__ = ["FakeServicer", "Response"]


class FakeServicer(PodRPCs, ContainerRPCs, StatsRPCs, ImageRPCs, ServicerBase):
    """Serves a :class:`FakeState` over the CRI: the RPC groups of each area, plus the
    runtime-wide ones below."""

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
        # containerd 1.6/1.7 answer no runtime handlers and no features (those came in 2.x)
        response = pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions))
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
        if self.state.compat == "1.6":  # it came in 1.7; grpc-go's words for a missing method
            raise StatusError(grpc.StatusCode.UNIMPLEMENTED,
                              f"unknown method GetContainerEvents for service "
                              f"{version.package}.RuntimeService")
        queue = self.state.subscribe()
        try:
            while True:
                yield await queue.get()
        finally:
            self.state.unsubscribe(queue)
