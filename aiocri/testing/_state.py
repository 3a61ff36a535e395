"""The fake runtime's world: pods, containers and images in memory.

Everything here is plain synchronous Python owned by one event loop: the gRPC
handlers and test code mutate it through the methods below, which keep the
caches honest and push lifecycle events to subscribers. Behaviour follows
containerd's CRI plugin where the protocol leaves room (unique id prefixes,
idempotent removals, "not found" wording).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._logfile import CRILogFile

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

#: What a fresh fake runtime has locally (the pause image is pinned, as containerd pins it).
DEFAULT_IMAGES: tuple[str, ...] = (
    "registry.k8s.io/pause:3.9",
    "docker.io/library/busybox:1.36",
    "docker.io/library/nginx:1.25",
    "docker.io/library/redis:7.2",
)

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
IMAGE_FS = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
_EVENT_QUEUE_SIZE = 10_000  # containerd buffers 1000 and drops the rest; be roomier


class StatusError(Exception):
    """A CRI error with its gRPC status code; the server turns it into the call's status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _not_found(kind: str, ident: str) -> StatusError:
    # containerd's wording, so clients that match on it see the real thing.
    return StatusError(
        grpc.StatusCode.NOT_FOUND, f'an error occurred when try to find {kind} "{ident}": not found'
    )


def _invalid(details: str) -> StatusError:
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, details)


def _precondition(details: str) -> StatusError:
    return StatusError(grpc.StatusCode.FAILED_PRECONDITION, details)


def frame(payload: bytes) -> bytes:
    """``payload`` as one element of repeated field 1.

    Every CRI list response keeps its items in field 1, so joining framed item
    bytes gives a valid serialized response without building messages.
    """
    n = len(payload)
    head = bytearray(b"\x0a")
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + payload


