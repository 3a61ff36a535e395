"""aiocri's pytest plugin (registered by the package; nothing to configure).

Fixtures, for tests marked ``@pytest.mark.anyio`` (anyio's plugin runs them on asyncio):

They need anyio's pytest plugin (installed with anyio); ``anyio_backend`` must be
"asyncio" (grpc.aio runs on asyncio only), which is anyio's default. A plain (sync)
test that asks for them errors at set-up: the runtime's event loop would not run during
the test, so it would never answer.

``cri_runtime``
    A started :class:`FakeRuntime` on a short socket path of its own, stopped after the
    test. Shape it with the marker ``@pytest.mark.cri_runtime(versions=["v1"], pods=2,
    containers_per_pod=3, images=[...])`` (``pods``/``containers_per_pod`` populate it).
``cri_client``
    A :class:`~aiocri.CRIClient` connected to ``cri_runtime``, closed after the test.
``cri_runtime_factory``
    ``await cri_runtime_factory(**FakeRuntime options)``: more runtimes, all stopped after
    the test.

With :func:`~aiocri.testing.wait_for` and :func:`~aiocri.testing.wait_for_state` instead of
sleeps, a test of a controller reads::

    @pytest.mark.anyio
    @pytest.mark.cri_runtime(pods=1, containers_per_pod=1)
    async def test_restarts_are_seen(cri_runtime, cri_client):
        ...
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiocri.client import CRIClient
from aiocri.testing.fake_runtime import FakeRuntime

__all__ = ["cri_client", "cri_runtime", "cri_runtime_factory"]

_MARKER = "cri_runtime"
_POPULATE = ("pods", "containers_per_pod")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): options of the cri_runtime fixture's FakeRuntime "
        "(versions=, images=, ..., and pods=/containers_per_pod= to populate it)",
    )


RuntimeFactory = Callable[..., Awaitable[FakeRuntime]]


@pytest.fixture
def _cri_async_test(request: pytest.FixtureRequest) -> None:
    """Refuse a sync test: the fake runtime serves only while the test's event loop runs."""
    test = getattr(request.node, "obj", None)
    test = getattr(getattr(test, "hypothesis", None), "inner_test", test)  # @given
    if not inspect.iscoroutinefunction(test):
        pytest.fail(
            f"{request.node.name}: the cri_runtime fixtures need an async test (async def, "
            "marked @pytest.mark.anyio); in a plain test the fake runtime's event loop "
            "does not run, so it would never answer",
            pytrace=False,
        )


@pytest.fixture
async def cri_runtime_factory(anyio_backend: object,
                              _cri_async_test: None) -> AsyncIterator[RuntimeFactory]:
    """Start fake runtimes with any options; all are stopped after the test."""
    started: list[FakeRuntime] = []

    async def make(**options: Any) -> FakeRuntime:
        shape = {key: options.pop(key) for key in _POPULATE if key in options}
        runtime = FakeRuntime(**options)
        await runtime.__aenter__()
        started.append(runtime)
        if shape:
            runtime.populate(shape.get("pods", 1), shape.get("containers_per_pod", 0))
        return runtime

    try:
        yield make
    finally:
        errors = []
        for runtime in reversed(started):  # each one stopped, whatever the others do
            try:
                await runtime.__aexit__(None, None, None)
            except Exception as exc:  # reported below, after the others stopped
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
async def cri_runtime(request: pytest.FixtureRequest,
                      cri_runtime_factory: RuntimeFactory) -> FakeRuntime:
    """A started fake runtime, shaped by the ``cri_runtime`` marker."""
    marker = request.node.get_closest_marker(_MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    return await cri_runtime_factory(**options)


@pytest.fixture
async def cri_client(cri_runtime: FakeRuntime) -> AsyncIterator[CRIClient]:
    """A client connected to ``cri_runtime``."""
    async with cri_runtime.connect() as client:
        yield client
