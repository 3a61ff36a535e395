"""The poller in events mode and ``aiocri events`` against containerd 1.7's real
GetContainerEvents (1.6 lacks the RPC).

Each test starts a private containerd 1.7 (the restart tests kill it; the session
fixture stays untouched). What is checked: every change of a pod and its containers
is reported once, in order, a pod before its containers; after a restart (SIGTERM,
SIGKILL) the stream is reopened, and what changed while containerd was down (a
container that exited, one killed through runc) is reported by the resync relist.
``aiocri events`` (built on the poller) prints such an exit once too, after a restart
and after a downgrade to 1.6 (no GetContainerEvents: it relists from then on).

Containers that must exit at a chosen moment wait for a file: the test writes
``/tmp/exit`` into their root file system from the host (it works while containerd
is down too), so no step depends on timing.

Needs root, containerd 1.7 (``sh .ci/system-deps``), runc, busybox-static: skipped
without them, except in CI.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import anyio
import pytest

import aiocri
from aiocri.api import (
    ContainerState,
    ContainerStatusRequest,
    CreateContainerRequest,
    PodSandboxConfig,
    RemoveContainerRequest,
    RemovePodSandboxRequest,
    RunPodSandboxRequest,
    StartContainerRequest,
    StopContainerRequest,
    StopPodSandboxRequest,
)
from aiocri.poller import EventKind, LifecycleEvent, Poller
from aiocri.testing.containerd import Containerd, container_config
from tests.cli_process import cli_env
from tests.containerd_fixture import require_series

pytestmark = pytest.mark.anyio

#: A container that runs until the file /tmp/exit appears in it, then exits 3.
EXIT_ON_FILE = ("sh", "-c", "while [ ! -e /tmp/exit ]; do sleep 0.05; done; exit 3")
WITHIN = 60.0  # seconds any awaited condition may take (a busy machine)

C = EventKind
CONTAINER_ORDER = (C.CONTAINER_CREATED, C.CONTAINER_STARTED, C.CONTAINER_EXITED,
                   C.CONTAINER_REMOVED)
POD_ORDER = (C.POD_READY, C.POD_NOT_READY, C.POD_REMOVED)


# -- helpers (tests/test_containerd_upgrade.py uses them too) ---------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def until(predicate: Callable[[], bool], what: str, *, within: float = WITHIN) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` after ``within`` seconds."""
    try:
        with anyio.fail_after(within):
            while not predicate():
                await anyio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"waited {within:g} s for {what}")


@asynccontextmanager
async def private_containerd(want: str) -> AsyncIterator[Containerd]:
    """A private containerd of series ``want``, stopped (pods removed) on the way out."""
    bin_dir = require_series(want)
    ctd = await Containerd.astart(bin_dir=bin_dir)
    try:
        yield ctd
    finally:
        with anyio.CancelScope(shield=True):
            await ctd.astop()
        if ctd.stop_notes:  # repaired, but a sign that something leaks
            warnings.warn(f"containerd cleanup: {ctd.stop_notes}", stacklevel=1)


class Seen:
    """The events one poller consumer received, in order."""

    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    async def consume(self, poller: Poller) -> None:
        async for event in poller:
            self.events.append(event)

    def has(self, kind: EventKind, oid: str) -> Callable[[], bool]:
        return lambda: any(e.kind is kind and e.id == oid for e in self.events)

    def one(self, kind: EventKind, oid: str) -> LifecycleEvent:
        (event,) = [e for e in self.events if e.kind is kind and e.id == oid]
        return event

    def kinds(self, oid: str) -> list[EventKind]:
        return [e.kind for e in self.events if e.id == oid]

    def about(self, ids: Iterable[str]) -> list[tuple[EventKind, str]]:
        wanted = set(ids)
        return [(e.kind, e.id) for e in self.events if e.id in wanted]


