"""The fake runtime's objects: images, pods and containers, and the errors it raises.

Plain data: the operations that change them live in the area modules (``_images``,
``_containers``, ``_pods``), which keep caches and events honest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._logfile import CRILogFile

if TYPE_CHECKING:
    from aiocri.testing._workload import Process

__all__ = [
    "DEFAULT_IMAGES",
    "IMAGE_FS",
    "PAUSE_IMAGE",
    "Container",
    "Image",
    "Pod",
    "Populated",
    "StatusError",
    "copy_message",
    "digest",
    "frame",
    "invalid",
    "labels_match",
    "normalize_ref",
    "not_found",
    "precondition",
    "reason_for",
    "resolve",
    "split_ref",
    "unknown",
    "user_refusal",
    "uuid_of",
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


class StatusError(Exception):
    """A CRI error with its gRPC status code; the server turns it into the call's status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def not_found(kind: str, ident: str) -> StatusError:
    # containerd's wording, so clients that match on it see the real thing.
    return StatusError(
        grpc.StatusCode.NOT_FOUND, f'an error occurred when try to find {kind} "{ident}": not found'
    )


def invalid(details: str) -> StatusError:
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, details)


def unknown(details: str) -> StatusError:
    """UNKNOWN: how containerd answers most refusals (its errors carry no gRPC code)."""
    return StatusError(grpc.StatusCode.UNKNOWN, details)


def user_refusal(security: pb.LinuxContainerSecurityContext | pb.LinuxSandboxSecurityContext,
                 what: str) -> str:
    """containerd's words when a group is given without a user; "" when fine."""
    named = isinstance(security, pb.LinuxContainerSecurityContext) and security.run_as_username
    if not security.HasField("run_as_group") or security.HasField("run_as_user") or named:
        return ""
    return (f"{what}: failed to generate user string: user group "
            f'"{security.run_as_group.value}" is specified without user')


def precondition(details: str) -> StatusError:
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


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reason_for(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def split_ref(ref: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of a normalised reference; tag or digest may be empty."""
    name, _, by_digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], by_digest
    return name, "", by_digest


@dataclass(slots=True, eq=False)
class Image:
    """One image. ``id`` is ``sha256:<hex>`` like containerd's image ids.

    The same content under several names is one image: its id, size and user come
    from the content, and every name it was pulled or tagged under is in
    ``repo_tags`` / ``repo_digests``. Made from a reference, the content is named by
    the last path element and tag (``busybox:1.36`` from any registry) or by the
    digest of a digest reference.
    """

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    pinned: bool = False
    #: The image config's User ("1000", "nginx", "65535:65535"); "" when unset.
    user: str = ""

    @classmethod
    def from_ref(cls, ref: str, *, size: int | None = None, user: str | None = None) -> Image:
        full = normalize_ref(ref)
        repo, tag, by_digest = split_ref(full)
        content = by_digest or f"{repo.rsplit('/', 1)[-1]}:{tag}"
        if size is None:  # stable, plausible sizes: pause is tiny, others 2-200 MB
            size = (
                320_000
                if full == PAUSE_IMAGE
                else 2_000_000 + int(digest(content)[:8], 16) % 198_000_000
            )
        manifest = by_digest or f"sha256:{digest('manifest:' + content)}"
        return cls(
            id=f"sha256:{digest('image:' + content)}",
            repo_tags=[f"{repo}:{tag}"] if tag and not by_digest else [],
            repo_digests=[f"{repo}@{manifest}"],
            size=size,
            pinned=full == PAUSE_IMAGE,
            # the pause image runs as 65535, as registry.k8s.io/pause does
            user=user if user is not None else ("65535:65535" if full == PAUSE_IMAGE else ""),
        )

    def named(self, ref: str) -> Image:
        """A copy of this content known locally under ``ref`` only."""
        repo, tag, by_digest = split_ref(normalize_ref(ref))
        if by_digest:
            manifest = by_digest
        else:
            manifest = self.repo_digests[0].partition("@")[2] if self.repo_digests else ""
        return Image(
            id=self.id,
            repo_tags=[f"{repo}:{tag}"] if tag and not by_digest else [],
            repo_digests=[f"{repo}@{manifest}"] if manifest else [],
            size=self.size,
            pinned=self.pinned,
            user=self.user,
        )

    def merge(self, other: Image) -> None:
        """Add ``other``'s names (same content) to this image's."""
        for tag in other.repo_tags:
            if tag not in self.repo_tags:
                self.repo_tags.append(tag)
        for ref in other.repo_digests:
            if ref not in self.repo_digests:
                self.repo_digests.append(ref)

    def to_proto(self) -> pb.Image:
        image = pb.Image(
            id=self.id,
            repo_tags=self.repo_tags,
            repo_digests=self.repo_digests,
            size=self.size,
            pinned=self.pinned,
        )
        # containerd's rule: a numeric user is a uid, anything else a name
        name = self.user.split(":", 1)[0]
        if name.isdigit():
            image.uid.value = int(name)
        elif name:
            image.username = name
        return image

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
    #: its command, files and stdin, from StartContainer on
    process: Process | None = None

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
            # containerd 1.7 fills neither image.user_specified_image nor image_id
            image=pb.ImageSpec(image=given.image, annotations=given.annotations),
            image_ref=self.image.id,
            state=self.state,
            created_at=self.created_at,
            labels=self.config.labels,
            annotations=self.config.annotations,
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
            image=pb.ImageSpec(image=self.image.name),
            image_ref=self.image.repo_digests[0] if self.image.repo_digests else self.image.id,
            reason=self.reason,
            message=self.message,
            labels=self.config.labels,
            annotations=self.config.annotations,
            mounts=self.config.mounts,
            log_path=self.log_path,
            stop_signal=self.config.stop_signal,
        )
        resources = self.resources or (
            self.config.linux.resources if self.config.linux.HasField("resources") else None
        )
        # containerd always answers a resources field, empty when nothing was set
        status.resources.linux.CopyFrom(resources or pb.LinuxContainerResources())
        return status


class Populated(NamedTuple):
    """What :meth:`FakeState.populate` made."""

    pod_ids: list[str]
    container_ids: list[str]


_K = TypeVar("_K", Pod, Container)


def resolve(table: Mapping[str, _K], ident: str) -> _K | None:
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


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == want for key, want in selector.items())

_M = TypeVar("_M", pb.PodSandboxConfig, pb.ContainerConfig, pb.LinuxContainerResources)


def copy_message(message: _M) -> _M:
    out = type(message)()
    out.CopyFrom(message)
    return out


def uuid_of(hex64: str) -> str:
    h = hex64[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
