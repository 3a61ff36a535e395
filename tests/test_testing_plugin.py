"""aiocri.testing as users get it: the pytest plugin's fixtures, FakeRuntime() with no
path, rt.connect(), and the wait helpers. The first test is the README's example."""

from __future__ import annotations

import os

import anyio
import pytest

import aiocri
from aiocri.testing import FakeRuntime, wait_for, wait_for_state

# -- the README's "Testing your controller" example, verbatim ------------------------------

async def count_exits(client: aiocri.CRIClient, seen: list[int]) -> None:
    """The code under test: a controller that records each container exit's code."""
    async with aiocri.Poller(client, period=0.1) as poller:
        async for event in poller:
            if event.kind is aiocri.EventKind.CONTAINER_EXITED:
                seen.append(event.exit_code or 0)


@pytest.mark.anyio
@pytest.mark.cri_runtime(pods=1, containers_per_pod=2)
async def test_controller_sees_a_crash(cri_runtime: FakeRuntime,
                                       cri_client: aiocri.CRIClient) -> None:
    seen: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(count_exits, cri_client, seen)
        crashing = next(iter(cri_runtime.state.containers))
        cri_runtime.state.exit_container(crashing, exit_code=3)
        await wait_for(lambda: seen == [3], what="the controller seeing the exit")
        tg.cancel_scope.cancel()

# -- end of the example -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.cri_runtime(versions=["v1"], pods=2, containers_per_pod=3)
async def test_the_marker_shapes_the_runtime(cri_runtime: FakeRuntime,
                                             cri_client: aiocri.CRIClient) -> None:
    assert cri_client.version is aiocri.V1
    assert [v.name for v in cri_runtime.versions] == ["v1"]
    listed = await cri_client.runtime.list_containers()
    assert len(listed.containers) == 6
    assert len(os.path.basename(cri_runtime.socket_path)) < 20
    assert len(cri_runtime.socket_path) < 100  # unix socket paths are short


@pytest.mark.anyio
async def test_the_factory_and_the_defaults(cri_runtime: FakeRuntime,
                                            cri_runtime_factory: object) -> None:
    assert not cri_runtime.state.containers  # no marker: an empty runtime
    other = await cri_runtime_factory(versions=["v1alpha2"])  # type: ignore[operator]
    assert other.socket_path != cri_runtime.socket_path
    async with other.connect() as client:
        assert client.version is aiocri.V1ALPHA2


@pytest.mark.anyio
async def test_fake_runtime_without_a_path_cleans_up() -> None:
    async with FakeRuntime() as rt:
        folder = os.path.dirname(rt.socket_path)
        assert os.path.exists(rt.socket_path)
        client = await rt.connect(timeout=5)
        try:
            await client.runtime.version()
            await rt.kill()
            await wait_for_state(client, aiocri.ConnectionState.RECONNECTING)
            await rt.start()
            await wait_for_state(client, aiocri.ConnectionState.READY)
        finally:
            await client.aclose()
    assert not os.path.exists(folder)


@pytest.mark.anyio
async def test_wait_for_says_what_did_not_happen() -> None:
    calls = []

    async def never() -> bool:
        calls.append(1)
        return False

    with pytest.raises(TimeoutError, match="the moon landing did not hold within 0.05 s"):
        await wait_for(never, timeout=0.05, what="the moon landing")
    assert calls


def test_a_bad_argument_leaves_no_folder() -> None:
    import glob

    before = set(glob.glob("/tmp/cri-*"))
    with pytest.raises(ValueError, match="v9"):
        FakeRuntime(versions=["v9"])
    assert set(glob.glob("/tmp/cri-*")) == before