def check_once_in_order(seen: Seen, pod_id: str, containers: Iterable[str]) -> None:
    """Each event of the pod and its containers at most once, each object's events in
    lifecycle order, the pod ready before any container event, not ready after its
    containers' exits, removed after their removals."""
    cids = list(containers)
    ours = seen.about([pod_id, *cids])
    twice = [key for key, n in Counter(ours).items() if n > 1]
    assert not twice, f"reported more than once: {twice} in {ours}"
    for oid, order in [(pod_id, POD_ORDER), *((cid, CONTAINER_ORDER) for cid in cids)]:
        kinds = seen.kinds(oid)
        assert kinds == sorted(kinds, key=order.index), (oid, kinds)
    position = {key: i for i, key in enumerate(ours)}
    ready = position.get((C.POD_READY, pod_id))
    for cid in cids:
        for kind in seen.kinds(cid):
            assert ready is not None and ready < position[(kind, cid)], ours
    for pod_kind, container_kind in ((C.POD_NOT_READY, C.CONTAINER_EXITED),
                                     (C.POD_REMOVED, C.CONTAINER_REMOVED)):
        if (pod_kind, pod_id) in position:
            for cid in cids:
                if (container_kind, cid) in position:
                    assert position[(container_kind, cid)] < position[(pod_kind, pod_id)], ours


async def run_pod(client: aiocri.CRIClient, ctd: Containerd, name: str
                  ) -> tuple[str, PodSandboxConfig]:
    config = ctd.pod_config(unique(name))
    created = await client.runtime.run_pod_sandbox(RunPodSandboxRequest(config=config),
                                                   timeout=60)
    return created.pod_sandbox_id, config


async def new_container(client: aiocri.CRIClient, pod: tuple[str, PodSandboxConfig], name: str,
                        command: Iterable[str] = ("sleep", "3600"), *, start: bool = True) -> str:
    pod_id, config = pod
    created = await client.runtime.create_container(CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config(name, command=list(command)),
        sandbox_config=config), timeout=60)
    if start:
        await client.runtime.start_container(
            StartContainerRequest(container_id=created.container_id), timeout=60)
    return created.container_id


def let_exit(ctd: Containerd, cid: str) -> int:
    """Make an EXIT_ON_FILE container exit; returns its host PID (to wait for)."""
    pid = ctd.task_pid(cid)
    assert pid is not None, f"container {cid} has no process"
    (ctd.task_dir(cid) / "rootfs" / "tmp" / "exit").write_text("")
    return pid


