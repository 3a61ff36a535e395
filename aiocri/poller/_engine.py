"""The poller's engine: observations in, lifecycle events out. No I/O, no clock.

It keeps what is known of the runtime (pods and containers by id, as lean list
entries or full messages), what was reported of each, and removed ids for a while;
it turns a relist (fed chunk by chunk), a GetContainerEvents message or a status
into :class:`LifecycleEvent` s, handed to ``emit`` in order. The I/O loop
(:mod:`aiocri.poller._loop`) fetches; the engine decides.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic

from aiocri import api
from aiocri.poller._model import (
    _EVENT_RANK,
    _EXITED,
    _RANK_CREATED,
    _READY,
    _STATE_RANK,
    _TOMBSTONE_TTL,
    EventKind,
    Key,
    LifecycleEvent,
    Snapshot,
    _FullView,
    _Listed,
    _ListedContainer,
    _Obj,
    _pod_rank,
    _Retry,
    _steps,
    is_removal,
    key_of,
)

__all__ = ["Engine", "Relist", "StatusAnswer", "deferred_containers"]

#: What a status fetch gave: the status, None (the object is gone), or _Retry (failed).
StatusAnswer = Any


class _Diff(Generic[_Obj]):
    """A new listing against the old view by id, fed chunk by chunk.

    The hot path (``add``): per object one id read, two integer fields compared,
    two dict operations; no object is built.
    """

    __slots__ = ("added", "changed", "new", "old")

    def __init__(self, old: Mapping[str, _Obj]) -> None:
        self.old: Mapping[str, _Obj] = old
        self.new: dict[str, _Obj] = {}
        self.changed: dict[str, _Obj] = {}
        self.added = 0  # distinct ids not in the old view

    def add(self, items: Iterable[_Obj]) -> None:
        old, new, changed = self.old, self.new, self.changed
        added = 0
        for obj in items:
            oid = obj.id
            prev = old.get(oid)
            if prev is None:
                if oid not in new:
                    added += 1
                changed[oid] = obj
            elif prev.state != obj.state or prev.created_at != obj.created_at:
                changed[oid] = obj
            new[oid] = obj
        self.added += added

    def result(self) -> tuple[dict[str, _Obj], list[_Obj], list[_Obj]]:
        """The new view by id, the objects new or changed, the objects gone."""
        old, new = self.old, self.new
        changed = list(self.changed.values())
        # Every old id listed again <=> the new view holds as many old ids as the old one.
        if len(new) - self.added == len(old):
            return new, changed, []
        # The gone ids by a set operation, reported oldest first.
        gone = [old[oid] for oid in old.keys() - new.keys()]
        gone.sort(key=_by_age)
        return new, changed, gone


def _by_age(obj: _Listed) -> tuple[int, str]:
    return obj.created_at, obj.id


class Relist:
    """One relist in progress: feed it the listed chunks, then ask what to fetch."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.pods: _Diff[_Listed] = _Diff(engine.pods)
        self.containers: _Diff[_ListedContainer] = _Diff(engine.containers)
        self._result: Any = None
        #: Containers left out of this relist until their pod is listed (see :meth:`plan`).
        self.waiting: list[str] = []

    def plan(self) -> tuple[list[str], list[str]]:
        """The pod and container ids whose statuses the events need."""
        engine = self._engine
        pods, pods_changed, pods_removed = self.pods.result()
        containers, changed, removed = self.containers.result()
        pod_reported, reported = engine._pod_reported, engine._reported
        pods_to_report = [p for p in pods_changed if _pod_rank(p.state) > pod_reported.get(p.id, 0)]
        to_report = []
        # A container whose pod is neither told nor listed now (made between the two
        # lists) waits for a relist that lists its pod: pods come before their containers.
        self.waiting = [c.id for c in changed
                        if c.pod_sandbox_id not in pod_reported and c.pod_sandbox_id not in pods]
        waiting = set(self.waiting)
        for c in changed:
            steps = _steps(reported.get(c.id, 0), _STATE_RANK.get(c.state, _RANK_CREATED))
            if steps and c.id not in waiting:
                to_report.append((c, steps))
        self._result = (pods, pods_removed, containers, removed, pods_to_report, to_report)
        # On the first relist only exit codes are worth a call per object.
        every = engine.synced or engine.initial_statuses
        return ([p.id for p in pods_to_report] if every else [],
                [c.id for c, steps in to_report
                 if every or steps[-1] is EventKind.CONTAINER_EXITED])


