"""A real in-place upgrade of the runtime under live clients: containerd 1.6.20 stopped
and 1.7.24 started on the same socket, root and state (what a node upgrade does), then
the way back.

Upgrade: a v1 client with a Poller (relisting on 1.6, which lacks GetContainerEvents)
and a client pinned to v1alpha2 with a relist Poller. After the switch the v1 client
redials and re-checks its version (a new generation, a Version answer from 1.7), its
poller follows the event stream by itself, and the running containers are reported
once, not again. The v1alpha2 client stays pinned: 1.7 still serves v1alpha2, so no
RestartRequired, and its calls work.

Downgrade: a poller following 1.7's events falls back to relisting on 1.6 and loses
no change made around the switch (a container that exits while no runtime runs, one
created once 1.6 is back).

Needs root, containerd 1.6 (``PATH``) and 1.7 (``sh .ci/system-deps``), runc and
busybox-static: skipped without them, except in CI.
"""

from __future__ import annotations

import math
import signal
from functools import partial
from pathlib import Path

import anyio
import pytest

import aiocri
from aiocri import ConnectionEvent, ConnectionState
from aiocri.api import (
    ContainerState,
    ContainerStatusRequest,
    ListContainersRequest,
)
from aiocri.poller import EventKind, Poller
from aiocri.testing.containerd import Containerd
from tests.containerd_fixture import require_series
from tests.test_containerd_events import (
    EXIT_ON_FILE,
    Seen,
    barrier,
    check_once_in_order,
    exit_code,
    let_exit,
    new_container,
    private_containerd,
    remove_pod,
    run_pod,
    stop,
    until,
)

pytestmark = pytest.mark.anyio

C = EventKind


class Connection:
    """The connection events of one client, from the moment it is made."""

    def __init__(self, client: aiocri.CRIClient) -> None:
        self.client = client
        self.events: list[ConnectionEvent] = []

    async def record(self) -> None:
        async for event in self.client.events():
            self.events.append(event)

    def states(self) -> list[tuple[ConnectionState, int]]:
        return [(e.state, e.generation) for e in self.events if e.kind == "state"]


async def running_ids(client: aiocri.CRIClient, pod_id: str) -> set[str]:
    listed = await client.runtime.list_containers(ListContainersRequest())
    return {c.id for c in listed.containers
            if c.pod_sandbox_id == pod_id and c.state == ContainerState.CONTAINER_RUNNING}


@pytest.fixture
def bin_17() -> Path | None:
    """The folder of containerd 1.7; skips (fails in CI) unless 1.6 and 1.7 can both run."""
    require_series("1.6")
    return require_series("1.7")


async def test_upgrade_16_to_17_in_place(bin_17: Path | None) -> None:
    async with private_containerd("1.6") as ctd, aiocri.connect(ctd.endpoint) as client, \
            aiocri.connect(ctd.endpoint, versions=["v1alpha2"]) as pinned:
        assert ctd.version.startswith("1.6.")
        assert (client.version, pinned.version) == (aiocri.V1, aiocri.V1ALPHA2)
        pod = await run_pod(client, ctd, "upgrade")
        pod_id = pod[0]
        try:
            cids = [await new_container(client, pod, f"app{i}") for i in range(2)]
            seen, old_seen, conn, old_conn, before = await _upgrade(
                ctd, client, pinned, pod_id, cids, bin_17)
        finally:
            await remove_pod(client, ctd, pod_id)
        # Pollers started with the containers running: started (first relist), then
        # exited and removed (the stop, the pod's removal), each once; nothing else.
        for view in (seen, old_seen):
            check_once_in_order(view, pod_id, cids)
            for cid in cids:
                assert view.kinds(cid) == [C.CONTAINER_STARTED, C.CONTAINER_EXITED,
                                           C.CONTAINER_REMOVED], view.about(cids)
        # Each client reconnected and said so (RECONNECTING, then READY on a new
        # generation); no renegotiation, nothing terminal, the same version pinned.
        for c, connection, version in ((client, conn, aiocri.V1),
                                       (pinned, old_conn, aiocri.V1ALPHA2)):
            states = connection.states()
            assert (ConnectionState.RECONNECTING, before[version.name]) in states, states
            assert states[-1] == (ConnectionState.READY, c.generation), states
            assert not [e for e in connection.events if e.kind == "renegotiated"
                        or e.state is ConnectionState.RESTART_REQUIRED]
            assert c.version is version
            assert c.terminal_error is None
            assert c.runtime_version.runtime_api_version == version.name
        assert await ctd_pods(client) == set()