async def remove_pod(client: aiocri.CRIClient, ctd: Containerd, pod_id: str) -> None:
    """Stop and remove a pod through the CRI (the client's, else the helper's channel)."""
    with anyio.CancelScope(shield=True):
        try:
            await client.runtime.stop_pod_sandbox(StopPodSandboxRequest(pod_sandbox_id=pod_id),
                                                  timeout=60)
            await client.runtime.remove_pod_sandbox(
                RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        except aiocri.CRIError:
            await ctd.aremove_all_pods()


async def barrier(client: aiocri.CRIClient, ctd: Containerd, seen: Seen) -> None:
    """Run and remove a marker pod and wait for its removal: what the poller had to
    say about earlier changes has been said by then (no fixed wait)."""
    marker, _ = await run_pod(client, ctd, "marker")
    await remove_pod(client, ctd, marker)
    await until(seen.has(C.POD_REMOVED, marker), "the marker pod's removal")


async def stop(client: aiocri.CRIClient, cid: str, *views: Seen) -> None:
    """StopContainer (SIGKILL at once), then wait until each of ``views`` saw the exit."""
    await client.runtime.stop_container(StopContainerRequest(container_id=cid, timeout=0))
    for view in views:
        await until(view.has(C.CONTAINER_EXITED, cid), f"{cid}'s exit")


async def exit_code(client: aiocri.CRIClient, cid: str) -> int:
    status = await client.runtime.container_status(ContainerStatusRequest(container_id=cid))
    assert status.status.state == ContainerState.CONTAINER_EXITED
    return status.status.exit_code


# -- the lifecycle, from the stream alone -------------------------------------------------


async def test_every_change_once_in_order() -> None:
    """A pod with three containers (one killed by StopContainer, one exiting by itself
    with 3, one never started), all removed, then the pod: each change once, in
    order, from the stream (no relist after the first two)."""
    async with private_containerd("1.7") as ctd, aiocri.connect(ctd.endpoint) as client:
        seen = Seen()
        async with Poller(client, mode="events", period=0.05,
                          resync_period=math.inf) as poller, anyio.create_task_group() as tg:
            tg.start_soon(seen.consume, poller)
            # the relist as the stream opened, and the one a period later
            await until(lambda: poller.stats.relists >= 2, "the poller's first relists")
            relists = poller.stats.relists
            rt = client.runtime
            pod = await run_pod(client, ctd, "once")
            pod_id = pod[0]
            try:
                sleeper = await new_container(client, pod, "sleeper")
                quitter = await new_container(client, pod, "quitter", EXIT_ON_FILE)
                idle = await new_container(client, pod, "idle", start=False)
                let_exit(ctd, quitter)
                await until(seen.has(C.CONTAINER_EXITED, quitter), "the quitter's exit")
                await rt.stop_container(StopContainerRequest(container_id=sleeper, timeout=0))
                for cid in (sleeper, quitter, idle):
                    await rt.remove_container(RemoveContainerRequest(container_id=cid))
                await rt.stop_pod_sandbox(StopPodSandboxRequest(pod_sandbox_id=pod_id))
                await rt.remove_pod_sandbox(RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            finally:
                await remove_pod(client, ctd, pod_id)
            await until(seen.has(C.POD_REMOVED, pod_id), "the pod's removal")
            await barrier(client, ctd, seen)
            assert poller.stats.relists == relists, "a change needed a relist"
            assert poller.stats.mode == "events"
            tg.cancel_scope.cancel()
    cids = (sleeper, quitter, idle)
    check_once_in_order(seen, pod_id, cids)
    assert seen.kinds(pod_id) == list(POD_ORDER)
    assert seen.kinds(sleeper) == list(CONTAINER_ORDER)
    assert seen.kinds(quitter) == list(CONTAINER_ORDER)
    assert seen.kinds(idle) == [C.CONTAINER_CREATED, C.CONTAINER_REMOVED]
    assert seen.one(C.CONTAINER_EXITED, sleeper).exit_code == 128 + signal.SIGKILL
    assert seen.one(C.CONTAINER_EXITED, quitter).exit_code == 3
    assert seen.one(C.CONTAINER_REMOVED, quitter).exit_code == 3
    assert poller.stats.errors == Counter()


# -- a restart: the stream resumes, nothing missed ----------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_stream_resumes_after_restart(sig: signal.Signals) -> None:
    """containerd goes down with four containers: one keeps running, one exits by
    itself and one is killed through runc while it is down, one stays created. After
    it is back the poller reopens the stream by itself; the exits are reported once
    (by the resync relist: containerd restores them without an event), the others
    nothing; changes made afterwards come through the stream again."""
    async with private_containerd("1.7") as ctd, aiocri.connect(ctd.endpoint) as client:
        seen = Seen()
        async with Poller(client, mode="events", period=0.05,
                          resync_period=math.inf) as poller, anyio.create_task_group() as tg:
            tg.start_soon(seen.consume, poller)
            await poller.wait_synced()
            pod = await run_pod(client, ctd, f"resume-{sig.name.lower()}")
            pod_id = pod[0]
            try:
                stays = await new_container(client, pod, "stays")
                quits = await new_container(client, pod, "quits", EXIT_ON_FILE)
                killed = await new_container(client, pod, "killed")
                idle = await new_container(client, pod, "idle", start=False)
                for cid in (stays, quits, killed):
                    await until(seen.has(C.CONTAINER_STARTED, cid), f"{cid} started")
                await until(seen.has(C.CONTAINER_CREATED, idle), "the idle one created")
                before = len(seen.events)
                opens, generation = poller.stats.stream_opens, client.generation

                await ctd.akill(sig)
                pids = [let_exit(ctd, quits), ctd.task_pid(killed)]
                await anyio.to_thread.run_sync(ctd.runc_kill, killed)
                await until(lambda: not any(p is not None and ctd.process_alive(p) for p in pids),
                            "both containers to exit while containerd is down")
                assert len(seen.events) == before  # nothing to tell while it is down
                assert poller.stats.mode == "events"
                await ctd.alaunch()

                await until(lambda: poller.stats.stream_opens > opens
                            and client.generation > generation, "the stream to reopen")
                for cid in (quits, killed):
                    await until(seen.has(C.CONTAINER_EXITED, cid), f"{cid}'s exit")
                after_restart = seen.events[before:]
                # 1.7.24 restores them without their exit code (255, "Unknown"; 1.6.20
                # keeps it): the poller reports what the runtime says
                for cid in (quits, killed):
                    assert seen.one(C.CONTAINER_EXITED, cid).exit_code == \
                        await exit_code(client, cid)

                # the stream is back: a change made now comes through it
                streamed = poller.stats.runtime_events
                late = await new_container(client, pod, "late")
                await until(seen.has(C.CONTAINER_STARTED, late), "the late one started")
                assert poller.stats.runtime_events > streamed
                await stop(client, stays, seen)
            finally:
                await remove_pod(client, ctd, pod_id)
            await until(seen.has(C.POD_REMOVED, pod_id), "the pod's removal")
            await barrier(client, ctd, seen)
            assert poller.stats.mode == "events"
            tg.cancel_scope.cancel()
    # what changed while containerd was down: the two exits, nothing else
    assert Counter((e.kind, e.id) for e in after_restart) == Counter(
        {(C.CONTAINER_EXITED, quits): 1, (C.CONTAINER_EXITED, killed): 1}), after_restart
    cids = (stays, quits, killed, idle, late)
    check_once_in_order(seen, pod_id, cids)
    assert seen.kinds(stays) == list(CONTAINER_ORDER)
    assert seen.kinds(idle) == [C.CONTAINER_CREATED, C.CONTAINER_REMOVED]
    assert seen.one(C.CONTAINER_EXITED, stays).exit_code == 128 + signal.SIGKILL
    assert seen.kinds(pod_id) == list(POD_ORDER)
    assert client.stats.redials >= 1


# -- the `aiocri events` command ----------------------------------------------------------


class EventsCommand:
    """``aiocri events -o table`` as a process; ``rows``: its lines, split."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.rows: list[list[str]] = []
        self.read_all = anyio.Event()

    async def read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.rows.append(line.decode().split())
        self.read_all.set()

    def printed(self, oid: str, event: str, since: int = 0) -> Callable[[], bool]:
        return lambda: any(row[1:3] == [oid[:13], event] for row in self.rows[since:])

    async def wait_open(self, client: aiocri.CRIClient, ctd: Containerd) -> None:
        """Run marker pods until one is printed: its stream is open then."""
        with anyio.fail_after(WITHIN):
            while not self.rows:
                marker, _ = await run_pod(client, ctd, "marker")
                try:
                    with anyio.move_on_after(2):
                        while not self.rows:  # the reader fills it
                            await anyio.sleep(0.01)
                finally:
                    await remove_pod(client, ctd, marker)

    def count(self, oid: str, event: str) -> int:
        return sum(row[1:3] == [oid[:13], event] for row in self.rows)

    async def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: its exit code and what it wrote on stderr (every line read by then)."""
        self.proc.send_signal(signal.SIGINT)
        with anyio.fail_after(WITHIN):
            code = await self.proc.wait()
            await self.read_all.wait()
        assert self.proc.stderr is not None
        return code, (await self.proc.stderr.read()).decode()


@asynccontextmanager
async def events_command(client: aiocri.CRIClient, ctd: Containerd
                         ) -> AsyncIterator[EventsCommand]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", ctd.endpoint, "events", "-o", "table",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    command = EventsCommand(proc)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(command.read)
            await command.wait_open(client, ctd)
            yield command
            tg.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_events_command_follows_a_lifecycle() -> None:
    """``aiocri events -o table`` against 1.7 prints the runtime's own events of a pod
    and its container, one line each, until interrupted."""
    async with private_containerd("1.7") as ctd, aiocri.connect(ctd.endpoint) as client, \
            events_command(client, ctd) as command:
        shown = len(command.rows)
        pod = await run_pod(client, ctd, "shown")
        try:
            cid = await new_container(client, pod, "app")
            rt = client.runtime
            await rt.stop_container(StopContainerRequest(container_id=cid, timeout=0))
            await rt.remove_container(RemoveContainerRequest(container_id=cid))
            await rt.stop_pod_sandbox(StopPodSandboxRequest(pod_sandbox_id=pod[0]))
            await rt.remove_pod_sandbox(RemovePodSandboxRequest(pod_sandbox_id=pod[0]))
        finally:
            await remove_pod(client, ctd, pod[0])
        await until(command.printed(pod[0], "DELETED_EVENT", shown), "the pod's deletion")
        code, err = await command.interrupt()
    assert code == 0, err
    assert err == ""
    lines = command.rows
    assert lines[0] == ["TIME", "CONTAINER", "EVENT", "POD", "NAME"]
    p, c = pod[0][:13], cid[:13]
    rows = [(row[1], row[2]) for row in lines[shown:] if row[1] in (p, c)]
    assert rows == [
        (p, "STARTED_EVENT"),  # the sandbox is ready
        (c, "CREATED_EVENT"), (c, "STARTED_EVENT"), (c, "STOPPED_EVENT"), (c, "DELETED_EVENT"),
        (p, "STOPPED_EVENT"), (p, "DELETED_EVENT"),
    ], rows
    # every line of the container names the pod (namespace/name) and the container
    for app in (row for row in lines[shown:] if row[1] == c):
        assert app[3] == p and app[-1] == "app" and app[-2].endswith(pod[1].metadata.name)


@pytest.mark.parametrize("then", ["1.7", "1.6"], ids=["restart", "downgrade"])
async def test_events_command_after_a_restart_misses_nothing(then: str) -> None:
    """A container exits while containerd 1.7 is down; then 1.7 starts again, or 1.6
    (no GetContainerEvents: the command relists from then on). The command prints that
    exit once, goes on printing (a container made afterwards shows), and names the pod
    on every container line; it says so on stderr when it falls back to relisting."""
    bin_dir = require_series(then)
    async with private_containerd("1.7") as ctd, aiocri.connect(ctd.endpoint) as client, \
            events_command(client, ctd) as command:
        pod = await run_pod(client, ctd, "restart")
        try:
            quits = await new_container(client, pod, "quits", EXIT_ON_FILE)
            await until(command.printed(quits, "STARTED_EVENT"), "the container's start")
            await ctd.akill(signal.SIGTERM)
            pid = let_exit(ctd, quits)
            await until(lambda: not ctd.process_alive(pid), "the exit while down")
            if then != "1.7":
                await anyio.to_thread.run_sync(ctd.use_binaries, bin_dir)
            await ctd.alaunch()
            assert ctd.version.startswith(f"{then}.")
            late = await new_container(client, pod, "late")
            await until(command.printed(late, "STARTED_EVENT"), "the printing after the restart")
            await until(command.printed(quits, "STOPPED_EVENT"), "the exit while down")
            code, err = await command.interrupt()
        finally:
            await remove_pod(client, ctd, pod[0])
    assert code == 0, err
    assert command.count(quits, "STOPPED_EVENT") == 1
    assert command.count(late, "STARTED_EVENT") == 1
    ids = [row[1:3] for row in command.rows[1:]]
    assert len(ids) == len({tuple(i) for i in ids}), f"printed twice: {command.rows}"
    for row in command.rows:
        if row[1] in (quits[:13], late[:13]):
            assert row[3] == pod[0][:13] and row[-2].endswith(pod[1].metadata.name), row
    if then == "1.7":
        assert err == ""
    else:
        assert err.splitlines() == [
            "aiocri: GetContainerEvents is not available (the runtime answered UNIMPLEMENTED); "
            "showing the poller's events instead (relist every 1 s)"], err