def normalize_ref(ref: str) -> str:
    """Docker-style reference normalisation: busybox -> docker.io/library/busybox:latest."""
    if ref.startswith("sha256:"):
        return ref
    name, _, digest = ref.partition("@")
    tag = ""
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        name, first, rest = f"docker.io/{name}", "docker.io", name
    if first == "docker.io" and "/" not in rest:
        name = f"docker.io/library/{rest}"
    if not tag and not digest:
        tag = "latest"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _reason_for(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


@dataclass(slots=True, eq=False)
class Image:
    """One local image. ``id`` is ``sha256:<hex>`` like containerd's image ids."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    pinned: bool = False

    @classmethod
    def from_ref(cls, ref: str, *, size: int | None = None) -> Image:
        full = normalize_ref(ref)
        repo = full.rsplit(":", 1)[0] if "@" not in full else full.split("@", 1)[0]
        if size is None:  # stable, plausible sizes: pause is tiny, others 2-200 MB
            size = (
                320_000
                if full == PAUSE_IMAGE
                else 2_000_000 + int(_digest(full)[:8], 16) % 198_000_000
            )
        return cls(
            id=f"sha256:{_digest('image:' + full)}",
            repo_tags=[full] if "@" not in full else [],
            repo_digests=[f"{repo}@sha256:{_digest('manifest:' + full)}"],
            size=size,
            pinned=full == PAUSE_IMAGE,
        )

    def to_proto(self) -> pb.Image:
        return pb.Image(
            id=self.id,
            repo_tags=self.repo_tags,
            repo_digests=self.repo_digests,
            size=self.size,
            spec=pb.ImageSpec(image=self.id),
            pinned=self.pinned,
        )

    @property
    def name(self) -> str:
        return self.repo_tags[0] if self.repo_tags else self.id


@dataclass(slots=True, eq=False)
class Pod:
    """A pod sandbox. Read freely; change it only through :class:`FakeState`."""

    id: str
    config: pb.PodSandboxConfig
    runtime_handler: str
    created_at: int
    ip: str
    state: pb.PodSandboxState.ValueType = pb.SANDBOX_READY
    containers: dict[str, Container] = field(default_factory=dict)
    resources: pb.LinuxContainerResources | None = None
    _item: bytes | None = None  # framed PodSandbox bytes, rebuilt after a change
    stats_cache: tuple[int, bytes] | None = None  # (collected at, framed stats)

    @property
    def metadata(self) -> pb.PodSandboxMetadata:
        return self.config.metadata

    @property
    def labels(self) -> Mapping[str, str]:
        return self.config.labels

    @property
    def ready(self) -> bool:
        return self.state == pb.SANDBOX_READY

    def to_proto(self) -> pb.PodSandbox:
        return pb.PodSandbox(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            labels=self.config.labels,
            annotations=self.config.annotations,
            runtime_handler=self.runtime_handler,
        )

    def list_item(self) -> bytes:
        item = self._item
        if item is None:
            item = self._item = frame(self.to_proto().SerializeToString())
        return item

    def to_status(self) -> pb.PodSandboxStatus:
        ns = self.config.linux.security_context.namespace_options
        return pb.PodSandboxStatus(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            network=pb.PodSandboxNetworkStatus(ip=self.ip),
            linux=pb.LinuxPodSandboxStatus(
                namespaces=pb.Namespace(
                    options=pb.NamespaceOption(network=ns.network, pid=ns.pid, ipc=ns.ipc)
                )
            ),
            labels=self.config.labels,
            annotations=self.config.annotations,
            runtime_handler=self.runtime_handler,
        )


@dataclass(slots=True, eq=False)
class Container:
    """A container. Read freely; change it only through :class:`FakeState`."""

    id: str
    pod: Pod
    config: pb.ContainerConfig
    image: Image
    created_at: int
    log_path: str
    state: pb.ContainerState.ValueType = pb.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    resources: pb.LinuxContainerResources | None = None
    _item: bytes | None = None  # framed Container bytes, rebuilt after a change
    stats_cache: tuple[int, bytes] | None = None  # (collected at, framed stats)
    #: attached sessions: called with (stream, data) for each output
    listeners: list[Callable[[str, bytes], None]] = field(default_factory=list)
    #: called once when the container stops running (sessions end)
    on_exit: list[Callable[[], None]] = field(default_factory=list)
    log: CRILogFile | None = None

    @property
    def pod_sandbox_id(self) -> str:
        return self.pod.id

    @property
    def name(self) -> str:
        return self.config.metadata.name

    @property
    def labels(self) -> Mapping[str, str]:
        return self.config.labels

    @property
    def running(self) -> bool:
        return self.state == pb.CONTAINER_RUNNING

    def to_proto(self) -> pb.Container:
        given = self.config.image
        return pb.Container(
            id=self.id,
            pod_sandbox_id=self.pod.id,
            metadata=self.config.metadata,
            image=pb.ImageSpec(
                image=given.image,
                user_specified_image=given.user_specified_image or given.image,
                annotations=given.annotations,
            ),
            image_ref=self.image.id,
            state=self.state,
            created_at=self.created_at,
            labels=self.config.labels,
            annotations=self.config.annotations,
            image_id=self.image.id,
        )

    def list_item(self) -> bytes:
        item = self._item
        if item is None:
            item = self._item = frame(self.to_proto().SerializeToString())
        return item

    def to_status(self) -> pb.ContainerStatus:
        status = pb.ContainerStatus(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            image=pb.ImageSpec(
                image=self.image.name,
                user_specified_image=self.config.image.user_specified_image
                or self.config.image.image,
            ),
            image_ref=self.image.repo_digests[0] if self.image.repo_digests else self.image.id,
            reason=self.reason,
            message=self.message,
            labels=self.config.labels,
            annotations=self.config.annotations,
            mounts=self.config.mounts,
            log_path=self.log_path,
            image_id=self.image.id,
            user=pb.ContainerUser(linux=pb.LinuxContainerUser(uid=0, gid=0)),
            stop_signal=self.config.stop_signal,
        )
        resources = self.resources or (
            self.config.linux.resources if self.config.linux.HasField("resources") else None
        )
        if resources is not None:
            status.resources.linux.CopyFrom(resources)
        return status


class Populated(NamedTuple):
    """What :meth:`FakeState.populate` made."""

    pod_ids: list[str]
    container_ids: list[str]


_K = TypeVar("_K", Pod, Container)


def _resolve(table: Mapping[str, _K], ident: str) -> _K | None:
    """Exact id or a unique prefix of one, as containerd's truncindex does."""
    hit = table.get(ident)
    if hit is not None or not ident:
        return hit
    found: _K | None = None
    for key, value in table.items():
        if key.startswith(ident):
            if found is not None:
                return None  # ambiguous prefix: containerd finds nothing either
            found = value
    return found


def _labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == want for key, want in selector.items())


