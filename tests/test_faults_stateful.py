"""A stateful, property-based fault test of one client against the fake runtime.

Hypothesis drives random steps (calls of several kinds with random deadlines
from 0 to none at all, restarts by kill or stop with the socket kept or removed,
upgrades that keep or drop the pinned version, a client that renegotiates while
versions flap, a Version slower than the probe's deadline, a hung runtime
whose socket accepts and never answers, injected status codes and latency,
close from another task) and checks after every step that each call returned
or raised a CRIError within its deadline + 0.5 s, that nothing else reached a
caller, that the connection changed state only along the documented diagram,
that a renegotiating client and its poller never fail, and, at the end, that
no task, channel or fd of the client outlives it.

The event loop runs in a thread of its own, so calls go on between steps as
they would in a program. ``make test`` runs a short profile; ``make soak``
(``AIOCRI_SOAK=1``) a long one.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import aiocri
from aiocri import api
from aiocri._events import TRANSITIONS
from aiocri.poller import Poller
from aiocri.testing import FakeRuntime

T = TypeVar("T")
SOAK = os.environ.get("AIOCRI_SOAK") == "1"
SLACK = 0.5  # what a call may take beyond its deadline
POLICY = aiocri.RedialPolicy(initial=0.02, maximum=0.2, attempt_timeout=0.5, connect_timeout=2.0)
CODES = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]
RPCS = ["ListContainers", "ContainerStatus", "Version", "StopContainer", "GetContainerEvents"]
KINDS = ["list", "status", "version", "stop", "events"]


class LoopThread:
    """An asyncio loop running in a thread; steps submit coroutines to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Call:
    kind: str
    deadline: float
    started: float
    finished: float | None = None
    outcome: object = None


def _our_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("aiocri")]


def _channels() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, grpc.aio.Channel))


