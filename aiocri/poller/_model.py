"""What the poller reports and keeps: event kinds, events, snapshots, ranks, counters."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiocri import api
from aiocri._lean import full

__all__ = ["EventKind", "Key", "LifecycleEvent", "PollerStats", "Snapshot", "is_removal", "key_of"]

class EventKind(enum.Enum):
    """What happened to a pod or a container."""

    POD_READY = "pod_ready"
    POD_NOT_READY = "pod_not_ready"
    POD_REMOVED = "pod_removed"
    CONTAINER_CREATED = "container_created"
    CONTAINER_STARTED = "container_started"
    CONTAINER_EXITED = "container_exited"
    CONTAINER_REMOVED = "container_removed"

    @property
    def is_pod(self) -> bool:
        return self in _POD_KINDS


_POD_KINDS = frozenset({EventKind.POD_READY, EventKind.POD_NOT_READY, EventKind.POD_REMOVED})


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One change of one pod or container.

    ``id`` is the container's id (container events) or the pod sandbox's id (pod
    events); ``pod_id`` the pod sandbox it belongs to (for a pod event, its own id).
    ``state`` is an ``api.ContainerState`` or ``api.PodSandboxState`` value: the state
    seen (for a removal, the last state known). ``exit_code`` is set for
    ``CONTAINER_EXITED`` when the runtime told it, and for ``CONTAINER_REMOVED``
    when the exit was seen before, else None. ``status`` is the
    ``ContainerStatus``/``PodSandboxStatus`` fetched for (or carried by) the change; None
    for removals, when the object was gone before it could be fetched, and on the
    first relist (see ``initial_statuses``). ``at`` is
    ``time.monotonic()`` when the poller saw the change.
    """

    kind: EventKind
    id: str
    pod_id: str
    exit_code: int | None
    state: int
    status: api.ContainerStatus | api.PodSandboxStatus | None
    at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the poller knows now: pods and containers by id (read-only views).

    Each message is built from the relist's lean entry the first time it is read
    from this snapshot, then kept (~3.5 us each: reading all of 10,000 containers
    costs ~35 ms once per snapshot; a lookup by id, ``len`` and ``in`` cost nothing
    extra). Read them, do not modify them.
    """

    pods: Mapping[str, api.PodSandbox]
    containers: Mapping[str, api.Container]
    #: False until the first relist is done.
    synced: bool

    def containers_of(self, pod_id: str) -> list[api.Container]:
        """The containers of one pod sandbox (a scan: O(containers))."""
        containers = self.containers
        if isinstance(containers, _FullView):  # scan the lean entries, build only these
            return containers.where(lambda c: c.pod_sandbox_id == pod_id)
        return [c for c in containers.values() if c.pod_sandbox_id == pod_id]


class _Listed(Protocol):
    """What the poller reads of a listed object: a lean list entry or a full message."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> int: ...
    @property
    def created_at(self) -> int: ...


class _ListedContainer(_Listed, Protocol):
    @property
    def pod_sandbox_id(self) -> str: ...


_M = TypeVar("_M", api.Container, api.PodSandbox)


class _FullView(Mapping[str, _M]):
    """A read-only view of the poller's objects by id as full messages.

    Relists keep lean entries (:mod:`aiocri._lean`); each is made a full message
    the first time this view is asked for it, then kept.
    """

    __slots__ = ("_cls", "_full", "_objects")

    def __init__(self, objects: Mapping[str, Any], cls: type[_M]) -> None:
        self._objects: Mapping[str, Any] = objects
        self._cls: type[_M] = cls
        self._full: dict[str, _M] = {}

    def __getitem__(self, key: str) -> _M:
        message = self._full.get(key)
        if message is None:
            message = self._full[key] = full(self._objects[key], self._cls)
        return message

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[str]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def where(self, keep: Callable[[Any], bool]) -> list[_M]:
        return [self[k] for k, obj in self._objects.items() if keep(obj)]