class FakeState:
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
        self._rng = random.Random(seed) if seed is not None else None
        self.pods: dict[str, Pod] = {}
        self.containers: dict[str, Container] = {}
        #: Local images by id.
        self.images: dict[str, Image] = {}
        #: What PullImage can fetch, by normalised reference (local images included).
        self.registry: dict[str, Image] = {}
        for item in images if images is not None else DEFAULT_IMAGES:
            image = self._add_to_registry(item)
            self.images[image.id] = image
        for item in registry:
            self._add_to_registry(item)
        #: Bumped on every change; the whole-list caches are keyed on it.
        self.generation = 0
        self.pod_cidr = ""
        self.runtime_ready = True
        self.network_ready = True
        #: Exit code and reason that StopContainer and StopPodSandbox leave behind.
        self.stop_exit_code = 0
        #: PullImage of a reference the registry does not know: "registry" answers
        #: NOT_FOUND (as a real registry would); "any" makes the image, as if it existed.
        self.pull_policy: str = "registry"
        #: StopContainer / StopPodSandbox of an id that does not exist: "not-found" answers
        #: NOT_FOUND (containerd 1.6); "ok" succeeds (containerd 2.x, the CRI's rule).
        self.stop_missing: str = "not-found"
        #: CheckpointContainer / CheckpointPod results, by location.
        self.container_checkpoints: dict[str, pb.ContainerStatus] = {}
        self.pod_checkpoints: dict[str, tuple[pb.PodSandboxConfig, list[pb.ContainerConfig]]] = {}
        #: Events that a full subscriber queue could not take.
        self.events_dropped = 0
        self._names: dict[str, str] = {}  # reserved name -> owner id
        self._name_of: dict[str, str] = {}  # owner id -> reserved name
        self._subscribers: set[asyncio.Queue[pb.ContainerEventResponse]] = set()
        self._containers_all: tuple[int, bytes] | None = None
        self._pods_all: tuple[int, bytes] | None = None
        self._next_ip = 2
        self._next_pid = 1000
        self._populate_seq = 0

    # -- ids, caches, events ---------------------------------------------------

    def new_id(self) -> str:
        if self._rng is not None:
            return f"{self._rng.getrandbits(256):064x}"
        return secrets.token_hex(32)

    def _changed(self, obj: Pod | Container | None = None) -> None:
        self.generation += 1
        if obj is not None:
            obj._item = None
            obj.stats_cache = None
            if isinstance(obj, Container):
                obj.pod.stats_cache = None

    def subscribe(
        self, maxsize: int = _EVENT_QUEUE_SIZE
    ) -> asyncio.Queue[pb.ContainerEventResponse]:
        """A queue that receives every later lifecycle event; pass it to :meth:`unsubscribe`."""
        queue: asyncio.Queue[pb.ContainerEventResponse] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[pb.ContainerEventResponse]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _emit(self, subject_id: str, pod: Pod, kind: pb.ContainerEventType.ValueType) -> None:
        if not self._subscribers:
            return  # building statuses for nobody would slow populate() down
        event = pb.ContainerEventResponse(
            container_id=subject_id,
            container_event_type=kind,
            created_at=time.time_ns(),
            containers_statuses=[c.to_status() for c in pod.containers.values()],
        )
        if pod.id in self.pods:  # containerd sends no sandbox status once it is gone
            event.pod_sandbox_status.CopyFrom(pod.to_status())
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.events_dropped += 1

    # -- lookups -----------------------------------------------------------------

    def _missing_stop_is_fine(self, kind: str, ident: str) -> bool:
        if self.stop_missing != "ok" or not ident:
            return False
        if kind == "pod":
            return _resolve(self.pods, ident) is None
        return _resolve(self.containers, ident) is None

    def get_pod(self, pod_id: str) -> Pod:
        if not pod_id:
            raise _invalid("pod sandbox id must not be empty")
        pod = _resolve(self.pods, pod_id)
        if pod is None:
            raise _not_found("sandbox", pod_id)
        return pod

    def get_container(self, container_id: str) -> Container:
        if not container_id:
            raise _invalid("container id must not be empty")
        container = _resolve(self.containers, container_id)
        if container is None:
            raise _not_found("container", container_id)
        return container

    def find_image(self, ref: str) -> Image | None:
        """A local image by id, short id, tag or digest; None when absent."""
        if not ref:
            return None
        by_id = self.images.get(ref) or self.images.get(f"sha256:{ref}")
        if by_id is not None:
            return by_id
        full = normalize_ref(ref)
        for image in self.images.values():
            if full in image.repo_tags or full in image.repo_digests:
                return image
        hexpart = ref.removeprefix("sha256:")
        if len(hexpart) >= 4 and all(ch in "0123456789abcdef" for ch in hexpart):
            hits = [i for i in self.images.values() if i.id[7:].startswith(hexpart)]
            if len(hits) == 1:
                return hits[0]
        return None

    def _add_to_registry(self, item: str | Image) -> Image:
        image = item if isinstance(item, Image) else Image.from_ref(item)
        for ref in (*image.repo_tags, *image.repo_digests):
            self.registry[ref] = image
        return image

    # -- filters -------------------------------------------------------------------

    def filter_pods(
        self,
        *,
        id: str = "",
        state: pb.PodSandboxState.ValueType | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> list[Pod]:
        if id:
            hit = _resolve(self.pods, id)
            pods: Iterable[Pod] = [hit] if hit is not None else []
        else:
            pods = self.pods.values()
        return [
            p
            for p in pods
            if (state is None or p.state == state)
            and (not label_selector or _labels_match(p.config.labels, label_selector))
        ]

    def filter_containers(
        self,
        *,
        id: str = "",
        state: pb.ContainerState.ValueType | None = None,
        pod_sandbox_id: str = "",
        label_selector: Mapping[str, str] | None = None,
    ) -> list[Container]:
        found: Iterable[Container]
        if id:
            hit = _resolve(self.containers, id)
            found = [hit] if hit is not None else []
        else:
            found = self.containers.values()
        if pod_sandbox_id:
            pod = _resolve(self.pods, pod_sandbox_id)
            if pod is None:
                return []
            found = pod.containers.values() if not id else [c for c in found if c.pod is pod]
        return [
            c
            for c in found
            if (state is None or c.state == state)
            and (not label_selector or _labels_match(c.config.labels, label_selector))
        ]

    def containers_bytes(self) -> bytes:
        """The serialized ListContainersResponse for all containers, cached per generation."""
        cached = self._containers_all
        if cached is None or cached[0] != self.generation:
            cached = self._containers_all = (
                self.generation,
                b"".join([c.list_item() for c in self.containers.values()]),
            )
        return cached[1]

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
        meta = config.metadata
        if not config.HasField("metadata") or not meta.name:
            raise _invalid("sandbox config must include metadata with a name")
        name = f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"
        pod_id = self.new_id()
        self._reserve(name, pod_id)
        ip = ""
        if config.linux.security_context.namespace_options.network != pb.NODE:
            n = self._next_ip
            self._next_ip += 1
            ip = f"10.88.{(n >> 8) & 0xFF}.{n & 0xFF}"
        pod = Pod(
            id=pod_id,
            config=_copy(config),
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
                self._finish(container, self.stop_exit_code, _reason_for(self.stop_exit_code), "")
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
            raise _invalid("pod sandbox id must not be empty")
        pod = _resolve(self.pods, pod_id)
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

    # -- containers ----------------------------------------------------------------

    def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        # sandbox_config is accepted like the CRI's and ignored: the pod's own config rules
        pod = self.get_pod(pod_sandbox_id)
        if not config.HasField("metadata") or not config.metadata.name:
            raise _invalid("container config must include metadata with a name")
        if not config.image.image:
            raise _invalid("container config must include an image")
        if not pod.ready:
            raise _precondition(f'sandbox container "{pod.id}" is not running')
        image = self.find_image(config.image.image)
        if image is None:
            raise StatusError(
                grpc.StatusCode.NOT_FOUND,
                f'failed to resolve image "{config.image.image}": not found',
            )
        pmeta = pod.config.metadata
        name = (
            f"{config.metadata.name}_{pmeta.name}_{pmeta.namespace}_{pmeta.uid}"
            f"_{config.metadata.attempt}"
        )
        container_id = self.new_id()
        self._reserve(name, container_id)
        log_dir = pod.config.log_directory
        log_path = f"{log_dir.rstrip('/')}/{config.log_path}" if log_dir and config.log_path else ""
        container = Container(
            id=container_id,
            pod=pod,
            config=_copy(config),
            image=image,
            created_at=time.time_ns(),
            log_path=log_path,
        )
        self.containers[container_id] = container
        pod.containers[container_id] = container
        self._changed()
        self._emit(container_id, pod, pb.CONTAINER_CREATED_EVENT)
        return container_id

    def start_container(self, container_id: str) -> None:
        container = self.get_container(container_id)
        if container.state != pb.CONTAINER_CREATED:
            state = pb.ContainerState.Name(container.state)
            raise _precondition(f'container "{container.id}" is in {state} state')
        if not container.pod.ready:
            raise _precondition(f'sandbox container "{container.pod.id}" is not running')
        container.state = pb.CONTAINER_RUNNING
        container.started_at = time.time_ns()
        container.pid = self._next_pid
        self._next_pid += 1
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_STARTED_EVENT)

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        """Stops a running container; a created or exited one is left as is (containerd)."""
        if self._missing_stop_is_fine("container", container_id):
            return
        container = self.get_container(container_id)
        if container.running:
            code = self.stop_exit_code
            self._finish(container, code, _reason_for(code), "")

    def exit_container(
        self,
        container_id: str,
        exit_code: int = 1,
        reason: str | None = None,
        message: str = "",
    ) -> None:
        """Make a running container's process end by itself (crash, completion, OOM...)."""
        container = self.get_container(container_id)
        if not container.running:
            state = pb.ContainerState.Name(container.state)
            raise _precondition(f'container "{container.id}" is in {state} state')
        self._finish(container, exit_code, reason or _reason_for(exit_code), message)

    def write_output(self, container_id: str, data: bytes | str, stream: str = "stdout") -> None:
        """Make a running container print: the text goes to its log file (in the CRI
        format, when its pod's log directory exists) and to attached sessions."""
        container = self.get_container(container_id)
        if not container.running:
            raise _precondition(f'container "{container.id}" is not running')
        if stream not in ("stdout", "stderr"):
            raise ValueError("stream must be stdout or stderr")
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if container.log is None and container.log_path:
            container.log = CRILogFile.open(container.log_path)
        if container.log is not None:
            container.log.write(stream, raw)
        for listener in list(container.listeners):
            listener(stream, raw)

    def reopen_log(self, container_id: str) -> None:
        """ReopenContainerLog: close the log file and open its path again."""
        container = self.get_container(container_id)
        if not container.running:  # containerd's check and words
            raise StatusError(grpc.StatusCode.FAILED_PRECONDITION, "container is not running")
        if container.log is not None:
            container.log.close()
        container.log = CRILogFile.open(container.log_path) if container.log_path else None

    def _finish(self, container: Container, exit_code: int, reason: str, message: str) -> None:
        if container.log is not None:
            container.log.close()
            container.log = None
        ended, container.on_exit = container.on_exit, []
        for callback in ended:
            callback()
        container.state = pb.CONTAINER_EXITED
        container.finished_at = time.time_ns()
        container.exit_code = exit_code
        container.reason = reason
        container.message = message
        container.pid = 0
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_STOPPED_EVENT)

    def remove_container(self, container_id: str) -> bool:
        """Removes a container, stopping it first; an unknown id is fine (containerd)."""
        if not container_id:
            raise _invalid("container id must not be empty")
        container = _resolve(self.containers, container_id)
        if container is None:
            return False
        if container.running:
            self._finish(container, 137, "Error", "")  # forced: SIGKILL
        del self.containers[container.id]
        del container.pod.containers[container.id]
        self._release(container.id)
        self._changed(container)
        self._emit(container.id, container.pod, pb.CONTAINER_DELETED_EVENT)
        return True

    def update_container_resources(
        self, container_id: str, linux: pb.LinuxContainerResources | None
    ) -> None:
        container = self.get_container(container_id)
        if container.state not in (pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING):
            state = pb.ContainerState.Name(container.state)
            raise _precondition(f'container "{container.id}" is in {state} state')
        if linux is not None:
            container.resources = _copy(linux)
        self._changed(container)

    # -- images ----------------------------------------------------------------------

    def pull_image(self, ref: str) -> Image:
        if not ref:
            raise _invalid("image reference must not be empty")
        local = self.find_image(ref)
        if local is not None:
            return local
        image = self.registry.get(normalize_ref(ref))
        if image is None and self.pull_policy == "any" and ref.strip():
            image = self._add_to_registry(ref)
        if image is None:
            # What containerd says when the registry has no such image.
            raise StatusError(
                grpc.StatusCode.NOT_FOUND,
                f'failed to pull and unpack image "{normalize_ref(ref)}": failed to resolve '
                f'reference "{normalize_ref(ref)}": {normalize_ref(ref)}: not found',
            )
        self.images[image.id] = image
        self._changed()
        return image

    def remove_image(self, ref: str) -> bool:
        """Removes a local image; absent is fine (containerd answers OK)."""
        if not ref:
            raise _invalid("image reference must not be empty")
        image = self.find_image(ref)
        if image is None:
            return False
        del self.images[image.id]
        self._changed()
        return True

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
        by default ``/var/log/pods/...``, written only where that folder exists)."""
        uid = uid or _uuid(self.new_id())
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
            log_directory=log_directory or f"/var/log/pods/{namespace}_{name}_{uid}",
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
    ) -> str:
        """CreateContainer, then StartContainer unless ``start=False``; kubelet-like config."""
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

    def running_containers(self) -> Iterator[Container]:
        return (c for c in self.containers.values() if c.running)

    # -- verbose info ----------------------------------------------------------------

    def container_info(self, container: Container) -> dict[str, str]:
        info = {
            "sandboxID": container.pod.id,
            "pid": container.pid,
            "removing": False,
            "snapshotKey": container.id,
            "snapshotter": "overlayfs",
            "runtimeType": "io.containerd.runc.v2",
            "config": {
                "metadata": {"name": container.name, "attempt": container.config.metadata.attempt},
                "image": {"image": container.config.image.image},
                "command": list(container.config.command),
                "args": list(container.config.args),
                "labels": dict(container.config.labels),
            },
        }
        return {"info": json.dumps(info)}

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

    # -- names -------------------------------------------------------------------------

    def _reserve(self, name: str, owner: str) -> None:
        holder = self._names.get(name)
        if holder is not None:
            raise StatusError(
                grpc.StatusCode.ALREADY_EXISTS,
                f'failed to reserve name "{name}": name "{name}" is reserved for "{holder}"',
            )
        self._names[name] = owner
        self._name_of[owner] = name

    def _release(self, owner: str) -> None:
        name = self._name_of.pop(owner, None)
        if name is not None:
            self._names.pop(name, None)


_M = TypeVar("_M", pb.PodSandboxConfig, pb.ContainerConfig, pb.LinuxContainerResources)


def _copy(message: _M) -> _M:
    out = type(message)()
    out.CopyFrom(message)
    return out


def _uuid(hex64: str) -> str:
    h = hex64[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