class ClientUnderFaults(RuleBasedStateMachine):
    loop: LoopThread

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="cri-", dir="/tmp")
        self.rt = FakeRuntime(os.path.join(self.dir, "rt.sock"), versions=("v1", "v1alpha2"))
        self.client: aiocri.CRIClient | None = None
        self.calls: list[Call] = []
        self.bad_transitions: list[tuple[str, str]] = []
        self.container_ids: list[str] = []
        self.before: tuple[int, int] = (0, 0)
        self.recorders: set[asyncio.Task[None]] = set()
        self.renegotiate = False
        self.poller_errors: list[BaseException] = []

    # -- helpers (run on the loop) ---------------------------------------------------

    async def _connect(self) -> None:
        try:
            client = await aiocri.connect(
                self.rt.endpoint, redial=POLICY,
                on_version_loss="renegotiate" if self.renegotiate else "fail")
        except aiocri.CRIError:
            return  # e.g. the runtime is down or serves nothing: a later step retries
        self.client = client
        self.recorders.add(asyncio.create_task(self._record_states(client), name="test: states"))
        if self.renegotiate:
            self.recorders.add(asyncio.create_task(self._poll(client), name="test: poller"))

    async def _poll(self, client: aiocri.CRIClient) -> None:
        """A poller on the renegotiating client: never an InternalError, never
        RestartRequired while the runtime serves a version the client speaks."""
        try:
            async with Poller(client, period=0.05) as poller:
                async for _ in poller:
                    pass
        except aiocri.InternalError as exc:  # a bug of ours, or a renegotiation it missed
            self.poller_errors.append(exc)
        except aiocri.RestartRequired as exc:
            if exc.served:  # it should have moved to a version the runtime still serves
                self.poller_errors.append(exc)
        except aiocri.CRIError:
            pass  # the runtime's own answer (an injected code): the poller may end with it
        except BaseException as exc:  # anything else is a failure the invariant reports
            if not isinstance(exc, asyncio.CancelledError):
                self.poller_errors.append(exc)
            raise

    async def _record_states(self, client: aiocri.CRIClient) -> None:
        async for event in client.events():
            if event.kind == "state":
                previous = event.previous
                assert previous is not None
                if (previous, event.state) not in TRANSITIONS:
                    self.bad_transitions.append((previous.value, event.state.value))

    def _invoke(self, client: aiocri.CRIClient, kind: str, deadline: float) -> Awaitable[object]:
        rt = client.runtime
        cid = self.container_ids[0] if self.container_ids else "missing"
        if kind == "list":
            return rt.list_containers(timeout=deadline)
        if kind == "status":
            return rt.container_status(api.ContainerStatusRequest(container_id=cid),
                                       timeout=deadline)
        if kind == "version":
            return rt.version(timeout=deadline)
        if kind == "stop":
            return rt.stop_container(api.StopContainerRequest(container_id=cid), timeout=deadline)

        async def events() -> object:
            n = 0
            async for _ in rt.get_container_events(timeout=deadline):
                n += 1
            return n

        return events()

    async def _call(self, call: Call, make: Callable[[], Awaitable[object]]) -> None:
        try:
            call.outcome = await make()
        except BaseException as exc:
            call.outcome = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            call.finished = time.monotonic()

    # -- steps -------------------------------------------------------------------------

    @initialize(renegotiate=st.booleans())
    def start(self, renegotiate: bool) -> None:
        self.renegotiate = renegotiate

        async def go() -> None:
            await self.rt.start()
            made = self.rt.populate(pods=2, containers_per_pod=2)
            self.container_ids = list(made.container_ids)
            await self._connect()
            assert self.client is not None

        self.before = (_channels(), len(os.listdir("/proc/self/fd")))
        self.loop.run(go())

    @rule(kind=st.sampled_from(KINDS), n=st.integers(1, 20),
          deadline=st.one_of(st.floats(0.05, 2.0), st.sampled_from([0.0, 1e10, math.inf])))
    def calls(self, kind: str, n: int, deadline: float) -> None:
        client = self.client
        if client is None:
            return

        def submit() -> None:
            for _ in range(n):
                call = Call(kind, deadline, time.monotonic())
                self.calls.append(call)
                self.loop.loop.create_task(
                    self._call(call, lambda: self._invoke(client, kind, deadline)),
                    name="test: call")

        self.loop.loop.call_soon_threadsafe(submit)

    @rule(kill=st.booleans(), socket_kept=st.booleans(), down_for=st.floats(0.0, 0.3))
    def restart(self, kill: bool, socket_kept: bool, down_for: float) -> None:
        async def go() -> None:
            if not self.rt.serving:
                await self.rt.start()
            if kill:
                await self.rt.kill()  # connections dropped with no goodbye, stale socket
                if not socket_kept:
                    os.unlink(self.rt.socket_path)
            else:
                await self.rt.stop(grace=0.05 if socket_kept else 0.0)
            await asyncio.sleep(down_for)
            if os.path.lexists(self.rt.socket_path):
                os.unlink(self.rt.socket_path)  # grpc replaces a stale socket; be explicit
            await self.rt.start()

        self.loop.run(go())

    @rule(keep=st.booleans(), down_for=st.floats(0.0, 0.2))
    def upgrade(self, keep: bool, down_for: float) -> None:
        client = self.client
        pinned = client.version.name if client is not None else "v1"
        other = "v1alpha2" if pinned == "v1" else "v1"
        versions = ("v1", "v1alpha2") if keep else (other,)
        self.loop.run(self.rt.upgrade(versions, down_for=down_for))

    @rule(rpc=st.sampled_from(RPCS), code=st.sampled_from(CODES), count=st.integers(1, 5))
    def inject_error(self, rpc: str, code: grpc.StatusCode, count: int) -> None:
        self.loop.loop.call_soon_threadsafe(
            lambda: self.rt.inject_errors(rpc, code, count=count))

    @rule(rpc=st.sampled_from(RPCS), seconds=st.floats(0.05, 1.5))
    def inject_latency(self, rpc: str, seconds: float) -> None:
        self.loop.loop.call_soon_threadsafe(lambda: self.rt.inject_latency(rpc, seconds))

    @rule()
    def clear_injections(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.rt.clear_injections)

    @rule(seconds=st.floats(POLICY.attempt_timeout * 1.2, POLICY.attempt_timeout * 3))
    def slow_version(self, seconds: float) -> None:
        """Version answers slower than the probe's deadline (a runtime restoring pods)."""
        self.loop.loop.call_soon_threadsafe(lambda: self.rt.inject_latency("Version", seconds))

    @rule(hung_for=st.floats(0.1, 1.0))
    def hang(self, hung_for: float) -> None:
        """The runtime stops answering: its socket accepts connections, nothing replies."""
        async def go() -> None:
            if self.rt.serving:
                await self.rt.stop()
            path = self.rt.socket_path
            if os.path.lexists(path):
                os.unlink(path)
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                silent.bind(path)
                silent.listen(64)  # the kernel accepts; nobody reads
                await asyncio.sleep(hung_for)
            finally:
                silent.close()
                os.unlink(path)
            await self.rt.start()

        self.loop.run(go())

    @rule(seconds=st.floats(0.0, 0.4))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    @precondition(lambda self: self.client is not None)
    @rule()
    def close_from_another_task(self) -> None:
        client = self.client
        assert client is not None

        async def close() -> None:
            closer = asyncio.create_task(client.aclose())  # its own task, not the opener's
            await asyncio.wait_for(closer, timeout=5)

        self.loop.run(close())
        assert client.state is aiocri.ConnectionState.CLOSED
        self.client = None

    @rule()
    def reconnect(self) -> None:
        # Not a precondition: terminal_error changes in the background, and hypothesis
        # needs the rules it may draw to depend on drawn data only.
        if self.client is not None and self.client.terminal_error is None:
            return

        async def go() -> None:
            if self.client is not None:
                await self.client.aclose()
                self.client = None
            self.rt.clear_injections()
            await self._connect()

        self.loop.run(go())

    # -- what must hold after every step -----------------------------------------------

    @invariant()
    def calls_end_in_time_with_a_result_or_a_cri_error(self) -> None:
        now = time.monotonic()
        for call in self.calls:
            if call.finished is None:
                assert now - call.started <= min(call.deadline, 1e9) + SLACK + 0.25, (
                    f"{call.kind} call still running {now - call.started:.2f} s after its "
                    f"start (deadline {call.deadline:.2f} s)")
                continue
            took = call.finished - call.started
            assert took <= call.deadline + SLACK, (call.kind, took, call.deadline, call.outcome)
            outcome = call.outcome
            assert not isinstance(outcome, BaseException) or isinstance(
                outcome, aiocri.CRIError), f"{call.kind} raised {outcome!r}"

    @invariant()
    def states_follow_the_diagram(self) -> None:
        assert not self.bad_transitions, self.bad_transitions

    @invariant()
    def a_renegotiating_client_and_its_poller_never_fail(self) -> None:
        assert not self.poller_errors, self.poller_errors
        if self.renegotiate:
            # RestartRequired only when the runtime answered that it serves nothing we
            # speak (an injected UNIMPLEMENTED on Version): never while it serves one
            assert not any(isinstance(c.outcome, aiocri.RestartRequired) and c.outcome.served
                           for c in self.calls)

    def teardown(self) -> None:
        async def go() -> None:
            if self.client is not None:
                await self.client.aclose()
                self.client = None
            deadline = time.monotonic() + 2.0 + SLACK
            while any(c.finished is None for c in self.calls) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if self.recorders:  # the state recorders and pollers end with their clients
                await asyncio.wait(self.recorders, timeout=5)
            leftover = _our_tasks()
            await self.rt.stop()
            assert not leftover, leftover

        try:
            self.loop.run(go())
            self.calls_end_in_time_with_a_result_or_a_cri_error()
            assert all(c.finished is not None for c in self.calls)
            assert _channels() <= self.before[0], "a channel outlived the client"
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def loop_thread() -> Any:
    loop = LoopThread()
    yield loop
    loop.close()


