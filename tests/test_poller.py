"""The status poller against the embedded fake runtime (plus its pure diff helpers).

Relist-mode tests use short periods (50 ms); event-mode tests use long periods so
that only the event stream can explain a fast report.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import grpc
import pytest

import aiocri
from aiocri import api
from aiocri.poller import Engine, EventKind, LifecycleEvent, Poller
from aiocri.poller._engine import _Diff
from aiocri.poller._model import _steps
from aiocri.testing import FakeRuntime, wait_for

pytestmark = pytest.mark.anyio

FAST = aiocri.RedialPolicy(connect_timeout=2.0, initial=0.01, maximum=0.2)
K = EventKind


# -- helpers --------------------------------------------------------------------------


async def next_event(poller: Poller, within: float = 30.0) -> LifecycleEvent:
    with anyio.fail_after(within):
        return await poller.__anext__()


async def drain(poller: Poller) -> list[LifecycleEvent]:
    """What is queued now, without waiting for more."""
    out = []
    while poller.pending:
        out.append(await next_event(poller))
    return out


async def wait_relists(poller: Poller, n: int, within: float = 30.0) -> None:
    """Wait until ``n`` more relists are done."""
    target = poller.stats.relists + n
    with anyio.fail_after(within):
        while poller.stats.relists < target:
            await anyio.sleep(0.01)


async def events_until(poller: Poller, kind: EventKind, oid: str,
                       within: float = 30.0) -> list[LifecycleEvent]:
    """Events up to and including the first ``kind`` of ``oid``."""
    out = []
    with anyio.fail_after(within):
        async for event in poller:
            out.append(event)
            if event.kind is kind and event.id == oid:
                return out
    raise AssertionError("the poller ended")


async def collect(poller: Poller, out: list[LifecycleEvent]) -> None:
    async for event in poller:
        out.append(event)


async def until(condition: Callable[[], object], what: str) -> None:
    """Until ``condition()`` holds; fails loudly after a generous 30 s."""
    await wait_for(lambda: bool(condition()), timeout=30, what=what)


async def synced(poller: Poller) -> list[LifecycleEvent]:
    await poller.wait_synced()
    return await drain(poller)


# -- pure helpers ----------------------------------------------------------------------


def test_steps_go_forward_only() -> None:
    assert _steps(0, 1) == (K.CONTAINER_CREATED,)
    assert _steps(0, 2) == (K.CONTAINER_STARTED,)  # first seen running: no invented CREATED
    assert _steps(1, 3) == (K.CONTAINER_EXITED,)
    assert _steps(2, 2) == ()
    assert _steps(3, 2) == ()  # a late "started" after "exited" gives nothing


def _c(cid: str, state: int, created: int = 1) -> api.Container:
    return api.Container(id=cid, state=state, created_at=created)  # type: ignore[arg-type]


def _diff(old: dict[str, api.Container], chunks: list[list[api.Container]]
          ) -> tuple[dict[str, api.Container], list[api.Container], list[api.Container]]:
    diff = _Diff(old)
    for chunk in chunks:
        diff.add(chunk)
    return diff.result()


def test_diff_by_id_and_state() -> None:
    old = {"a": _c("a", api.CONTAINER_RUNNING), "b": _c("b", api.CONTAINER_RUNNING),
           "c": _c("c", api.CONTAINER_RUNNING)}
    listing = [_c("a", api.CONTAINER_RUNNING), _c("b", api.CONTAINER_EXITED),
               _c("d", api.CONTAINER_CREATED), _c("d", api.CONTAINER_CREATED)]
    new, changed, removed = _diff(old, [listing])
    assert set(new) == {"a", "b", "d"}
    assert sorted(c.id for c in changed) == ["b", "d"]
    assert [c.id for c in removed] == ["c"]
    # nothing changed: nothing reported, even with a duplicate in the listing
    assert _diff(new, [list(new.values()), [new["a"]]])[1:] == ([], [])
    # a duplicate must not hide a removal
    assert [c.id for c in _diff(new, [[new["a"], new["a"], new["b"]]])[2]] == ["d"]
    # same id, new created_at: a change
    _, changed3, _ = _diff(new, [[_c("a", api.CONTAINER_RUNNING, 2), new["b"], new["d"]]])
    assert [c.id for c in changed3] == ["a"]


def _event(kind: int, cid: str, pod: str | None, pod_state: int = api.SANDBOX_READY,
           state: int | None = None, exit_code: int = 0) -> api.ContainerEventResponse:
    event = api.ContainerEventResponse(container_id=cid, container_event_type=kind)  # type: ignore[arg-type]
    if pod is not None:
        event.pod_sandbox_status.CopyFrom(api.PodSandboxStatus(id=pod, state=pod_state))  # type: ignore[arg-type]
    if state is not None:
        event.containers_statuses.append(
            api.ContainerStatus(id=cid, state=state, exit_code=exit_code))  # type: ignore[arg-type]
    return event


def test_late_events_neither_go_back_nor_resurrect() -> None:
    """Events applied after a newer relist (or event) change nothing and report nothing."""
    out: list[LifecycleEvent] = []
    engine = Engine(out.append)

    def apply(event: api.ContainerEventResponse) -> None:
        assert not engine.status_needed(event)  # statuses are in the events
        engine.apply_event(event, time.monotonic())

    def drained() -> list[LifecycleEvent]:
        got = list(out)
        out.clear()
        return got

    created, started, stopped, deleted = (
        api.CONTAINER_CREATED_EVENT, api.CONTAINER_STARTED_EVENT,
        api.CONTAINER_STOPPED_EVENT, api.CONTAINER_DELETED_EVENT)
    apply(_event(created, "p", "p"))
    apply(_event(created, "c", "p", state=api.CONTAINER_CREATED))
    apply(_event(started, "c", "p", state=api.CONTAINER_RUNNING))
    # stopping the pod: its container stops first (the pod's status still says ready)
    stop_c = _event(stopped, "c", "p", state=api.CONTAINER_EXITED, exit_code=7)
    apply(stop_c)
    apply(_event(stopped, "p", "p", pod_state=api.SANDBOX_NOTREADY))
    events = drained()
    assert [(e.kind, e.id) for e in events] == [
        (K.POD_READY, "p"), (K.CONTAINER_CREATED, "c"), (K.CONTAINER_STARTED, "c"),
        (K.CONTAINER_EXITED, "c"), (K.POD_NOT_READY, "p")]
    assert events[3].exit_code == 7
    # late copies: a "ready" pod status, a "running" container
    apply(stop_c)
    apply(_event(started, "c", "p", state=api.CONTAINER_RUNNING))
    assert drained() == []
    assert engine.snapshot.pods["p"].state == api.SANDBOX_NOTREADY
    assert engine.snapshot.containers["c"].state == api.CONTAINER_EXITED
    # removals, then late events about the removed ones
    apply(_event(deleted, "c", "p", pod_state=api.SANDBOX_NOTREADY))
    apply(_event(deleted, "p", None))
    assert [(e.kind, e.id) for e in drained()] == [
        (K.CONTAINER_REMOVED, "c"), (K.POD_REMOVED, "p")]
    apply(stop_c)
    apply(_event(created, "d", "p", state=api.CONTAINER_CREATED))
    assert [(e.kind, e.id) for e in drained()] == [(K.CONTAINER_CREATED, "d")]
    assert set(engine.snapshot.containers) == {"d"}
    assert engine.snapshot.pods == {}


# -- relist mode -------------------------------------------------------------------------


@pytest.mark.parametrize("initial_statuses", [False, True])
async def test_first_relist_reports_everything(
    runtime: FakeRuntime, initial_statuses: bool
) -> None:
    made = runtime.populate(pods=2, containers_per_pod=2)
    exited = made.container_ids[3]
    runtime.state.exit_container(exited, exit_code=5)
    created = runtime.state.add_container(made.pod_ids[0], "late", start=False)
    runtime.state.stop_pod_sandbox(made.pod_ids[1])  # its running container exits (0)
    async with aiocri.connect(runtime.endpoint) as client, Poller(
        client, period=0.05, mode="relist", initial_statuses=initial_statuses
    ) as poller:
        assert not poller.snapshot.synced
        events = await synced(poller)
        snap = poller.snapshot
        assert snap.synced
        assert set(snap.pods) == set(made.pod_ids)
        assert set(snap.containers) == {*made.container_ids, created}
        with pytest.raises(TypeError):
            snap.containers["x"] = api.Container()  # type: ignore[index]
        assert len(snap.containers_of(made.pod_ids[0])) == 3
        # relists keep lean entries; the snapshot gives whole messages, built once
        late = snap.containers[created]
        assert isinstance(late, api.Container) and late is snap.containers[created]
        assert (late.metadata.name, late.labels["io.kubernetes.container.name"],
                late.pod_sandbox_id, late.image.image) == (
            "late", "late", made.pod_ids[0], "docker.io/library/busybox:1.36")
        pod0 = runtime.state.get_pod(made.pod_ids[0]).config
        assert snap.pods[made.pod_ids[0]].labels == pod0.labels
        assert snap.pods[made.pod_ids[0]].metadata == pod0.metadata
        assert "late" in {c.metadata.name for c in snap.containers_of(made.pod_ids[0])}
        assert all(isinstance(c, api.Container) for c in snap.containers.values())
        # one event per object, for the state it is in
        assert Counter(e.id for e in events).most_common(1)[0][1] == 1
        kinds = {e.id: e.kind for e in events}
        assert kinds == {
            made.pod_ids[0]: K.POD_READY, made.pod_ids[1]: K.POD_NOT_READY,
            made.container_ids[0]: K.CONTAINER_STARTED, made.container_ids[1]: K.CONTAINER_STARTED,
            made.container_ids[2]: K.CONTAINER_EXITED, exited: K.CONTAINER_EXITED,
            created: K.CONTAINER_CREATED,
        }
        codes = {e.id: e.exit_code for e in events if e.kind is K.CONTAINER_EXITED}
        assert codes == {exited: 5, made.container_ids[2]: 137}  # stopped, no grace: SIGKILL
        # pods first (a stopped pod too: it is told for the first time), then containers
        assert [e.kind.is_pod for e in events] == [True] * 2 + [False] * 5
        assert {e.pod_id for e in events if e.id in made.container_ids[:2]} == {made.pod_ids[0]}
        # statuses: for exit codes only, unless asked for all
        with_status = {e.id for e in events if e.status is not None}
        assert all(e.status.id == e.id for e in events if e.status is not None)
        assert with_status == (set(kinds) if initial_statuses else set(codes))
        assert poller.stats.status_fetches == len(with_status)
        assert poller.stats.mode == "relist"
        assert poller.stats.container_list == "StreamContainers"  # v1 runtime: streamed
        assert poller.stats.events_emitted == len(events) == 7


async def test_exit_reported_once_with_its_code(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=1, containers_per_pod=2)
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist") as poller:
        await synced(poller)
        fetches = poller.stats.status_fetches
        await wait_relists(poller, 2)
        assert poller.stats.status_fetches == fetches  # nothing changed: no status calls
        runtime.state.exit_container(made.container_ids[1], exit_code=42)
        event = await next_event(poller)
        assert (event.kind, event.id, event.exit_code) == (
            K.CONTAINER_EXITED, made.container_ids[1], 42)
        assert event.state == api.CONTAINER_EXITED
        assert isinstance(event.status, api.ContainerStatus)
        assert event.status.finished_at > 0
        assert event.pod_id == made.pod_ids[0]
        await wait_relists(poller, 4)
        assert await drain(poller) == []  # reported once
        assert poller.snapshot.containers[made.container_ids[1]].state == api.CONTAINER_EXITED


@pytest.mark.parametrize("mode", ["relist", "auto"])
async def test_created_started_exited_removed(runtime: FakeRuntime, mode: str) -> None:
    pod = runtime.state.add_pod("web")
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode=mode) as poller:  # type: ignore[arg-type]
        assert [e.kind for e in await synced(poller)] == [K.POD_READY]
        if mode == "auto":
            await runtime.wait_for_event_streams()
        cid = runtime.state.add_container(pod, "app", start=False)
        seen = await events_until(poller, K.CONTAINER_CREATED, cid)
        assert [e.kind for e in seen] == [K.CONTAINER_CREATED]
        assert cid in poller.snapshot.containers
        runtime.state.start_container(cid)
        assert [e.kind for e in await events_until(poller, K.CONTAINER_STARTED, cid)] == [
            K.CONTAINER_STARTED]
        runtime.state.stop_container(cid)
        seen = await events_until(poller, K.CONTAINER_EXITED, cid)
        assert [e.kind for e in seen] == [K.CONTAINER_EXITED]
        assert seen[0].exit_code == 137  # no grace period: SIGKILL, as containerd
        runtime.state.remove_container(cid)
        seen = await events_until(poller, K.CONTAINER_REMOVED, cid)
        assert [(e.kind, e.pod_id) for e in seen] == [(K.CONTAINER_REMOVED, pod)]
        assert cid not in poller.snapshot.containers
        await wait_relists(poller, 1 if mode == "relist" else 0)
        assert await drain(poller) == []
        assert poller.stats.mode == ("events" if mode == "auto" else "relist")


@pytest.mark.parametrize("mode", ["relist", "auto"])
async def test_pod_not_ready_then_removed(runtime: FakeRuntime, mode: str) -> None:
    made = runtime.populate(pods=2, containers_per_pod=2)
    pod, (c1, c2) = made.pod_ids[0], made.container_ids[:2]
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode=mode) as poller:  # type: ignore[arg-type]
        await synced(poller)
        if mode == "auto":
            await runtime.wait_for_event_streams()
        runtime.state.stop_pod_sandbox(pod)
        seen = await events_until(poller, K.POD_NOT_READY, pod)
        assert Counter((e.kind, e.id) for e in seen) == Counter(
            {(K.CONTAINER_EXITED, c1): 1, (K.CONTAINER_EXITED, c2): 1, (K.POD_NOT_READY, pod): 1})
        assert poller.snapshot.pods[pod].state == api.SANDBOX_NOTREADY
        runtime.state.remove_pod_sandbox(pod)
        seen = await events_until(poller, K.POD_REMOVED, pod)
        assert [(e.kind, e.id) for e in seen][-1] == (K.POD_REMOVED, pod)
        assert Counter((e.kind, e.id) for e in seen[:-1]) == Counter(
            {(K.CONTAINER_REMOVED, c1): 1, (K.CONTAINER_REMOVED, c2): 1})
        assert pod not in poller.snapshot.pods
        assert not set(poller.snapshot.containers) & {c1, c2}
        assert len(poller.snapshot.containers) == 2  # the other pod's
        await wait_relists(poller, 1 if mode == "relist" else 0)
        assert await drain(poller) == []


async def test_v1alpha2_runtime_relists_with_unary_lists(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt:
        made = rt.populate(pods=1, containers_per_pod=2)
        async with aiocri.connect(rt.endpoint) as client, \
                Poller(client, period=0.05) as poller:  # auto
            assert len(await synced(poller)) == 1 + 2
            assert client.version is aiocri.V1ALPHA2
            assert poller.stats.mode == "relist"
            assert (poller.stats.pod_list, poller.stats.container_list) == (
                "ListPodSandbox", "ListContainers")
            rt.state.exit_container(made.container_ids[0], exit_code=3)
            event = await next_event(poller)
            assert (event.kind, event.exit_code) == (K.CONTAINER_EXITED, 3)
            # v1alpha2 has neither: nothing was even sent
            assert rt.calls["GetContainerEvents"] == rt.calls["StreamContainers"] == 0
            assert rt.calls["StreamPodSandboxes"] == 0
            assert rt.calls["ListContainers"] == poller.stats.relists


async def test_events_mode_is_strict(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt, \
            aiocri.connect(rt.endpoint) as client, Poller(client, mode="events") as poller:
        with anyio.fail_after(30), pytest.raises(aiocri.UnsupportedByVersion):
            await poller.wait_synced()
        with pytest.raises(aiocri.UnsupportedByVersion):
            await next_event(poller)


# -- event mode ------------------------------------------------------------------------------


async def test_event_mode_reports_fast(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=1, containers_per_pod=2)
    period = 60.0  # a relist cannot explain a report within seconds
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=period, resync_period=120.0) as poller:
        await synced(poller)
        await runtime.wait_for_event_streams()
        snap = poller.snapshot
        relists = poller.stats.relists
        started = time.monotonic()
        runtime.state.exit_container(made.container_ids[0], exit_code=9)
        event = await next_event(poller, within=period / 5)
        assert time.monotonic() - started < period / 5
        assert (event.kind, event.id, event.exit_code) == (
            K.CONTAINER_EXITED, made.container_ids[0], 9)
        assert poller.stats.relists == relists
        assert poller.stats.mode == "events"
        assert poller.stats.runtime_events >= 1
        # the snapshot follows the events; the one read before did not change
        assert poller.snapshot.containers[event.id].state == api.CONTAINER_EXITED
        assert snap.containers[event.id].state == api.CONTAINER_RUNNING
        cid = runtime.state.add_container(made.pod_ids[0], "new")
        seen = await events_until(poller, K.CONTAINER_STARTED, cid, within=period / 5)
        assert [e.kind for e in seen] == [K.CONTAINER_CREATED, K.CONTAINER_STARTED]
        assert poller.snapshot.containers[cid].pod_sandbox_id == made.pod_ids[0]


async def test_events_unimplemented_falls_back_to_relist(runtime: FakeRuntime) -> None:
    runtime.inject_errors("GetContainerEvents", code=grpc.StatusCode.UNIMPLEMENTED)
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint) as client:
        async with Poller(client, period=0.05) as poller:
            await synced(poller)
            with anyio.fail_after(30):
                while poller.stats.mode != "relist":
                    await anyio.sleep(0.01)
            runtime.state.exit_container(made.container_ids[0], exit_code=1)
            event = await next_event(poller)
            assert (event.kind, event.exit_code) == (K.CONTAINER_EXITED, 1)
            assert runtime.calls["GetContainerEvents"] == 1  # not asked again
        async with Poller(client, mode="events") as strict:
            # its first relist may report the pod and container before the stream fails
            with pytest.raises(aiocri.UnsupportedByRuntime), anyio.fail_after(30):
                async for event in strict:
                    assert event.kind in (K.POD_READY, K.CONTAINER_STARTED,
                                          K.CONTAINER_EXITED)


# -- restarts and upgrades ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
@pytest.mark.parametrize("mode", ["relist", "auto"])
async def test_runtime_restart_reports_only_real_changes(
    runtime: FakeRuntime, mode: str, how: str
) -> None:
    made = runtime.populate(pods=2, containers_per_pod=2)
    victim, gone = made.container_ids[1], made.container_ids[3]
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client, \
            Poller(client, period=0.05, mode=mode) as poller:  # type: ignore[arg-type]
        assert len(await synced(poller)) == 2 + 4
        await (runtime.stop() if how == "stop" else runtime.kill())
        # while the runtime is down, a container dies and another is removed
        runtime.state.exit_container(victim, exit_code=137, reason="OOMKilled")
        runtime.state.remove_container(gone)
        # the client and the poller try while it is away (not a window nobody looked in)
        attempts = client.stats.redial_attempts
        await until(lambda: client.stats.redial_attempts >= attempts + 3,
                    "3 redial attempts while the runtime is away")
        assert await drain(poller) == []  # nothing to say while it is away
        await runtime.start()
        seen = await events_until(poller, K.CONTAINER_EXITED, victim)
        if mode == "relist":
            await wait_relists(poller, 3)
        else:  # a resync relist after the stream came back tells the removal; an exit
            # invented for the removed container would come in that relist, before it
            await until(lambda: poller.stats.stream_opens >= 2, "the stream reopened")
            while (K.CONTAINER_REMOVED, gone) not in [(e.kind, e.id) for e in seen]:
                seen.append(await next_event(poller))
        seen += await drain(poller)
        assert client.stats.redials >= 1
        assert sorted((e.kind.value, e.id) for e in seen) == sorted([
            (K.CONTAINER_EXITED.value, victim),
            (K.CONTAINER_REMOVED.value, gone),  # its exit was not seen: not invented
        ])
        assert [e.exit_code for e in seen if e.kind is K.CONTAINER_EXITED] == [137]
        # and the poller goes on watching
        if mode == "auto":
            await runtime.wait_for_event_streams()
        runtime.state.exit_container(made.container_ids[0], exit_code=2)
        event = await next_event(poller)
        assert (event.kind, event.id) == (K.CONTAINER_EXITED, made.container_ids[0])
        assert poller.stats.mode == ("events" if mode == "auto" else "relist")


async def test_upgrade_dropping_the_pinned_version_ends_with_restart_required(
    sock_dir: Path,
) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt:
        rt.populate(pods=1, containers_per_pod=1)
        async with aiocri.connect(rt.endpoint, redial=FAST) as client, \
                Poller(client, period=0.05) as poller:
            assert len(await synced(poller)) == 2
            await rt.upgrade(versions=("v1",), down_for=0.1)
            got: list[LifecycleEvent] = []
            with anyio.fail_after(30), pytest.raises(aiocri.RestartRequired) as caught:
                await collect(poller, got)
            assert got == []
            assert caught.value.pinned == "v1alpha2"
            assert caught.value.served == ("v1",)
            with pytest.raises(aiocri.RestartRequired):  # and it stays so
                await next_event(poller)


async def test_closed_client_ends_the_iteration(runtime: FakeRuntime) -> None:
    # The client lives in another task, which closes it by leaving its `async with`.
    runtime.populate(pods=1, containers_per_pod=1)
    clients: list[aiocri.CRIClient] = []
    ready, done = anyio.Event(), anyio.Event()

    async def own_client() -> None:
        async with aiocri.connect(runtime.endpoint) as client:
            clients.append(client)
            ready.set()
            await done.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(own_client)
        await ready.wait()
        async with Poller(clients[0], period=0.05, mode="relist") as poller:
            assert len(await synced(poller)) == 2
            runtime.state.add_container(next(iter(runtime.state.pods)), "x")
            await wait_relists(poller, 2)
            done.set()  # the owner closes the client
            got: list[LifecycleEvent] = []
            with anyio.fail_after(30), pytest.raises(aiocri.ClientClosed):
                await collect(poller, got)  # what was queued first, then the error
            assert [e.kind for e in got] == [K.CONTAINER_STARTED]


# -- big nodes, slow consumers ---------------------------------------------------------------


async def test_slow_consumer_gets_latest_event_per_object(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=3, containers_per_pod=2)
    pods, cids = made.pod_ids, made.container_ids
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist", max_pending=4) as poller:
        own = aiter(poller)
        await poller.wait_synced()  # 9 events due, one per object; at most 4 held
        assert (poller.pending, own.queued, poller.coalesced) == (9, 4, 0)
        # the consumer sleeps while things change: exits, then removals
        runtime.state.exit_container(cids[0], exit_code=3)
        runtime.state.exit_container(cids[1], exit_code=4)
        await wait_relists(poller, 2)
        runtime.state.remove_container(cids[0])
        runtime.state.stop_pod_sandbox(pods[2])
        await wait_relists(poller, 2)
        assert own.queued <= 4
        assert poller.stats.events_emitted == 9 + 2 + 1 + 3  # exits; removal; pod stop
        events = await drain(poller)
        # the latest event of each object; cids[0] came and went unseen: not told
        latest = {e.id: (e.kind, e.exit_code) for e in events}
        assert len(events) == len(latest) == 8
        assert cids[0] not in latest
        assert latest[cids[1]] == (K.CONTAINER_EXITED, 4)
        assert latest[cids[4]] == latest[cids[5]] == (K.CONTAINER_EXITED, 137)
        assert latest[pods[2]] == (K.POD_NOT_READY, None)
        assert latest[cids[2]] == (K.CONTAINER_STARTED, None)  # unchanged
        coalesced = poller.coalesced
        assert coalesced > 0
        # the queue is plain again: every event comes through, in order
        runtime.state.remove_container(cids[1])
        runtime.state.remove_container(cids[2])
        seen = await events_until(poller, K.CONTAINER_REMOVED, cids[2])
        assert [(e.kind, e.id) for e in seen] == [
            (K.CONTAINER_REMOVED, cids[1]), (K.CONTAINER_REMOVED, cids[2])]
        assert poller.coalesced == coalesced


async def test_stream_list_unimplemented_falls_back_to_unary(runtime: FakeRuntime) -> None:
    runtime.inject_errors("StreamContainers", code=grpc.StatusCode.UNIMPLEMENTED)
    made = runtime.populate(pods=2, containers_per_pod=2)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client, \
            Poller(client, period=0.05, mode="relist") as poller:
        assert len(await synced(poller)) == 2 + 4
        assert poller.stats.container_list == "ListContainers"
        assert poller.stats.pod_list == "StreamPodSandboxes"  # decided per RPC
        await wait_relists(poller, 3)
        assert runtime.calls["StreamContainers"] == 1  # remembered
        runtime.clear_injections()
        await runtime.restart(down_for=0.1)  # e.g. an upgraded runtime: probe again
        await wait_relists(poller, 3)
        assert poller.stats.container_list == "StreamContainers"
        assert runtime.calls["StreamContainers"] >= 2
        assert await drain(poller) == []
        assert len(poller.snapshot.containers) == len(made.container_ids)


async def test_unary_list_too_large_is_an_error(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock"), versions=("v1alpha2",)) as rt:
        rt.populate(pods=1, containers_per_pod=20)
        async with aiocri.connect(rt.endpoint, max_message_size=4096) as client, \
                Poller(client, period=0.05) as poller:
            with anyio.fail_after(30), pytest.raises(aiocri.MessageTooLarge) as caught:
                await poller.wait_synced()
            assert "max_message_size" in str(caught.value)
            assert any("Stream" in note for note in caught.value.__notes__)
            with pytest.raises(aiocri.MessageTooLarge):
                await next_event(poller)


# -- issue 12: the edges ---------------------------------------------------------------------


async def test_12_1_two_consumers(runtime: FakeRuntime) -> None:
    """Each subscriber gets every event; two tasks on one iterator are told at once; all
    end when the poller closes (the old poller left one of them waiting for ever)."""
    made = runtime.populate(pods=1, containers_per_pod=2)
    async with aiocri.connect(runtime.endpoint) as client:
        poller = Poller(client, period=0.05, mode="relist").start()
        a, b = poller.subscribe(), poller.subscribe()
        got: dict[str, list[LifecycleEvent]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        async def read(name: str, it: AsyncIterator[LifecycleEvent]) -> None:
            async for event in it:
                got[name].append(event)

        async def second_reader_of_own() -> None:
            try:
                await poller.__anext__()
            except RuntimeError as exc:
                errors.append(exc)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read, "a", a)
                tg.start_soon(read, "b", b)
                own: list[LifecycleEvent] = []
                tg.start_soon(collect, poller, own)  # the poller's own iterator
                await poller.wait_synced()
                # it read the pod and the two containers and waits for more
                await until(lambda: len(own) >= 3 and not poller.pending,
                            "the own iterator waits")
                tg.start_soon(second_reader_of_own)
                runtime.state.exit_container(made.container_ids[0], exit_code=2)
                await wait_relists(poller, 2)
                await until(lambda: all(
                    (K.CONTAINER_EXITED, made.container_ids[0]) in [(e.kind, e.id) for e in got[n]]
                    for n in "ab"), "both subscribers read the exit")
                await poller.aclose()  # every reader ends
        assert len(errors) == 1 and "subscribe" in str(errors[0])
        for name in "ab":
            kinds = [(e.kind, e.id) for e in got[name]]
            assert (K.CONTAINER_EXITED, made.container_ids[0]) in kinds
            assert len(kinds) == 4  # pod, two containers, one exit
        assert got["a"] == got["b"]


async def test_12_2_a_stalled_consumer_stays_bounded_under_churn(runtime: FakeRuntime) -> None:
    """15 live objects, max_pending 20, a consumer that does not read, 3 s of churn: what
    is due stays bounded (the old queue kept a removal per dead id: 150+ and growing)."""
    import random

    from aiocri.testing import churn_once

    runtime.populate(pods=5, containers_per_pod=2)
    rng = random.Random(7)
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist", max_pending=20) as poller:
        own = aiter(poller)
        await poller.wait_synced()
        most = 0
        for _ in range(150):  # 50 restarts a second for 3 s
            churn_once(runtime.state, rng)
            await anyio.sleep(0.02)
            assert own.queued <= 20
            most = max(most, poller.pending)
        assert poller.stats.events_emitted > 200
        assert most <= 20 + 15, most
        # and the consumer, when it reads, ends on the node's state
        await wait_relists(poller, 2)
        latest: dict[str, LifecycleEvent] = {}
        for event in await drain(poller):
            latest[event.id] = event
        told = {i for i, e in latest.items() if e.kind not in (K.CONTAINER_REMOVED, K.POD_REMOVED)}
        assert told == set(runtime.state.containers) | set(runtime.state.pods)


async def test_12_3_non_transient_relist_error_ends_wait_synced(runtime: FakeRuntime) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    for rpc in ("ListPodSandbox", "StreamPodSandboxes"):
        runtime.inject_errors(rpc, code=grpc.StatusCode.PERMISSION_DENIED)
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist") as poller:
        with anyio.fail_after(30), pytest.raises(aiocri.RuntimeCallError) as caught:
            await poller.wait_synced()
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
        with anyio.fail_after(30), pytest.raises(aiocri.RuntimeCallError):
            await next_event(poller)


async def test_12_4_status_fetches_are_bounded(runtime: FakeRuntime) -> None:
    """A node drain: every container exits at once; the statuses are fetched by at most
    ``status_concurrency`` calls at a time, with no task per container."""
    import asyncio

    made = runtime.populate(pods=20, containers_per_pod=15)  # 300 containers
    runtime.inject_latency("ContainerStatus", 0.02)
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist", status_concurrency=8) as poller:
        await synced(poller)
        def fetching() -> int:  # the poller's tasks that fetch statuses
            return sum(1 for t in asyncio.all_tasks()
                       if "_fetch_statuses" in t.get_name())

        for cid in made.container_ids:
            runtime.state.exit_container(cid, exit_code=1)
        most = 0
        with anyio.fail_after(20):
            while poller.stats.status_fetches < 300:
                most = max(most, fetching())
                await anyio.sleep(0.002)
        assert 0 < most <= 8, most  # 8 workers, not 300 tasks
        exits = []
        while len(exits) < 300:
            event = await next_event(poller)
            if event.kind is K.CONTAINER_EXITED:
                exits.append(event)
        assert all(e.exit_code == 1 for e in exits)


async def test_12_5_stream_down_relists_at_the_period(runtime: FakeRuntime) -> None:
    """Events mode with a stream that keeps failing: changes still come, at the period
    (the old poller waited for the stream's backoff and missed them meanwhile)."""
    made = runtime.populate(pods=1, containers_per_pod=3)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client, \
            Poller(client, period=0.1, resync_period=60, mode="events") as poller:
        await synced(poller)
        await runtime.wait_for_event_streams(1)
        runtime.inject_errors("GetContainerEvents", code=grpc.StatusCode.INTERNAL)
        opens = poller.stats.stream_opens
        await runtime.restart(down_for=0.05)  # the stream breaks and cannot reopen
        # its reopening backs off to its 2 s maximum meanwhile (50 ms doubled 6 times)
        await until(lambda: poller.stats.stream_opens >= opens + 7, "7 failed reopenings")
        await drain(poller)
        for cid in made.container_ids:
            started = time.monotonic()
            runtime.state.exit_container(cid, exit_code=4)
            event = await next_event(poller)
            assert (event.kind, event.id) == (K.CONTAINER_EXITED, cid)
            # at the 0.1 s period, not at the stream's next try (up to 2 s away)
            assert time.monotonic() - started < 1.0
            runtime.state.remove_container(cid)
            assert (await next_event(poller)).kind is K.CONTAINER_REMOVED


async def test_12_5_stream_reopens_at_once_after_a_reconnect(runtime: FakeRuntime) -> None:
    made = runtime.populate(pods=1, containers_per_pod=1)
    async with aiocri.connect(runtime.endpoint, redial=FAST) as client, \
            Poller(client, period=30, resync_period=60, mode="events") as poller:
        await synced(poller)
        await runtime.wait_for_event_streams(1)
        for _ in range(8):  # each restart would grow a backoff (to 2 s); a reconnect skips it
            generation = client.generation
            await runtime.restart(down_for=0.05)
            await until(lambda g=generation: client.generation != g, "the client reconnected")
            back = time.monotonic()
            await runtime.wait_for_event_streams(1, timeout=30)
            assert time.monotonic() - back < 1.0
        await drain(poller)
        runtime.state.exit_container(made.container_ids[0], exit_code=6)
        event = await next_event(poller, within=10)  # by the stream (period is 30 s)
        assert (event.kind, event.exit_code) == (K.CONTAINER_EXITED, 6)


async def test_a_stream_that_keeps_failing_does_not_relist_at_each_attempt(
    runtime: FakeRuntime,
) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    runtime.inject_errors("GetContainerEvents", code=grpc.StatusCode.INTERNAL)
    period = 2.0
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=period, mode="events") as poller:
        started = time.monotonic()
        await synced(poller)
        # it keeps trying (50 ms, 100 ms, ...)
        await until(lambda: poller.stats.stream_opens >= 5, "5 attempts to open the stream")
        # relists at the period (at 0, 2, 4 s...), not at each attempt
        assert poller.stats.relists <= 2 + (time.monotonic() - started) / period


async def test_a_non_transient_status_error_ends_the_poller_unwrapped(
    runtime: FakeRuntime,
) -> None:
    made = runtime.populate(pods=1, containers_per_pod=3)
    for cid in made.container_ids:
        runtime.state.exit_container(cid, exit_code=1)  # the first relist fetches 3 statuses
    runtime.inject_errors("ContainerStatus", code=grpc.StatusCode.PERMISSION_DENIED)
    async with aiocri.connect(runtime.endpoint) as client, \
            Poller(client, period=0.05, mode="relist") as poller:
        with anyio.fail_after(30), pytest.raises(aiocri.RuntimeCallError) as caught:
            await poller.wait_synced()
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
