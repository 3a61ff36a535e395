"""What every area of the fake runtime shares: the tables, ids, names and events.

``SharedState`` is the one place that holds the fake's data; the area modules
(``_images``, ``_containers``, ``_pods``) add operations on top of it, each
in its own class, and :class:`~aiocri.testing.FakeState` stacks them. Likewise
``ServicerBase`` holds what the RPC groups share.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import Message

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._exec import ExecHandler, default_exec_handler
from aiocri.testing._model import (
    Container,
    Image,
    Pod,
    StatusError,
    resolve,
)

if TYPE_CHECKING:
    from aiocri.testing._state import FakeState
    from aiocri.testing._streaming import StreamingServer

__all__ = [
    "COMPAT_CHOICES",
    "STREAMING_ADDRESS",
    "Response",
    "ServicerBase",
    "SharedState",
    "chunks",
    "copy_request",
]

#: A message, or bytes that already are the serialized response.
Response = Message | bytes
_R = TypeVar("_R", bound=Message)

#: The containerd releases the fake can answer as (``FakeState.compat``).
COMPAT_CHOICES = ("1.7", "1.6")
_EVENT_QUEUE_SIZE = 10_000  # containerd buffers 1000 and drops the rest; be roomier
STREAMING_ADDRESS = "127.0.0.1:10010"  # nothing listens there: the URLs are only handed out


_LOG_ROOT_PREFIX = "aiocri-fake-logs-"  # then the owner's pid: a killed owner's is swept


def _sweep_dead_log_roots(parent: str) -> None:
    """Remove the log folders of fake runtimes whose process died without cleaning up
    (SIGKILL): in /dev/shm they would hold memory until the machine restarts."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name.removeprefix(_LOG_ROOT_PREFIX).split("-", 1)[0]
        if name.startswith(_LOG_ROOT_PREFIX) and pid.isdigit() \
                and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