async def _upgrade(ctd: Containerd, client: aiocri.CRIClient, pinned: aiocri.CRIClient,
                   pod_id: str, cids: list[str], bin_17: Path | None
                   ) -> tuple[Seen, Seen, Connection, Connection, dict[str, int]]:
    """Watch the pod through the switch to 1.7 and a stop after it, until its removal."""
    seen, old_seen = Seen(), Seen()
    conn, old_conn = Connection(client), Connection(pinned)
    async with Poller(client, period=0.05, resync_period=math.inf) as poller, \
            Poller(pinned, period=0.05) as old_poller, anyio.create_task_group() as tg:
        for task in (conn.record, old_conn.record):
            tg.start_soon(task)
        tg.start_soon(seen.consume, poller)
        tg.start_soon(old_seen.consume, old_poller)
        for view in (seen, old_seen):
            for cid in cids:
                await until(view.has(C.CONTAINER_STARTED, cid), f"{cid} started")
        assert poller.stats.mode == "relist"  # 1.6: no GetContainerEvents
        before = {"v1": client.generation, "v1alpha2": pinned.generation}
        reported = (len(seen.events), len(old_seen.events))

        await ctd.aswitch_to(bin_17)  # SIGTERM, then 1.7 on the same root and socket
        assert ctd.version.startswith("1.7.")

        # Both clients redial and re-check their version: the answer is 1.7's.
        for c in (client, pinned):
            await until(partial(_checked_against, c, ctd.version),
                        "the client's version check against 1.7")
        assert client.generation > before["v1"]
        assert pinned.generation > before["v1alpha2"]
        # The v1 poller follows the event stream by itself; the pinned one relists.
        await until(lambda: poller.stats.mode == "events" and poller.stats.stream_opens >= 1,
                    "the poller's event mode")
        assert old_poller.stats.mode == "relist"
        # The containers survived, and neither poller reports them again.
        assert await running_ids(client, pod_id) == set(cids)
        assert await running_ids(pinned, pod_id) == set(cids)
        await barrier(client, ctd, seen)
        await until(lambda: (old_poller.stats.last_relist_at or 0) > seen.events[-1].at,
                    "a relist of the pinned client's poller on 1.7")
        ours = {pod_id, *cids}
        assert not [e for e in seen.events[reported[0]:] if e.id in ours]
        assert not [e for e in old_seen.events[reported[1]:] if e.id in ours]

        # A change on 1.7 comes through the stream, and to the pinned poller.
        streamed = poller.stats.runtime_events
        await stop(client, cids[0], seen, old_seen)
        assert poller.stats.runtime_events > streamed
        # The pinned client's calls work on 1.7, on v1alpha2.
        status = await pinned.runtime.container_status(
            ContainerStatusRequest(container_id=cids[1]))
        assert status.status.state == ContainerState.CONTAINER_RUNNING
        assert (await pinned.runtime.version()).runtime_api_version == "v1alpha2"
        # exits seen before the removals (a relist reports only the steps it sees)
        await stop(pinned, cids[1], seen, old_seen)

        await remove_pod(client, ctd, pod_id)
        for view in (seen, old_seen):
            await until(view.has(C.POD_REMOVED, pod_id), "the pod's removal")
        assert (poller.stats.mode, old_poller.stats.mode) == ("events", "relist")
        tg.cancel_scope.cancel()
    return seen, old_seen, conn, old_conn, before


def _checked_against(client: aiocri.CRIClient, version: str) -> bool:
    """READY, with the answer to a version check from the runtime ``version``."""
    return (client.state is ConnectionState.READY
            and client.runtime_version.runtime_version == version)


async def ctd_pods(client: aiocri.CRIClient) -> set[str]:
    return {p.id for p in (await client.runtime.list_pod_sandbox()).items}


async def test_downgrade_17_to_16_loses_nothing(bin_17: Path | None) -> None:
    async with private_containerd("1.7") as ctd, aiocri.connect(ctd.endpoint) as client:
        seen = Seen()
        async with Poller(client, period=0.05, resync_period=math.inf) as poller, \
                anyio.create_task_group() as tg:
            tg.start_soon(seen.consume, poller)
            await until(lambda: poller.stats.mode == "events", "the poller's event mode")
            pod = await run_pod(client, ctd, "downgrade")
            pod_id = pod[0]
            try:
                stays = await new_container(client, pod, "stays")
                quits = await new_container(client, pod, "quits", EXIT_ON_FILE)
                for cid in (stays, quits):
                    await until(seen.has(C.CONTAINER_STARTED, cid), f"{cid} started")
                generation = client.generation

                # 1.7 stops; the container exits while no runtime runs; 1.6 starts.
                await ctd.akill(signal.SIGTERM)
                pid = let_exit(ctd, quits)
                await until(lambda: not ctd.process_alive(pid), "the exit while down")
                await anyio.to_thread.run_sync(ctd.use_binaries, None)
                await ctd.alaunch()
                assert ctd.version.startswith("1.6.")
                late = await new_container(client, pod, "late")  # once 1.6 is back

                await until(lambda: client.generation > generation
                            and poller.stats.mode == "relist", "the fall back to relisting")
                await until(seen.has(C.CONTAINER_EXITED, quits), "the exit while down")
                await until(seen.has(C.CONTAINER_STARTED, late), "the late container")
                assert seen.one(C.CONTAINER_EXITED, quits).exit_code == \
                    await exit_code(client, quits)
                assert await running_ids(client, pod_id) == {stays, late}
                # and changes on 1.6 keep coming, by relist
                for cid in (stays, late):
                    await stop(client, cid, seen)
            finally:
                await remove_pod(client, ctd, pod_id)
            await until(seen.has(C.POD_REMOVED, pod_id), "the pod's removal")
            assert poller.stats.mode == "relist"
            tg.cancel_scope.cancel()
        cids = (stays, quits, late)
        check_once_in_order(seen, pod_id, cids)
        assert seen.kinds(stays) == [C.CONTAINER_CREATED, C.CONTAINER_STARTED,
                                     C.CONTAINER_EXITED, C.CONTAINER_REMOVED]
        assert seen.kinds(quits) == [C.CONTAINER_CREATED, C.CONTAINER_STARTED,
                                     C.CONTAINER_EXITED, C.CONTAINER_REMOVED]
        # relisted: created and started between two relists shows as started only
        assert seen.kinds(late)[-3:] == [C.CONTAINER_STARTED, C.CONTAINER_EXITED,
                                         C.CONTAINER_REMOVED], seen.kinds(late)
        for cid in (stays, late):
            assert seen.one(C.CONTAINER_EXITED, cid).exit_code == 128 + signal.SIGKILL
        assert client.version is aiocri.V1 and client.terminal_error is None
        assert client.runtime_version.runtime_version == ctd.version
        assert await ctd_pods(client) == set()