@dataclass
class PollerStats:
    """Counters a user can read (``poller.stats``)."""

    #: How the poller watches now: "starting", "relist" or "events".
    mode: str = "starting"
    relists: int = 0
    #: Wall time of the last relist (lists, diff and status fetches), seconds.
    last_relist_duration: float = 0.0
    last_relist_at: float | None = None
    events_emitted: int = 0
    #: Messages received on GetContainerEvents.
    runtime_events: int = 0
    status_fetches: int = 0
    #: Times GetContainerEvents was opened.
    stream_opens: int = 0
    #: Runtime events dropped because they piled up faster than applied (a relist follows).
    discarded: int = 0
    #: Events merged into a newer one of the same object, over every consumer.
    coalesced: int = 0
    #: Events past a consumer's max_pending, replaced by the object's latest state
    #: looked up in its turn, over every consumer.
    dropped_to_latest: int = 0
    #: The RPCs the last relist used ("StreamContainers" or "ListContainers", ...).
    container_list: str = ""
    pod_list: str = ""
    #: Transient errors by class name (retried).
    errors: Counter[str] = field(default_factory=Counter)


class _Retry:
    """Status fetch failed transiently: leave the object unchanged and retry next relist."""


_RETRY = _Retry()

_CREATED = api.CONTAINER_CREATED
_RUNNING = api.CONTAINER_RUNNING
_EXITED = api.CONTAINER_EXITED
_READY = api.SANDBOX_READY

# Container progress, reported at most once per step.
_RANK_CREATED, _RANK_STARTED, _RANK_EXITED = 1, 2, 3
_STATE_RANK: dict[int, int] = {_CREATED: 1, _RUNNING: 2, _EXITED: 3}  # UNKNOWN: exists (1)
#: How long a removed id is remembered (late events about it are ignored).
_TOMBSTONE_TTL = 60.0
_RANK_KIND = {
    _RANK_CREATED: EventKind.CONTAINER_CREATED,
    _RANK_STARTED: EventKind.CONTAINER_STARTED,
    _RANK_EXITED: EventKind.CONTAINER_EXITED,
}
_EVENT_RANK: dict[int, int] = {
    api.CONTAINER_CREATED_EVENT: _RANK_CREATED,
    api.CONTAINER_STARTED_EVENT: _RANK_STARTED,
    api.CONTAINER_STOPPED_EVENT: _RANK_EXITED,
}


def _steps(reported: int, target: int) -> tuple[EventKind, ...]:
    """The container event (if any) that takes it from ``reported`` to ``target``.

    Only the step seen is reported: steps missed in between are not invented.
    """
    if target <= reported:
        return ()
    return (_RANK_KIND[target],)


def _pod_rank(state: int) -> int:
    """Pods go forward too: ready (1), then not ready (2)."""
    return 1 if state == _READY else 2


_Obj = TypeVar("_Obj", bound=_Listed)
#: An object's key in queues and tables: its id (the runtime gives pods and containers
#: ids from one space: containerd's sandboxes are containers too).
Key = str


def key_of(event: LifecycleEvent) -> Key:
    return event.id


_REMOVALS = frozenset({EventKind.POD_REMOVED, EventKind.CONTAINER_REMOVED})


def is_removal(event: LifecycleEvent) -> bool:
    return event.kind in _REMOVALS




def runtime_time(event: LifecycleEvent) -> float | None:
    """The runtime's own time of the change (Unix seconds), when its status tells it:
    a container's creation, start or finish, a pod's creation; else None."""
    status = event.status
    if status is None:
        return None
    kind = event.kind
    if kind is EventKind.CONTAINER_STARTED:
        nanos = getattr(status, "started_at", 0)
    elif kind is EventKind.CONTAINER_EXITED:
        nanos = getattr(status, "finished_at", 0)
    elif kind in (EventKind.CONTAINER_CREATED, EventKind.POD_READY):
        nanos = status.created_at
    else:
        return None
    return nanos / 1e9 if nanos > 0 else None
