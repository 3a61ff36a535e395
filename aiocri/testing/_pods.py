"""The fake runtime's pod sandboxes: their lifecycle and the RPCs that drive them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._containers import ContainerOps
from aiocri.testing._model import (
    PAUSE_IMAGE,
    Pod,
    copy_message,
    labels_match,
    resolve,
    unknown,
    user_refusal,
)
from aiocri.testing._shared import Response, ServicerBase, chunks, copy_request
from aiocri.versions import CRIVersion

__all__ = ["RUNTIME_HANDLERS", "PodOps", "PodRPCs"]

#: The runtime handlers the fake has (containerd's default config: runc, also as "").
RUNTIME_HANDLERS = frozenset({"", "runc"})


class PodOps(ContainerOps):
    """Pod sandboxes: run, stop, remove; a pod's containers go with it."""

    def filter_pods(
        self,
        *,
        id: str = "",
        state: pb.PodSandboxState.ValueType | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> list[Pod]:
        if id:
            hit = resolve(self.pods, id)
            pods: Iterable[Pod] = [hit] if hit is not None else []
        else:
            pods = self.pods.values()
        return [
            p
            for p in pods
            if (state is None or p.state == state)
            and (not label_selector or labels_match(p.config.labels, label_selector))
        ]

    def pods_bytes(self) -> bytes:
        """The serialized ListPodSandboxResponse for all pods, cached per generation."""
        cached = self._pods_all
        if cached is None or cached[0] != self.generation:
            cached = self._pods_all = (
                self.generation,
                b"".join([p.list_item() for p in self.pods.values()]),
            )
        return cached[1]

    # -- pods ----------------------------------------------------------------------

    def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        # containerd's checks, in its order, with its codes and words
        meta = config.metadata
        if not config.HasField("metadata"):
            raise unknown("sandbox config must include metadata")
        if runtime_handler not in RUNTIME_HANDLERS:
            raise unknown(f'failed to get sandbox runtime: no runtime for "{runtime_handler}" '
                          f"is configured")
        spec = "sanbdox" if self.compat == "1.6" else "sandbox"  # 1.6's typo, kept
        refused = user_refusal(config.linux.security_context,
                               f"failed to generate {spec} container spec options")
        if refused:
            raise unknown(refused)
        host_network = config.linux.security_context.namespace_options.network == pb.NODE
        if host_network and config.hostname:
            raise unknown("failed to create containerd task: failed to create shim task: OCI "
                          "runtime create failed: runc create failed: unable to set hostname "
                          "without a private UTS namespace: unknown")
        name = f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"
        pod_id = self.new_id()
        self._reserve(name, pod_id, "sandbox")
        ip = ""
        if config.linux.security_context.namespace_options.network != pb.NODE:
            n = self._next_ip
            self._next_ip += 1
            ip = f"10.88.{(n >> 8) & 0xFF}.{n & 0xFF}"
        pod = Pod(
            id=pod_id,
            config=copy_message(config),
            runtime_handler=runtime_handler,
            created_at=time.time_ns(),
            ip=ip,
        )
        self.pods[pod_id] = pod
        self._changed()
        self._emit(pod_id, pod, pb.CONTAINER_CREATED_EVENT)
        self._emit(pod_id, pod, pb.CONTAINER_STARTED_EVENT)
        return pod_id

    def stop_pod_sandbox(self, pod_id: str) -> None:
        """Stops every running container of the pod, then the pod; safe to repeat."""
        if self._missing_stop_is_fine("pod", pod_id):
            return
        pod = self.get_pod(pod_id)
        for container in list(pod.containers.values()):
            if container.running:  # created ones stay created, as in containerd
                self._stop(container, kill=True)  # containerd: SIGKILL, no grace
        if pod.state != pb.SANDBOX_NOTREADY:
            pod.state = pb.SANDBOX_NOTREADY
            self._changed(pod)
            self._emit(pod.id, pod, pb.CONTAINER_STOPPED_EVENT)

    def remove_pod_sandbox(self, pod_id: str) -> bool:
        """Stops the pod if needed and removes it with its containers.

        An unknown id is not an error (containerd answers OK); returns whether
        anything was removed.
        """
        if not pod_id:
            raise self._lookup_failed('an error occurred when try to find sandbox "{}"', "")
        pod = resolve(self.pods, pod_id)
        if pod is None:
            return False
        self.stop_pod_sandbox(pod.id)
        for container in list(pod.containers.values()):
            self.remove_container(container.id)
        del self.pods[pod.id]
        self._release(pod.id)
        self._changed(pod)
        self._emit(pod.id, pod, pb.CONTAINER_DELETED_EVENT)
        return True

    def pod_info(self, pod: Pod) -> dict[str, str]:
        info = {
            "pid": 0 if not pod.ready else 900 + len(pod.id) % 100,
            "processStatus": "running" if pod.ready else "stopped",
            "netNamespaceClosed": not pod.ready,
            "image": PAUSE_IMAGE,
            "runtimeHandler": pod.runtime_handler,
            "runtimeType": "io.containerd.runc.v2",
            "config": {
                "metadata": {
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                    "namespace": pod.metadata.namespace,
                    "attempt": pod.metadata.attempt,
                },
                "hostname": pod.config.hostname,
                "log_directory": pod.config.log_directory,
            },
        }
        return {"info": json.dumps(info)}


class PodRPCs(ServicerBase):
    """RuntimeService: pod sandboxes."""

    def _pod_items(self, f: pb.PodSandboxFilter | None) -> list[bytes] | bytes:
        if f is None or not (f.id or f.HasField("state") or f.label_selector):
            return self.state.pods_bytes()
        found = self.state.filter_pods(
            id=f.id,
            state=f.state.state if f.HasField("state") else None,
            label_selector=f.label_selector,
        )
        return [p.list_item() for p in found]

    def _all_pod_items(self, f: pb.PodSandboxFilter | None) -> list[bytes]:
        items = self._pod_items(f)
        if isinstance(items, bytes):
            return [p.list_item() for p in self.state.pods.values()]
        return items

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
        # containerd names no id here, and leaves the response's timestamp 0
        pod = self.state.get_pod(request.pod_sandbox_id, "an error occurred when try to find "
                                 "sandbox")
        response = pb.PodSandboxStatusResponse(
            status=pod.to_status(),
            containers_statuses=[c.to_status() for c in pod.containers.values()],
        )
        if request.verbose:
            response.info.update(self.state.pod_info(pod))
        return response

    def list_pod_sandbox(self, request: pb.ListPodSandboxRequest, version: CRIVersion) -> Response:
        f = request.filter if request.HasField("filter") else None
        return self._cached_list("pods", f, self.state.pods_bytes, self._pod_items)

    async def stream_pod_sandboxes(
        self, request: pb.StreamPodSandboxesRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        items = self._all_pod_items(request.filter if request.HasField("filter") else None)
        for chunk in chunks(items, self.stream_chunk):
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
        return pb.PortForwardResponse(url=self._url("portforward", copy_request(request)))

