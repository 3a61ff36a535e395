"""The poller's engine and consumer queues, without I/O: exhaustive cases and a
property-based test over random runtime histories and random consumer speeds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiocri import api
from aiocri.poller import Consumer, Engine, EventKind, LifecycleEvent
from aiocri.poller._model import _RETRY, key_of

K = EventKind
CREATED, RUNNING, EXITED = api.CONTAINER_CREATED, api.CONTAINER_RUNNING, api.CONTAINER_EXITED
READY, NOTREADY = api.SANDBOX_READY, api.SANDBOX_NOTREADY
RANK = {K.CONTAINER_CREATED: 1, K.CONTAINER_STARTED: 2, K.CONTAINER_EXITED: 3,
        K.CONTAINER_REMOVED: 4, K.POD_READY: 1, K.POD_NOT_READY: 2, K.POD_REMOVED: 3}


@dataclass
class Node:
    """The truth: what the runtime holds now."""

    pods: dict[str, int] = field(default_factory=dict)  # id -> state
    containers: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # pod, state, code
    made: int = 0

    def listing(self) -> tuple[list[api.PodSandbox], list[api.Container]]:
        pods = [api.PodSandbox(id=p, state=s, created_at=1) for p, s in self.pods.items()]
        containers = [api.Container(id=c, pod_sandbox_id=p, state=s, created_at=1)
                      for c, (p, s, _) in self.containers.items()]
        return pods, containers


class Harness:
    def __init__(self, max_pending: int) -> None:
        self.emitted: list[LifecycleEvent] = []
        self.engine = Engine(self._emit)
        self.consumer = Consumer(self.engine.last, self.engine.tombstones, max_pending,
                                 replay=False)
        self.now = 0.0

    def _emit(self, event: LifecycleEvent) -> None:
        self.emitted.append(event)
        self.consumer.offer(event)

    def relist(self, node: Node) -> list[LifecycleEvent]:
        before = len(self.emitted)
        self.now += 1.0
        pods, containers = node.listing()
        relist = self.engine.relist()
        relist.pods.add(pods)
        relist.containers.add(containers)
        pod_ids, container_ids = relist.plan()
        pod_status = {p: api.PodSandboxStatus(id=p, state=node.pods[p]) for p in pod_ids}
        container_status = {}
        for c in container_ids:
            _pod, state, code = node.containers[c]
            container_status[c] = api.ContainerStatus(id=c, state=state, exit_code=code)
        self.engine.apply_relist(relist, pod_status, container_status, self.now)
        return self.emitted[before:]


def step(node: Node, rng_ops: list[tuple[int, int]]) -> None:
    """Apply random changes: each (op, n) picks an object by index and moves it forward."""
    for op, n in rng_ops:
        if op == 0 or not node.pods:  # a new pod with a container or two
            pid = f"p{node.made}"
            node.made += 1
            node.pods[pid] = READY
            for i in range(1 + n % 2):
                node.containers[f"{pid}-c{i}"] = (pid, CREATED if n % 3 == 0 else RUNNING, 0)
            continue
        if op in (1, 2) and node.containers:  # a container moves forward or goes
            cid = sorted(node.containers)[n % len(node.containers)]
            pod, state, _ = node.containers[cid]
            if state == CREATED:
                node.containers[cid] = (pod, RUNNING, 0)
            elif state == RUNNING:
                node.containers[cid] = (pod, EXITED, n % 7)
            else:
                del node.containers[cid]
            continue
        pid = sorted(node.pods)[n % len(node.pods)]  # a pod stops, or goes with its containers
        if node.pods[pid] == READY:
            node.pods[pid] = NOTREADY
            for cid, (pod, state, _code) in list(node.containers.items()):
                if pod == pid and state != EXITED:
                    node.containers[cid] = (pod, EXITED, 137)
        else:
            del node.pods[pid]
            for cid in [c for c, (pod, _, _) in node.containers.items() if pod == pid]:
                del node.containers[cid]


ops = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(history=st.lists(ops, min_size=1, max_size=25),
       reads=st.lists(st.integers(0, 6), min_size=25, max_size=25),
       max_pending=st.integers(1, 12))
def test_consumers_see_real_transitions_bounded(
    history: list[list[tuple[int, int]]], reads: list[int], max_pending: int
) -> None:
    node = Node()
    h = Harness(max_pending)
    seen: list[LifecycleEvent] = []
    truth_codes: dict[str, int] = {}

    def read(n: int) -> None:
        for _ in range(n):
            event = h.consumer.take()
            if event is None:
                return
            seen.append(event)

    for ops_now, n in zip(history, reads, strict=False):
        step(node, ops_now)
        for cid, (_, state, code) in node.containers.items():
            if state == EXITED:
                truth_codes[cid] = code
        emitted = h.relist(node)
        # nothing for unchanged objects: a second relist of the same state says nothing
        assert h.relist(node) == []
        # every emitted event is a real, forward transition of what the node now holds
        for event in emitted:
            if event.kind is K.CONTAINER_EXITED:
                assert event.exit_code == truth_codes[event.id]
        assert h.consumer.queued <= max_pending  # the bound, at every step
        read(n)
        assert h.consumer.queued <= max_pending
    read(10**6)  # the consumer catches up

    per_object: dict[str, list[LifecycleEvent]] = {}
    for event in seen:
        per_object.setdefault(key_of(event), []).append(event)
    for key, events in per_object.items():
        ranks = [RANK[e.kind] for e in events]
        assert ranks == sorted(set(ranks)), (key, [e.kind for e in events])  # forward, once
        for e in events:
            if e.kind is K.CONTAINER_EXITED:
                assert e.exit_code == truth_codes[e.id]
    # coalescing never drops the last state: the consumer ends where the node is
    for key, last in h.engine.last.items():
        assert per_object[key][-1] is last
    alive = set(node.containers) | set(node.pods)
    for key, events in per_object.items():
        if key not in alive:
            assert events[-1].kind in (K.CONTAINER_REMOVED, K.POD_REMOVED)
    if max_pending >= 10**3:
        assert seen == h.emitted


@settings(max_examples=150, deadline=None)
@given(history=st.lists(ops, min_size=1, max_size=20))
def test_a_fast_consumer_sees_exactly_what_was_emitted(history: list[list[tuple[int, int]]]
                                                       ) -> None:
    node = Node()
    h = Harness(max_pending=10**6)
    seen = []
    for ops_now in history:
        step(node, ops_now)
        h.relist(node)
        while (event := h.consumer.take()) is not None:
            seen.append(event)
    assert seen == h.emitted
    assert h.consumer.coalesced == 0


def test_a_late_subscriber_is_told_the_current_state_first() -> None:
    node = Node()
    h = Harness(max_pending=100)
    step(node, [(0, 1), (0, 3)])  # two pods, two containers each
    h.relist(node)
    late = Consumer(h.engine.last, h.engine.tombstones, 2, replay=True)
    assert late.pending == 6 and late.queued == 2  # the first two turns, the rest owed
    node.containers["p0-c0"] = ("p0", EXITED, 9)
    for event in h.relist(node):
        late.offer(event)
    got = []
    while (event := late.take()) is not None:
        got.append(event)
    # one event per object, each its latest state (the exit merged into the replay)
    assert len(got) == len({key_of(e) for e in got}) == 6
    assert {e.id: e.kind for e in got}["p0-c0"] is K.CONTAINER_EXITED
    assert [e.kind.is_pod for e in got][:2] == [True, True]  # pods first


def test_churn_never_grows_a_stalled_queue() -> None:
    """Issue 12, item 2: 15 live objects, max_pending 20, a consumer that never reads,
    long churn: the queue stays within its bound, and so does what is owed."""
    node = Node()
    h = Harness(max_pending=20)
    step(node, [(0, 1)] * 5)  # 5 pods x 2 containers: 15 objects
    h.relist(node)
    for round_ in range(300):  # each round one container goes, a new one comes
        pods = sorted(node.pods)
        pid = pods[round_ % len(pods)]
        victims = sorted(c for c, (p, _, _) in node.containers.items() if p == pid)
        del node.containers[victims[0]]
        node.containers[f"{pid}-n{round_}"] = (pid, RUNNING, 0)
        h.relist(node)
        assert h.consumer.queued <= 20
        assert h.consumer.pending <= 20 + 15
    assert len(h.emitted) > 500


@pytest.mark.parametrize("answer", [None, _RETRY])
def test_a_failed_or_vanished_status_reports_nothing(answer: object) -> None:
    h = Harness(max_pending=10)
    relist = h.engine.relist()
    relist.pods.add([api.PodSandbox(id="p", state=READY, created_at=1)])
    relist.containers.add([api.Container(id="c", pod_sandbox_id="p", state=EXITED,
                                         created_at=1)])
    _pods, containers = relist.plan()
    assert containers == ["c"]  # an exited container: its exit code is worth a call
    h.engine.apply_relist(relist, {}, {"c": answer}, 1.0)
    told = [(e.kind, e.exit_code) for e in h.emitted]
    if answer is _RETRY:  # kept out of the view: the next relist tries again
        assert told == [(K.POD_READY, None)] and "c" not in h.engine.containers
    else:  # gone before its status: reported without an exit code
        assert told == [(K.POD_READY, None), (K.CONTAINER_EXITED, None)]


def test_queue_bound_holds_for_every_interleaving_of_a_small_case() -> None:
    """Exhaustive: 3 objects x their forward steps, offered in every order, max_pending 1-3."""
    steps = [LifecycleEvent(kind, oid, "p", None, 0, None, 0.0)
             for oid in ("a", "b", "c")
             for kind in (K.CONTAINER_CREATED, K.CONTAINER_STARTED, K.CONTAINER_REMOVED)]
    for max_pending in (1, 2, 3):
        for order in itertools.islice(itertools.permutations(range(len(steps))), 0, None, 997):
            latest: dict[str, LifecycleEvent] = {}
            c = Consumer(latest, {}, max_pending, replay=False)
            for i in order:
                event = steps[i]
                if event.kind is K.CONTAINER_REMOVED:
                    latest.pop(key_of(event), None)
                else:
                    latest[key_of(event)] = event
                c.offer(event)
                assert c.queued <= max_pending


def _ev(kind: EventKind, oid: str, pod: str = "P", state: int = 0) -> LifecycleEvent:
    return LifecycleEvent(kind, oid, pod, None, state, None, 0.0)


def test_owed_objects_get_their_turn_in_arrival_order() -> None:
    """Under steady churn an owed parent is not starved by its children's later events."""
    latest: dict[str, LifecycleEvent] = {}
    c = Consumer(latest, {}, 2, replay=False)

    def emit(event: LifecycleEvent) -> None:
        latest[event.id] = event
        c.offer(event)

    emit(_ev(K.CONTAINER_STARTED, "x"))
    emit(_ev(K.CONTAINER_STARTED, "y"))
    emit(_ev(K.POD_READY, "P"))  # owed: the queue is full
    got = []
    for i in range(20):
        event = c.take()
        assert event is not None
        got.append(event.id)
        emit(_ev(K.CONTAINER_CREATED, f"P-c{i}"))
        assert c.queued <= 2
    assert "P" in got[:3], got
    assert got.index("P") < min(got.index(x) for x in got if x.startswith("P-c"))


