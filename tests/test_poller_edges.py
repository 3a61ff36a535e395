"""The poller at its edges (issue 19): its order whatever fails, and its arguments."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiocri
from aiocri import api
from aiocri.poller import Consumer, Engine, EventKind, LifecycleEvent, Poller
from aiocri.poller._model import _RETRY
from aiocri.testing import FakeRuntime, wait_for
from tests.test_poller_engine import READY, Node, step

K = EventKind


def order_errors(events: list[LifecycleEvent]) -> list[str]:
    """Breaches of "pods before their containers, removed after them" in ``events``."""
    told: set[str] = set()  # pods told and not removed
    gone: set[str] = set()
    errors = []
    for i, event in enumerate(events):
        if event.kind is K.POD_REMOVED:
            told.discard(event.id)
            gone.add(event.id)
        elif event.kind.is_pod:
            told.add(event.id)
        elif event.pod_id not in told:
            where = "after its removal" if event.pod_id in gone else "before it was told"
            errors.append(f"#{i} {event.kind.name} {event.id} of pod {event.pod_id} {where}")
    return errors


# -- item 3, the pure engine: random histories, failures and races ----------------------------


class FaultyRelists:
    """Relists of a :class:`Node` through the engine, as the loop does them, with faults:
    a list call that fails (nothing applied), status calls that fail (retried later),
    and changes between the pod list and the container list."""

    def __init__(self, max_pending: int) -> None:
        self.emitted: list[LifecycleEvent] = []
        self.engine = Engine(self._emit)
        self.consumer = Consumer(self.engine.last, self.engine.tombstones, max_pending,
                                 replay=False)
        self.seen: list[LifecycleEvent] = []
        self.now = 0.0

    def _emit(self, event: LifecycleEvent) -> None:
        self.emitted.append(event)
        self.consumer.offer(event)

    def relist(self, node: Node, between: list[tuple[int, int]], *, list_fails: bool = False,
               status_fails: Sequence[bool] = ()) -> None:
        self.now += 1.0
        pods, _ = node.listing()
        step(node, between)  # the runtime moves on between the two lists
        _, containers = node.listing()
        if list_fails:
            return
        relist = self.engine.relist()
        relist.pods.add(pods)
        relist.containers.add(containers)
        pod_ids, container_ids = relist.plan()
        fails = iter(status_fails)
        pod_status: dict[str, Any] = {}
        for p in pod_ids:
            pod_status[p] = _RETRY if next(fails, False) else (
                api.PodSandboxStatus(id=p, state=node.pods[p])  # type: ignore[arg-type]
                if p in node.pods else None)
        container_status: dict[str, Any] = {}
        for c in container_ids:
            if next(fails, False):
                container_status[c] = _RETRY
            elif c in node.containers:
                _pod, state, code = node.containers[c]
                container_status[c] = api.ContainerStatus(id=c, state=state,  # type: ignore[arg-type]
                                                         exit_code=code)
            else:
                container_status[c] = None
        self.engine.apply_relist(relist, pod_status, container_status, self.now)

    def read(self, n: int) -> None:
        for _ in range(n):
            event = self.consumer.take()
            if event is None:
                return
            self.seen.append(event)


ops = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=4)
relists = st.tuples(ops, ops, st.integers(0, 4), st.lists(st.booleans(), max_size=8),
                    st.integers(0, 5))


@settings(max_examples=400, deadline=None)
@given(history=st.lists(relists, min_size=1, max_size=20), max_pending=st.integers(1, 8))
def test_item_3_pods_before_their_containers_whatever_fails(
    history: list[tuple[list[tuple[int, int]], list[tuple[int, int]], int, list[bool], int]],
    max_pending: int,
) -> None:
    node = Node()
    h = FaultyRelists(max_pending)
    for before, between, list_roll, status_fails, reads in history:
        step(node, before)
        h.relist(node, between, list_fails=list_roll == 0, status_fails=status_fails)
        h.read(reads)
    assert order_errors(h.emitted) == []
    # once the faults stop, everything is told, in its latest state
    h.relist(node, [])
    h.relist(node, [])
    h.read(10**6)
    assert order_errors(h.seen) == []  # a slow consumer keeps the order too
    assert set(h.engine.last) == set(node.pods) | set(node.containers)
    for pid, state in node.pods.items():
        assert h.engine.last[pid].kind is (K.POD_READY if state == READY else K.POD_NOT_READY)
    for cid, (_pod, state, _code) in node.containers.items():
        assert h.engine.last[cid].state == state


def test_item_3_a_container_made_between_the_two_lists_waits_for_its_pod() -> None:
    node = Node()
    h = FaultyRelists(100)
    h.relist(node, [(0, 1)])  # pod and container made after the pod list
    assert h.emitted == []
    assert h.engine.snapshot.containers == {}  # not in the view either: asked again
    h.relist(node, [])
    assert [e.kind for e in h.emitted] == [K.POD_READY, K.CONTAINER_STARTED, K.CONTAINER_STARTED]


def test_item_3_a_stopped_pod_told_first_comes_before_its_containers() -> None:
    node = Node()
    node.pods["p"] = api.SANDBOX_NOTREADY
    node.containers["c"] = ("p", api.CONTAINER_EXITED, 3)
    h = FaultyRelists(100)
    h.relist(node, [])
    assert [(e.kind, e.id) for e in h.emitted] == [(K.POD_NOT_READY, "p"),
                                                   (K.CONTAINER_EXITED, "c")]


# -- item 3, through the fake runtime --------------------------------------------------------


async def _collect(poller: Poller, out: list[LifecycleEvent]) -> None:
    async for event in poller:
        out.append(event)


@pytest.mark.anyio
async def test_item_3_a_failed_pod_status_keeps_the_pod_before_its_container(
    runtime: FakeRuntime,
) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    got: list[LifecycleEvent] = []
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist") as poller, \
            anyio.create_task_group() as tg:
        tg.start_soon(_collect, poller, got)
        await poller.wait_synced()
        # the new pod's status fails in the relist that first lists its container,
        # whether or not the relist before it listed the pod alone
        # (each failed status call is sent once more before it counts: 4 answers, 2 errors)
        runtime.inject_errors("PodSandboxStatus", grpc.StatusCode.UNAVAILABLE, count=4)
        pod = runtime.state.add_pod("new")
        cid = runtime.state.add_container(pod, "app")
        await wait_for(lambda: {e.id for e in got} >= {pod, cid}, timeout=10,
                       what="the new pod and its container told")
        tg.cancel_scope.cancel()
    assert poller.stats.errors["Unavailable"] == 2
    assert [e.id for e in got if e.id in (pod, cid)] == [pod, cid]
    assert order_errors(got) == []


@pytest.mark.anyio
async def test_item_3_order_holds_under_random_transient_failures(sock_dir: Path) -> None:
    rng = random.Random(19)
    async with FakeRuntime(str(sock_dir / "rt.sock"), seed=19) as rt:
        rt.populate(pods=2, containers_per_pod=2)
        got: list[LifecycleEvent] = []
        async with aiocri.connect(rt.endpoint) as client, \
                Poller(client, period=0.02, mode="relist") as poller, \
                anyio.create_task_group() as tg:
            tg.start_soon(_collect, poller, got)
            await poller.wait_synced()
            for rpc in ("PodSandboxStatus", "ContainerStatus", "ListPodSandbox",
                        "ListContainers", "StreamPodSandboxes", "StreamContainers"):
                code = rng.choice([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
                rt.inject_errors(rpc, code, rate=0.3)
            for i in range(30):
                pod = rt.state.add_pod(f"p{i}")
                for j in range(rng.randint(1, 3)):
                    rt.state.add_container(pod, f"c{j}", start=rng.random() < 0.7)
                if rng.random() < 0.3:
                    rt.state.stop_pod_sandbox(pod)
                await anyio.sleep(rng.random() * 0.03)
            rt.clear_injections()
            everything = set(rt.state.pods) | set(rt.state.containers)
            await wait_for(lambda: everything <= {e.id for e in got}, timeout=20,
                           what="every object told")
            tg.cancel_scope.cancel()
        assert sum(poller.stats.errors.values()) > 0  # the faults were met
        assert order_errors(got) == []


# -- item 5: the Poller's arguments -----------------------------------------------------------

BAD_ARGUMENTS = [
    ("period", math.nan, ValueError), ("period", math.inf, ValueError),
    ("period", -1.0, ValueError), ("period", 0, ValueError), ("period", "1", TypeError),
    ("period", True, TypeError), ("period", None, TypeError),
    ("resync_period", math.nan, ValueError), ("resync_period", -math.inf, ValueError),
    ("resync_period", 0.0, ValueError), ("resync_period", "60", TypeError),
    ("resync_period", False, TypeError),
    ("max_pending", 0, ValueError), ("max_pending", -5, ValueError),
    ("max_pending", 10.0, TypeError), ("max_pending", math.nan, TypeError),
    ("max_pending", "10", TypeError), ("max_pending", True, TypeError),
    ("status_concurrency", 0, ValueError), ("status_concurrency", 2.5, TypeError),
    ("status_concurrency", math.inf, TypeError), ("status_concurrency", False, TypeError),
    ("mode", "fast", ValueError), ("mode", None, TypeError), ("mode", 1, TypeError),
    ("initial_statuses", "no", TypeError), ("initial_statuses", 1, TypeError),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "value", "error"), BAD_ARGUMENTS,
                         ids=[f"{n}={v!r}" for n, v, _ in BAD_ARGUMENTS])
async def test_item_5_poller_refuses_bad_arguments_at_the_call(
    runtime: FakeRuntime, name: str, value: object, error: type[Exception]
) -> None:
    async with aiocri.connect(runtime.endpoint) as client:
        with pytest.raises(error, match=rf"\b{name}\b"):
            Poller(client, **{name: value})  # type: ignore[arg-type]


def test_item_5_poller_refuses_what_is_not_a_client() -> None:
    with pytest.raises(TypeError, match="client"):
        Poller("unix:///run/containerd/containerd.sock")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_poller_takes_good_numbers_and_an_endless_resync(
    runtime: FakeRuntime,
) -> None:
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint) as client:
        odd = Poller(client, period=1, max_pending=1, status_concurrency=1)
        assert (odd.period, odd.max_pending, odd.status_concurrency) == (1.0, 1, 1)
        # resync_period=inf: relist only as the event stream opens (and a period later);
        # the poller works on
        async with Poller(client, period=0.05, mode="events",
                          resync_period=math.inf) as poller:
            await poller.wait_synced()
            runtime.state.exit_container(made.container_ids[0], exit_code=4)
            with anyio.fail_after(5):
                async for event in poller:
                    if event.kind is K.CONTAINER_EXITED:
                        break
            assert event.exit_code == 4