class Engine:
    """See the module docstring. ``emit`` receives every event, in order."""

    def __init__(self, emit: Callable[[LifecycleEvent], None], *,
                 initial_statuses: bool = False) -> None:
        self._emit_to = emit
        self.initial_statuses = initial_statuses
        # Copy-on-write: a published snapshot shares these dicts.
        self.pods: dict[str, _Listed] = {}
        self.containers: dict[str, _ListedContainer] = {}
        self._shared = False
        self._snapshot: Snapshot | None = None
        self.synced = False
        # What was reported, as ranks: pods 1 ready, 2 not ready; containers see _steps.
        self._pod_reported: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        #: The latest event of every object that still exists (what a new consumer
        #: is told first), by key.
        self.last: dict[Key, LifecycleEvent] = {}
        # Ids removed lately -> when: late events about them must not bring them back.
        self.tombstones: OrderedDict[str, float] = OrderedDict()
        self.emitted = 0

    # -- what is known --------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            snap = self._snapshot = Snapshot(
                pods=_FullView(self.pods, api.PodSandbox),
                containers=_FullView(self.containers, api.Container),
                synced=self.synced,
            )
            self._shared = True
        return snap

    def _mutable(self) -> tuple[dict[str, _Listed], dict[str, _ListedContainer]]:
        if self._shared:
            self.pods = dict(self.pods)
            self.containers = dict(self.containers)
            self._shared = False
        self._snapshot = None
        return self.pods, self.containers

    def _emit(self, event: LifecycleEvent) -> None:
        self.emitted += 1
        key = key_of(event)
        if is_removal(event):
            self.last.pop(key, None)
        else:
            self.last[key] = event
        self._emit_to(event)

    # -- relists ----------------------------------------------------------------------

    def relist(self) -> Relist:
        return Relist(self)

    def apply_relist(self, relist: Relist, pod_status: Mapping[str, StatusAnswer],
                     container_status: Mapping[str, StatusAnswer], now: float) -> None:
        """Take the relist's view and emit its events (after :meth:`Relist.plan`).

        Objects whose status fetch failed (_Retry) keep their old view, so the
        next relist sees them changed again and retries.
        """
        pods, pods_removed, containers, removed, pods_to_report, to_report = relist._result
        pods_failed = [i for i, s in pod_status.items() if isinstance(s, _Retry)]
        untold = {i for i in pods_failed if i not in self._pod_reported}
        to_report, deferred = deferred_containers(to_report, container_status, untold)
        _revert(pods_failed, pods, self.pods)
        _revert(deferred + relist.waiting, containers, self.containers)
        self.pods, self.containers = pods, containers
        self._shared = False
        self._snapshot = None
        # Order: pods told for the first time or ready again, containers, pods that
        # stopped, then removals (containers first): parents appear before their
        # children and go after them.
        stopped = self._report_pods(pods_to_report, pod_status, now)
        self._report_containers(to_report, container_status, now)
        for p, ps in stopped:
            self._pod_event(p, ps, now)
        for c in removed:
            self.tombstones[c.id] = now
            self._report_container_gone(c, now)
        for p in pods_removed:
            self.tombstones[p.id] = now
            if self._pod_reported.pop(p.id, None) is not None:
                self._pod_event(p, None, now, removed=True)
        self.purge_tombstones(now)
        self.synced = True

    def _report_pods(self, pods: list[_Listed], statuses: Mapping[str, StatusAnswer],
                     now: float) -> list[tuple[_Listed, Any]]:
        stopped = []
        for p in pods:
            ps = statuses.get(p.id)
            if isinstance(ps, _Retry):
                continue
            first = p.id not in self._pod_reported
            self._pod_reported[_name(p.id)] = _pod_rank(p.state)
            if p.state == _READY or first:
                self._pod_event(p, ps, now)
            else:
                stopped.append((p, ps))
        return stopped

    def _report_containers(self, to_report: list[tuple[_ListedContainer, tuple[EventKind, ...]]],
                           statuses: Mapping[str, StatusAnswer], now: float) -> None:
        reported = self._reported
        for c, steps in to_report:
            cs = statuses.get(c.id)
            cid = c.id  # one string for the table and the events
            reported[cid] = max(reported.get(cid, 0), _STATE_RANK.get(c.state, _RANK_CREATED))
            for kind in steps:
                self._container_event(kind, c, cs, now, cid)

    def purge_tombstones(self, now: float) -> None:
        tombstones = self.tombstones
        while tombstones and next(iter(tombstones.values())) < now - _TOMBSTONE_TTL:
            tombstones.popitem(last=False)

    # -- the event stream ---------------------------------------------------------------

    def status_needed(self, event: api.ContainerEventResponse) -> bool:
        """Whether applying ``event`` needs a ContainerStatus fetched first."""
        cid = event.container_id
        if not cid or cid in self.tombstones or (
                event.container_event_type == api.CONTAINER_DELETED_EVENT):
            return False  # (an event without an id names nothing to fetch)
        sandbox = event.pod_sandbox_status if event.HasField("pod_sandbox_status") else None
        if sandbox is not None and sandbox.id == cid:
            return False
        return not any(s.id == cid for s in event.containers_statuses)

    def apply_event(self, event: api.ContainerEventResponse, now: float,
                    fetched: StatusAnswer = None) -> bool:
        """Apply one GetContainerEvents message; emit what it changed.

        ``fetched``: the status :meth:`status_needed` asked for. Returns True when a
        relist is needed (the fetch failed). Events may be older than what a relist
        saw: states only move forward and removed ids stay removed.
        """
        cid = event.container_id
        if not cid:
            return False  # malformed: nothing to apply it to
        if cid in self.tombstones or self._apply_sandbox_part(event, now):
            return False
        if event.container_event_type == api.CONTAINER_DELETED_EVENT:
            self._remove_container(cid, now)
            return False
        status = next((s for s in event.containers_statuses if s.id == cid), None)
        if status is None:
            if isinstance(fetched, _Retry):
                return True
            if fetched is None:  # gone already; its DELETED event follows
                return False
            status = fetched
        self._container_from_event(event, status, _sandbox_of(event), now)
        return False

    def _apply_sandbox_part(self, event: api.ContainerEventResponse, now: float) -> bool:
        """The event's news about its pod sandbox; True if the event was the sandbox's own."""
        cid = event.container_id
        sandbox = _sandbox_of(event)
        if event.container_event_type == api.CONTAINER_DELETED_EVENT and (
                cid in self.pods or (sandbox is not None and cid == sandbox.id)):
            self._remove_pod(cid, now)  # containerd sends no sandbox status with that one
            return True
        if sandbox is None:
            return False
        self._upsert_pod(sandbox, now)
        return cid == sandbox.id

    def _container_from_event(self, event: api.ContainerEventResponse,
                              status: api.ContainerStatus,
                              sandbox: api.PodSandboxStatus | None, now: float) -> None:
        cid = event.container_id
        old = self.containers.get(cid)
        if old is not None and _STATE_RANK.get(old.state, 0) > _STATE_RANK.get(status.state, 9):
            container: _ListedContainer = old  # a late event: what we have is newer
        else:
            pod_id = sandbox.id if sandbox is not None else (old.pod_sandbox_id if old else "")
            container = _container_from_status(status, pod_id)
            _, containers = self._mutable()
            containers[cid] = container
        target = _EVENT_RANK.get(event.container_event_type, _RANK_CREATED)
        steps = _steps(self._reported.get(cid, 0), target)
        if steps:
            self._reported[cid] = target
            for step in steps:
                self._container_event(step, container, status, now, cid)

    def _upsert_pod(self, status: api.PodSandboxStatus, now: float) -> None:
        pid = status.id
        if pid in self.tombstones:
            return
        old = self.pods.get(pid)
        rank = _pod_rank(status.state)
        if old is not None and _pod_rank(old.state) >= rank:
            return  # nothing newer (a container's event carries its pod's status then)
        pods, _ = self._mutable()
        pod = pods[pid] = _pod_from_status(status)
        if rank > self._pod_reported.get(pid, 0):
            self._pod_reported[_name(pid)] = rank
            self._pod_event(pod, status, now)

    def _remove_container(self, cid: str, now: float) -> None:
        self.tombstones[cid] = now
        if cid in self.containers:
            _, containers = self._mutable()
            self._report_container_gone(containers.pop(cid), now)
        else:
            self._reported.pop(cid, None)

    def _remove_pod(self, pid: str, now: float) -> None:
        # The runtime removes a sandbox's containers with it (RemovePodSandbox).
        for c in [c for c in self.containers.values() if c.pod_sandbox_id == pid]:
            self._remove_container(c.id, now)
        self.tombstones[pid] = now
        self.purge_tombstones(now)
        if pid in self.pods:
            pods, _ = self._mutable()
            pod = pods.pop(pid)
            if self._pod_reported.pop(pid, None) is not None:
                self._pod_event(pod, None, now, removed=True)

    # -- events -------------------------------------------------------------------------

    def _report_container_gone(self, c: _ListedContainer, now: float) -> None:
        if self._reported.pop(c.id, 0) == 0:
            return
        # The exit code seen, if any, goes with the removal: a slow consumer whose
        # EXITED event was merged into it still learns it.
        last = self.last.get(c.id)
        exit_code = last.exit_code if last is not None else None
        self._emit(LifecycleEvent(EventKind.CONTAINER_REMOVED, c.id, _name(c.pod_sandbox_id),
                                  exit_code,
                                  c.state, None, now))

    def _container_event(self, kind: EventKind, container: _ListedContainer,
                         status: api.ContainerStatus | None, now: float, cid: str) -> None:
        exit_code = None
        state: int = container.state
        if status is not None:
            state = status.state
            if kind is EventKind.CONTAINER_EXITED and status.state == _EXITED:
                exit_code = status.exit_code
        self._emit(LifecycleEvent(kind, cid, _name(container.pod_sandbox_id), exit_code,
                                  state, status, now))

    def _pod_event(self, pod: _Listed, status: api.PodSandboxStatus | None, now: float,
                   *, removed: bool = False) -> None:
        state: int = pod.state if status is None else status.state
        if removed:
            kind = EventKind.POD_REMOVED
        else:
            kind = EventKind.POD_READY if state == _READY else EventKind.POD_NOT_READY
        pid = _name(pod.id)
        self._emit(LifecycleEvent(kind, pid, pid, None, state, status, now))