def _settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not SOAK,  # the short profile is the same run every time
    )


@pytest.mark.timeout(600)
def test_client_under_random_faults(loop_thread: LoopThread) -> None:
    ClientUnderFaults.loop = loop_thread
    if SOAK:
        run_state_machine_as_test(ClientUnderFaults, settings=_settings(120, 30))
    else:
        run_state_machine_as_test(ClientUnderFaults, settings=_settings(25, 15))


def test_fds_are_flat_over_many_clients(loop_thread: LoopThread) -> None:
    """Connect/close cycles with a restart in each leave no fd behind."""
    tmp = tempfile.mkdtemp(prefix="cri-", dir="/tmp")
    rt = FakeRuntime(os.path.join(tmp, "rt.sock"))

    async def cycle() -> None:
        client = await aiocri.connect(rt.endpoint, redial=POLICY)
        try:
            await client.runtime.version()
            await rt.restart(down_for=0.0)
            await client.runtime.version(timeout=5)
        finally:
            await client.aclose()

    try:
        loop_thread.run(rt.start())
        for _ in range(3):
            loop_thread.run(cycle())  # warm-up: grpc's own process-wide fds
        fds = len(os.listdir("/proc/self/fd"))
        for _ in range(20 if not SOAK else 200):
            loop_thread.run(cycle())
        assert len(os.listdir("/proc/self/fd")) - fds <= 5
    finally:
        loop_thread.run(rt.stop())
        shutil.rmtree(tmp, ignore_errors=True)
