"""The dialer: the slow-check rule as a table, and its bounds against a real fake runtime
(a redial gives up on time however long its checks, a close ends a connect at once)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

import aiocri
from aiocri._dialer import SLOW_CHECK_CAP, slow_check_timeout
from aiocri.testing import FakeRuntime

pytestmark = pytest.mark.anyio


def test_slow_check_timeout_grows_then_stops_growing() -> None:
    assert slow_check_timeout(2.0, 0) == 2.0
    assert slow_check_timeout(2.0, 1) == 4.0
    assert slow_check_timeout(2.0, 3) == 16.0
    assert slow_check_timeout(2.0, 10) == SLOW_CHECK_CAP
    assert slow_check_timeout(60.0, 5) == 60.0  # never below the policy's own
    assert slow_check_timeout(0.1, 10**6) == SLOW_CHECK_CAP  # no overflow


async def test_a_redial_gives_up_on_time_however_long_its_checks(runtime: FakeRuntime) -> None:
    """Checks that grow after slow answers never run past give_up_after."""
    policy = aiocri.RedialPolicy(attempt_timeout=0.3, initial=0.01, give_up_after=1.5)
    async with runtime.connect(redial=policy) as client:
        runtime.inject_latency("Version", 60)  # every check runs out of time
        lost_at = time.monotonic()
        await runtime.restart(down_for=0.0)
        with anyio.fail_after(30), pytest.raises(aiocri.ConnectFailed, match="gave up"):
            await client.restart_required()
        # the last check may start just before the limit: at most one attempt beyond
        assert time.monotonic() - lost_at < 1.5 + 2 * 0.3 + 1.0


async def test_closing_a_client_ends_its_connect_at_once(sock_dir: Path) -> None:
    """A connect waiting on a slow Version ends as soon as another task closes."""
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt:
        rt.inject_latency("Version", 60)
        policy = aiocri.RedialPolicy(attempt_timeout=20, connect_timeout=60)
        opening = rt.connect(redial=policy)
        made = opening._client  # the client connect() returns, before it is open
        ended_at: list[float] = []

        async def connect() -> None:
            with pytest.raises(aiocri.ClientClosed):
                await opening
            ended_at.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(connect)
            with anyio.fail_after(10):
                while rt.calls["Version"] == 0:  # the check is in flight
                    await anyio.sleep(0.01)
            closed_at = time.monotonic()
            await made.aclose()
        assert ended_at and ended_at[0] - closed_at < 5.0  # not the check's 20 s