class SharedState:
    """The fake's tables and the bookkeeping every change goes through."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None
        self.pods: dict[str, Pod] = {}
        self.containers: dict[str, Container] = {}
        #: Local images by id.
        self.images: dict[str, Image] = {}
        #: What PullImage can fetch, by normalised reference (local images included).
        self.registry: dict[str, Image] = {}
        #: Bumped on every change; the whole-list caches are keyed on it.
        self.generation = 0
        self.pod_cidr = ""
        self.runtime_ready = True
        self.network_ready = True
        #: Exit code that StopContainer and StopPodSandbox leave behind; None: as a real
        #: runtime, 128 + the signal that ended the process (143 for SIGTERM).
        self.stop_exit_code: int | None = None
        #: How long a PullImage of an image not yet local takes (a pull whose deadline
        #: comes first fails and leaves nothing behind).
        self.pull_seconds = 0.0
        #: PullImage of a reference the registry does not know: "registry" answers
        #: NOT_FOUND (as a real registry would); "any" makes the image, as if it existed.
        self.pull_policy: str = "registry"
        #: StopContainer / StopPodSandbox of an id that does not exist: "ok" succeeds (the
        #: CRI's idempotence rule; containerd 1.7 and 2.x), "not-found" answers NOT_FOUND
        #: (containerd 1.6).
        self.stop_missing: str = "ok"
        self._compat = "1.7"
        #: CheckpointContainer / CheckpointPod results, by location.
        self.container_checkpoints: dict[str, pb.ContainerStatus] = {}
        self.pod_checkpoints: dict[str, tuple[pb.PodSandboxConfig, list[pb.ContainerConfig]]] = {}
        #: Events that a full subscriber queue could not take.
        self.events_dropped = 0
        self._log_root: str | None = None
        self._names: dict[str, str] = {}  # reserved name -> owner id
        self._name_of: dict[str, str] = {}  # owner id -> reserved name
        self._subscribers: set[asyncio.Queue[pb.ContainerEventResponse]] = set()
        self._containers_all: tuple[int, bytes] | None = None
        self._pods_all: tuple[int, bytes] | None = None
        self._next_ip = 2
        self._next_pid = 1000
        self._populate_seq = 0

    @property
    def compat(self) -> str:
        """Which containerd the fake answers as where releases differ: ``"1.7"`` (the
        default) or ``"1.6"`` (NOT_FOUND for stops of unknown ids, no
        GetContainerEvents, nothing pinned, ...: the Testing page lists each)."""
        return self._compat

    @compat.setter
    def compat(self, value: str) -> None:
        if value not in COMPAT_CHOICES:
            raise ValueError(f"compat must be one of {', '.join(COMPAT_CHOICES)}, not {value!r}")
        self._compat = value
        self.stop_missing = "not-found" if value == "1.6" else "ok"

    @property
    def log_root(self) -> str:
        """The folder under which :meth:`~aiocri.testing.FakeState.add_pod` and
        ``populate`` put pods' log folders: by default one of this state's own, made
        at first use and removed with the state. Assign a path to use another."""
        if self._log_root is None:
            # in memory where there is /dev/shm: populate() makes a file per container
            shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            _sweep_dead_log_roots(shm or tempfile.gettempdir())
            self._log_root = tempfile.mkdtemp(prefix=f"{_LOG_ROOT_PREFIX}{os.getpid()}-", dir=shm)
            weakref.finalize(self, shutil.rmtree, self._log_root, True)
        return self._log_root

    @log_root.setter
    def log_root(self, path: str) -> None:
        self._log_root = path

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
            return resolve(self.pods, ident) is None
        return resolve(self.containers, ident) is None

    def get_pod(self, pod_id: str, words: str = 'an error occurred when try to find sandbox "{}"'
                ) -> Pod:
        """The pod ``pod_id`` names (a unique prefix will do). ``words`` are what the
        RPC at hand says, as containerd's answers differ from one RPC to the next."""
        pod = resolve(self.pods, pod_id)
        if pod is None:
            raise self._lookup_failed(words, pod_id)
        return pod

    def get_container(self, container_id: str,
                      words: str = 'an error occurred when try to find container "{}"'
                      ) -> Container:
        """The container ``container_id`` names (a unique prefix will do); see get_pod."""
        container = resolve(self.containers, container_id)
        if container is None:
            raise self._lookup_failed(words, container_id)
        return container

    def _lookup_failed(self, words: str, ident: str) -> StatusError:
        text = words.format(ident)
        if not ident:  # containerd's id index refuses an empty prefix, as UNKNOWN
            prefix = "Prefix" if self._compat == "1.6" else "prefix"
            return StatusError(grpc.StatusCode.UNKNOWN, f"{text}: {prefix} can't be empty")
        return StatusError(grpc.StatusCode.NOT_FOUND, f"{text}: not found")

    # -- names ----------------------------------------------------------------------

    def _reserve(self, name: str, owner: str, kind: str) -> None:
        holder = self._names.get(name)
        if holder is not None:
            raise StatusError(  # UNKNOWN, as containerd answers it
                grpc.StatusCode.UNKNOWN,
                f'failed to reserve {kind} name "{name}": name "{name}" is reserved for '
                f'"{holder}"',
            )
        self._names[name] = owner
        self._name_of[owner] = name

    def _release(self, owner: str) -> None:
        name = self._name_of.pop(owner, None)
        if name is not None:
            self._names.pop(name, None)


class ServicerBase:
    """What the RPC groups share: the state they serve and the list-answer cache."""

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

    def _running(self, container_id: str,
                 words: str = 'an error occurred when try to find container "{}"',
                 prefix: str = "") -> Container:
        """A running container, else containerd's UNKNOWN "container is in ... state"."""
        container = self.state.get_container(container_id, words)
        if not container.running:
            state = pb.ContainerState.Name(container.state)
            raise StatusError(grpc.StatusCode.UNKNOWN,
                              f"{prefix}container is in {state} state")
        return container

    def _ready_pod(self, pod_id: str, words: str = 'failed to find sandbox "{}"') -> Pod:
        pod = self.state.get_pod(pod_id, words)
        if not pod.ready:
            raise StatusError(grpc.StatusCode.UNKNOWN, "sandbox container is not running")
        return pod

    def _url(self, kind: str, request: object) -> str:
        if self.streaming is None:
            return f"http://{STREAMING_ADDRESS}/{kind}/{secrets.token_urlsafe(6)}"
        return self.streaming.url(kind, request)

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


def chunks(items: Sequence[bytes], size: int) -> Iterable[bytes]:
    """``items`` joined ``size`` at a time: the messages of a Stream* answer."""
    for start in range(0, len(items), size):
        yield b"".join(items[start : start + size])


def copy_request(message: _R) -> _R:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy
