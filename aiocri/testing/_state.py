"""The fake runtime's world: pods, containers and images in memory.

Everything here is plain synchronous Python owned by one event loop. The state is
built in layers, one module per area, each a class on top of the one below:
``_shared.SharedState`` (the tables, ids, names, events), ``_images.ImageOps``,
``_containers.ContainerOps``, ``_pods.PodOps``, and here ``FakeState``, which adds
what tests use to script a node (``add_pod``, ``add_container``, ``populate``).
The gRPC handlers and test code mutate it only through these methods, which keep
the caches honest and push lifecycle events to subscribers. Behaviour follows
containerd's CRI plugin where the protocol leaves room (unique id prefixes,
idempotent removals, "not found" wording).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._model import (
    DEFAULT_IMAGES,
    Container,
    Image,
    Pod,
    Populated,
    StatusError,
    frame,
    normalize_ref,
    uuid_of,
)
from aiocri.testing._pods import PodOps

__all__ = [
    "DEFAULT_IMAGES",
    "Container",
    "FakeState",
    "Image",
    "Pod",
    "Populated",
    "StatusError",
    "frame",
    "normalize_ref",
]


class FakeState(PodOps):
    """Pods, containers and images, plus the event fan-out.

    Methods named like CRI calls behave like them (same checks, same error
    codes, raised as :class:`StatusError`); ``exit_container`` and ``populate``
    script what a real node does on its own. All of it must run on the event
    loop that serves it (asyncio queues carry the events).
    """

    def __init__(
        self,
        images: Iterable[str | Image] | None = None,
        *,
        registry: Iterable[str | Image] = (),
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        for item in images if images is not None else DEFAULT_IMAGES:
            self._keep(self._add_to_registry(item))
        for item in registry:
            self._add_to_registry(item)

    # -- helpers for tests and benchmarks -----------------------------------------

    def add_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        uid: str | None = None,
        attempt: int = 0,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        host_network: bool = False,
        log_directory: str | None = None,
    ) -> str:
        """RunPodSandbox with a kubelet-like config (logs under ``log_directory``,
        by default a folder under :attr:`log_root` named as the kubelet names it)."""
        uid = uid or uuid_of(self.new_id())
        all_labels = {
            "io.kubernetes.pod.name": name,
            "io.kubernetes.pod.namespace": namespace,
            "io.kubernetes.pod.uid": uid,
            **(labels or {}),
        }
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=name, uid=uid, namespace=namespace, attempt=attempt
            ),
            hostname=name,
            log_directory=log_directory or f"{self.log_root}/{namespace}_{name}_{uid}",
            labels=all_labels,
            annotations=dict(annotations or {}),
        )
        if host_network:
            config.linux.security_context.namespace_options.network = pb.NODE
        return self.run_pod_sandbox(config)

    def add_container(
        self,
        pod_id: str,
        name: str,
        *,
        image: str = "docker.io/library/busybox:1.36",
        attempt: int = 0,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        command: Sequence[str] = ("sleep", "infinity"),
        start: bool = True,
        stdin: bool = False,
        stdin_once: bool = False,
        tty: bool = False,
    ) -> str:
        """CreateContainer, then StartContainer unless ``start=False``; kubelet-like config.

        The container runs ``command`` (see :mod:`aiocri.testing._workload`); with
        ``stdin`` it reads what attach sessions write.
        """
        pod = self.get_pod(pod_id)
        pmeta = pod.config.metadata
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=image),
            command=list(command),
            labels={
                "io.kubernetes.container.name": name,
                "io.kubernetes.pod.name": pmeta.name,
                "io.kubernetes.pod.namespace": pmeta.namespace,
                "io.kubernetes.pod.uid": pmeta.uid,
                **(labels or {}),
            },
            annotations={
                "io.kubernetes.container.restartCount": str(attempt),
                **(annotations or {}),
            },
            log_path=f"{name}/{attempt}.log",
            stdin=stdin,
            stdin_once=stdin_once,
            tty=tty,
        )
        container_id = self.create_container(pod.id, config)
        if start:
            self.start_container(container_id)
        return container_id

    def populate(
        self,
        pods: int,
        containers_per_pod: int,
        *,
        namespaces: int = 4,
        images: Sequence[str] | None = None,
    ) -> Populated:
        """Add ``pods`` running pods of ``containers_per_pod`` running containers each."""
        choices = (
            list(images)
            if images
            else [i.name for i in self.images.values() if not i.pinned]
            or [i.name for i in self.images.values()]
        )
        if not choices:
            raise ValueError("populate needs at least one local image")
        pod_ids: list[str] = []
        container_ids: list[str] = []
        for _ in range(pods):
            n = self._populate_seq
            self._populate_seq += 1
            pod_id = self.add_pod(
                f"pod-{n}",
                namespace=f"ns-{n % max(namespaces, 1)}",
                labels={"app": f"app-{n % 10}", "aiocri.fake/populated": "true"},
            )
            pod_ids.append(pod_id)
            for j in range(containers_per_pod):
                container_ids.append(
                    self.add_container(
                        pod_id,
                        f"c{j}",
                        image=choices[(n + j) % len(choices)],
                        labels={"app": f"app-{n % 10}", "tier": "main" if j == 0 else "side"},
                    )
                )
        self.containers_bytes()  # pay the message building now, not in the first list call
        return Populated(pod_ids, container_ids)