def test_an_owed_removal_keeps_the_last_state_known() -> None:
    latest: dict[str, LifecycleEvent] = {}
    c = Consumer(latest, {}, 1, replay=False)
    running = _ev(K.CONTAINER_STARTED, "c", state=RUNNING)
    latest["c"] = running
    c.offer(running)
    assert c.take() is running  # the consumer knows it running
    latest["d"] = _ev(K.CONTAINER_STARTED, "d")
    c.offer(latest["d"])  # fills the queue
    exited = _ev(K.CONTAINER_EXITED, "c", state=EXITED)
    latest["c"] = exited
    c.offer(exited)  # owed
    del latest["c"]
    c.offer(_ev(K.CONTAINER_REMOVED, "c", state=EXITED))
    events = [c.take(), c.take()]
    removal = next(e for e in events if e is not None and e.id == "c")
    assert (removal.kind, removal.state) == (K.CONTAINER_REMOVED, EXITED)


@pytest.mark.parametrize(("script", "expected"), [
    # a pod's removal does not overtake its container's
    ([(K.POD_READY, "P"), (K.CONTAINER_CREATED, "C"), "take", "take", (K.CONTAINER_CREATED, "X"),
      (K.POD_NOT_READY, "P"), (K.CONTAINER_STARTED, "C"), (K.CONTAINER_REMOVED, "C"),
      (K.POD_REMOVED, "P")],
     ["P", "C", "X", "C", "P"]),
    # a pod told first stays first when it changes again
    ([(K.CONTAINER_CREATED, "X"), (K.POD_READY, "P"), (K.CONTAINER_CREATED, "C"), "take",
      (K.POD_NOT_READY, "P")],
     ["X", "P", "C"]),
    # a turn freed by an unseen removal goes to the oldest owed object, not a newcomer
    ([(K.CONTAINER_CREATED, "A"), (K.CONTAINER_CREATED, "B"), (K.POD_READY, "P"),
      (K.CONTAINER_REMOVED, "B"), (K.CONTAINER_CREATED, "C")],
     ["A", "P", "C"]),
])
def test_a_slow_consumer_keeps_parents_before_children(script: list[object],
                                                        expected: list[str]) -> None:
    latest: dict[str, LifecycleEvent] = {}
    c = Consumer(latest, {}, 2, replay=False)
    got = []
    for step_ in script:
        if step_ == "take":
            event = c.take()
            assert event is not None
            got.append(event.id)
            continue
        kind, oid = step_  # type: ignore[misc]
        event = _ev(kind, oid, pod="P" if oid in ("P", "C") else "Q")
        if event.kind in (K.CONTAINER_REMOVED, K.POD_REMOVED):
            latest.pop(oid, None)
        else:
            latest[oid] = event
        c.offer(event)
    while (event := c.take()) is not None:
        got.append(event.id)
    assert got == expected


def test_a_removal_carries_the_exit_code_seen() -> None:
    h = Harness(max_pending=1)
    node = Node()
    step(node, [(0, 3)])  # one pod, two containers, created
    h.relist(node)
    while h.consumer.take() is not None:  # the consumer knows them
        pass
    node.containers["p0-c0"] = ("p0", EXITED, 42)
    h.relist(node)
    del node.containers["p0-c0"]
    h.relist(node)  # the consumer has read nothing: EXITED merges into REMOVED
    got = []
    while (event := h.consumer.take()) is not None:
        got.append(event)
    removal = next(e for e in got if e.id == "p0-c0")
    assert (removal.kind, removal.exit_code) == (K.CONTAINER_REMOVED, 42)


def test_an_event_without_a_container_id_is_ignored() -> None:
    # a runtime bug must not make the poller fetch (and be refused) an empty id
    emitted: list[LifecycleEvent] = []
    engine = Engine(emitted.append)
    event = api.ContainerEventResponse(container_id="",
                                       container_event_type=api.CONTAINER_STARTED_EVENT)
    assert not engine.status_needed(event)
    assert engine.apply_event(event, 1.0) is False
    assert emitted == []