def _name(pod_id: str) -> str:
    """One string object per pod id, shared by its containers' events (reading an id
    from a message makes a new string every time)."""
    return sys.intern(pod_id)


def _sandbox_of(event: api.ContainerEventResponse) -> api.PodSandboxStatus | None:
    if event.HasField("pod_sandbox_status") and event.pod_sandbox_status.id:
        return event.pod_sandbox_status
    return None


def deferred_containers(
    to_report: list[tuple[_ListedContainer, tuple[EventKind, ...]]],
    statuses: Mapping[str, StatusAnswer], untold_pods: set[str],
) -> tuple[list[tuple[_ListedContainer, tuple[EventKind, ...]]], list[str]]:
    """Split the containers to report into those reported now and the ids retried at
    the next relist: their status fetch failed, or their pod is in ``untold_pods``
    (not told yet, its status fetch failed: they wait for it to be told first)."""
    now, later = [], []
    for item in to_report:
        c = item[0]
        if isinstance(statuses.get(c.id), _Retry) or c.pod_sandbox_id in untold_pods:
            later.append(c.id)
        else:
            now.append(item)
    return now, later


def _revert(ids: list[str], new: dict[str, _Obj], old: Mapping[str, _Obj]) -> None:
    for i in ids:
        previous = old.get(i)
        if previous is None:
            new.pop(i, None)
        else:
            new[i] = previous


def _container_from_status(status: api.ContainerStatus, pod_id: str) -> api.Container:
    return api.Container(
        id=status.id,
        pod_sandbox_id=pod_id,
        metadata=status.metadata,
        image=status.image,
        image_ref=status.image_ref,
        state=status.state,
        created_at=status.created_at,
        labels=status.labels,
        annotations=status.annotations,
        image_id=status.image_id,
    )


def _pod_from_status(status: api.PodSandboxStatus) -> api.PodSandbox:
    return api.PodSandbox(
        id=status.id,
        metadata=status.metadata,
        state=status.state,
        created_at=status.created_at,
        labels=status.labels,
        annotations=status.annotations,
        runtime_handler=status.runtime_handler,
    )
