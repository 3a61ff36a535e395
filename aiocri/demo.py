"""``aiocri demo``: version pinning, redial and restart-required, live, on the fake runtime.

Everything runs in this process on a temporary socket (no root, no containerd):

1. a fake runtime serving only CRI ``v1alpha2`` with a few hundred containers;
2. ``aiocri.connect()`` negotiates and pins ``v1alpha2``;
3. a :class:`~aiocri.poller.Poller` relists (``v1alpha2`` has no event stream) and
   reports scripted container exits, restarts and removals;
4. the runtime restarts: the client redials; concurrent ContainerStatus callers run
   through it and none fails; recovery is measured from the socket's return to the
   first successful call;
5. the runtime is upgraded to serve ``v1`` only: the client signals restart-required
   (measured from the socket's return to the signal);
6. a new client negotiates ``v1`` and the poller follows GetContainerEvents.

It ends with a summary of each step's expectation and what was measured, and
exits 0 only if every expectation held. ``quick`` shortens it to about 10 s.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

import aiocri
from aiocri import api
from aiocri.client import CRIClient
from aiocri.errors import CRIError, RestartRequired
from aiocri.poller import EventKind, LifecycleEvent, Poller
from aiocri.testing import FakeRuntime

__all__ = ["Demo", "Step", "main", "run_demo"]

_CALLERS = 8  # concurrent ContainerStatus callers during the runtime restart
_EXIT_CODES = (1, 0, 137, 2, 143)


@dataclass
class Step:
    """One row of the summary."""

    name: str
    expected: str
    observed: str = "not run"
    ok: bool | None = None


@dataclass
class _Expect:
    """A change the demo made and waits to see reported."""

    kind: EventKind
    id: str
    label: str
    started: float
    exit_code: int | None = None
    seen: anyio.Event = field(default_factory=anyio.Event)
    latency: float | None = None
    code_ok: bool = True


@dataclass
class _Pacing:
    pods: int
    containers_per_pod: int
    period: float  # the poller's relist period
    rounds: int  # rounds of scripted changes per polling phase
    per_round: int  # containers exited (then restarted) per round
    pause: float  # between rounds, for the eye
    down_for: float  # the runtime restart's outage
    upgrade_down_for: float
    calls_after: float  # callers keep going this long after recovery
    wait: float  # longest wait for any expected report
    observe: float  # a pause after a phase, to watch the live view


_QUICK = _Pacing(pods=30, containers_per_pod=10, period=0.25, rounds=2, per_round=3,
                 pause=0.3, down_for=1.0, upgrade_down_for=0.5, calls_after=0.5, wait=10.0,
                 observe=0.3)
_FULL = _Pacing(pods=30, containers_per_pod=10, period=1.0, rounds=4, per_round=4,
                pause=4.0, down_for=2.0, upgrade_down_for=1.0, calls_after=3.0, wait=15.0,
                observe=3.0)


class Demo:
    """The demo's script and its live view; :meth:`run` returns the summary's steps."""

    def __init__(self, *, quick: bool = False, pods: int | None = None,
                 containers_per_pod: int | None = None, console: Console | None = None) -> None:
        base = _QUICK if quick else _FULL
        self.pace = replace(
            base,
            pods=pods if pods is not None else base.pods,
            containers_per_pod=(containers_per_pod if containers_per_pod is not None
                                else base.containers_per_pod),
        )
        self.quick = quick
        self.console = console or Console(highlight=False)
        self.steps: list[Step] = []
        self._rng = random.Random(7)
        self._codes: Iterator[int] = itertools.cycle(_EXIT_CODES)
        self._t0 = time.monotonic()
        self._live: Live | None = None
        # What the live view shows.
        self._phase = "starting"
        self.rt: FakeRuntime | None = None
        self.client: CRIClient | None = None
        self.poller: Poller | None = None
        self.calls_ok = 0
        self.calls_failed = 0
        self.reported = 0
        # Bookkeeping.
        self._expect: dict[tuple[EventKind, str], _Expect] = {}
        # A poller's first relist reports everything that exists, all with one time stamp:
        # the demo counts those events and does not list them.
        self._quiet_until: float | None = None
        self._reserved: set[str] = set()  # containers the callers use: never scripted
        self._labels: dict[str, str] = {}
        self._unexpected: list[LifecycleEvent] = []  # reports of changes nobody made
        self._t_up: float | None = None
        self._recovered: anyio.Event = anyio.Event()
        self._first_ok_after_up: float | None = None
        self._failures: list[str] = []
        self._signal_at: float | None = None
        self._signal: CRIError | None = None
        self._poller_error: BaseException | None = None

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, text: str) -> None:
        # each numbered step is also a line of the log, so that the record matches the view
        if text != self._phase and text[:1].isdigit():
            self.say(f"step {text}", "bold")
        self._phase = text

    # -- output -------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        stamp = f"[{time.monotonic() - self._t0:6.2f}s] "
        self.console.print(Text.assemble((stamp, "dim"), (text, style)), soft_wrap=True)

    def _view(self) -> Group:
        rt, client, poller = self.rt, self.client, self.poller
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("phase", self.phase)
        if rt is not None:
            served = ("serving " + ",".join(v.name for v in rt.versions) if rt.serving
                      else "DOWN")
            grid.add_row("runtime", f"{rt.endpoint}  {served}  "
                         f"{len(rt.state.pods)} pods, {len(rt.state.containers)} containers")
        if client is not None:
            stats = client.stats
            grid.add_row("client", f"{client.state.value}, pinned CRI {client.version.name}, "
                         f"{stats.redials} redial(s) in {stats.redial_attempts} attempt(s), "
                         f"{stats.calls} calls")
        if poller is not None:
            snap = poller.snapshot
            running = sum(1 for c in snap.containers.values()
                          if c.state == api.CONTAINER_RUNNING)
            grid.add_row("poller", f"mode {poller.stats.mode}, {len(snap.pods)} pods, "
                         f"{len(snap.containers)} containers ({running} running), "
                         f"{poller.stats.relists} relists")
        grid.add_row("reported", f"{self.reported} changes")
        if self.calls_ok or self.calls_failed:
            grid.add_row("callers", f"{self.calls_ok} ok, {self.calls_failed} failed")
        return Group(Text("aiocri demo", style="bold underline"), grid)

    async def _refresh(self) -> None:
        while True:
            if self._live is not None:
                self._live.update(self._view(), refresh=True)
            await anyio.sleep(0.25)

    def _summary(self) -> Table:
        table = Table(title="aiocri demo: summary", show_lines=False, expand=False)
        table.add_column("#", justify="right")
        table.add_column("step", style="bold")
        table.add_column("expected")
        table.add_column("observed")
        table.add_column("result")
        for i, step in enumerate(self.steps, 1):
            result = {True: Text("ok", "green"), False: Text("FAILED", "bold red"),
                      None: Text("not run", "yellow")}[step.ok]
            table.add_row(str(i), step.name, step.expected, step.observed, result)
        return table

    # -- the script -----------------------------------------------------------------------

    async def run(self) -> list[Step]:
        p = self.pace
        self.steps = [
            Step("fake runtime", f"serves CRI v1alpha2 only, {p.pods * p.containers_per_pod} "
                 "containers"),
            Step("connect", "negotiates and pins v1alpha2"),
            Step("poll (relist)", "first relist lists every pod and container"),
            Step("changes (relist)", "every scripted exit, start, removal reported once"),
            Step("runtime restart", "client redials; no concurrent call fails"),
            Step("poll after restart", "changes still reported, none repeated"),
            Step("upgrade to v1 only", "client signals restart-required"),
            Step("client restart", "a new connect() negotiates v1"),
            Step("changes (events)", "poller follows GetContainerEvents; every change reported"),
        ]
        workdir = tempfile.mkdtemp(prefix="aiocri-demo-", dir="/tmp")
        try:
            with Live(self._view(), console=self.console, auto_refresh=False,
                      transient=False) as live:
                self._live = live
                async with anyio.create_task_group() as ui:
                    ui.start_soon(self._refresh)
                    try:
                        with anyio.fail_after(240 if not self.quick else 90):
                            await self._script(f"{workdir}/cri.sock")
                    except Exception as exc:  # a step blew up: say so, keep the summary
                        self._fail_current(exc)
                    finally:
                        ui.cancel_scope.cancel()
                self.phase = "done"
                live.update(self._view(), refresh=True)
                self._live = None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.console.print()
        self.console.print(self._summary())
        return self.steps

    def _fail_current(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            text = "the demo took too long and was stopped"
        for step in self.steps:
            if step.ok is None:
                step.ok, step.observed = False, text
                break
        self.say(f"step failed: {text}", "bold red")

    async def _script(self, socket_path: str) -> None:
        p = self.pace
        steps = iter(self.steps)

        # 1. The runtime.
        step = next(steps)
        self.phase = "1/9 starting a fake runtime that serves only CRI v1alpha2"
        rt = self.rt = FakeRuntime(socket_path, versions=("v1alpha2",), seed=7,
                                   runtime_version="1.6.0")
        made = rt.populate(p.pods, p.containers_per_pod)
        async with rt:
            served = [v.name for v in rt.versions]
            step.observed = (f"serves {','.join(served)}; {len(made.pod_ids)} pods, "
                             f"{len(made.container_ids)} containers")
            step.ok = served == ["v1alpha2"]
            self.say(f"fake runtime up on {rt.endpoint}: {step.observed}")
            await self._first_client(rt, steps)
            await self._second_client(rt, steps)

    async def _first_client(self, rt: FakeRuntime, steps: Iterator[Step]) -> None:
        p = self.pace
        # 2. Connect.
        step = next(steps)
        self.phase = "2/9 connecting: the client negotiates like the kubelet (v1, then v1alpha2)"
        t = time.monotonic()
        async with aiocri.connect(rt.endpoint) as client:
            took = time.monotonic() - t
            self.client = client
            rv = client.runtime_version
            step.observed = (f"pinned {client.version.name} ({rv.runtime_name} "
                             f"{rv.runtime_version}) in {took * 1000:.0f} ms")
            step.ok = client.version.name == "v1alpha2"
            self.say(f"connected: {step.observed}")

            # 3. Poll.
            step = next(steps)
            self.phase = f"3/9 polling: relist every {p.period:g} s (v1alpha2 has no event stream)"
            async with Poller(client, period=p.period, mode="auto") as poller, \
                    anyio.create_task_group() as tg:
                self.poller = poller
                tg.start_soon(self._consume, poller)
                tg.start_soon(self._watch_connection, client)
                tg.start_soon(self._watch_restart_required, client)
                await self._synced(poller, step)

                # 4. Scripted changes.
                step = next(steps)
                self.phase = ("4/9 scripted changes: containers exit, restart as a new "
                              "attempt, the old ones are removed")
                await self._changes(step, p.rounds)

                # 5. Restart.
                step = next(steps)
                self.phase = "5/9 restarting the runtime under load"
                await self._restart(rt, client, step)

                # 6. Poll after restart.
                step = next(steps)
                self.phase = "6/9 polling after the restart: changes still reported"
                await self._changes(step, 1)

                # 7. Upgrade.
                step = next(steps)
                self.phase = "7/9 upgrading the runtime: it now serves CRI v1 only"
                await self._upgrade(rt, step)
                tg.cancel_scope.cancel()
            self.poller = None
        self.client = None

    async def _second_client(self, rt: FakeRuntime, steps: Iterator[Step]) -> None:
        p = self.pace
        # 8. A new client.
        step = next(steps)
        self.phase = "8/9 restarting the client: a new connect() negotiates again"
        t = time.monotonic()
        async with aiocri.connect(rt.endpoint) as client:
            took = time.monotonic() - t
            self.client = client
            step.observed = f"pinned {client.version.name} in {took * 1000:.0f} ms"
            step.ok = client.version.name == "v1"
            self.say(f"new client: {step.observed}")

            # 9. Event mode.
            step = next(steps)
            async with Poller(client, period=p.period, mode="auto") as poller, \
                    anyio.create_task_group() as tg:
                self.poller = poller
                tg.start_soon(self._consume, poller)
                tg.start_soon(self._watch_connection, client)
                await self._synced(poller, None)
                with anyio.move_on_after(p.wait):
                    while poller.stats.mode != "events":  # noqa: ASYNC110 (a stats field)
                        await anyio.sleep(0.02)
                await rt.wait_for_event_streams(1, timeout=p.wait)
                self.phase = "9/9 polling on v1: the poller follows GetContainerEvents"
                self.say(f"poller mode: {poller.stats.mode}")
                await self._changes(step, p.rounds)
                if poller.stats.mode != "events":
                    step.ok = False
                    step.observed = f"poller mode {poller.stats.mode}, not events; " + step.observed
                tg.cancel_scope.cancel()
            self.poller = None
        self.client = None

    # -- steps ------------------------------------------------------------------------------

    async def _synced(self, poller: Poller, step: Step | None) -> None:
        t = time.monotonic()
        with anyio.fail_after(self.pace.wait):
            await poller.wait_synced()
        snap = poller.snapshot
        assert self.rt is not None
        want_pods, want = len(self.rt.state.pods), len(self.rt.state.containers)
        text = (f"{len(snap.pods)} pods, {len(snap.containers)} containers in "
                f"{(time.monotonic() - t) * 1000:.0f} ms")
        self.say(f"poller synced ({poller.stats.mode}): {text}")
        if step is not None:
            step.observed = text
            step.ok = len(snap.pods) == want_pods and len(snap.containers) == want

    async def _changes(self, step: Step, rounds: int) -> None:
        """Rounds of: some containers exit; each restarts as a new attempt; the old one goes."""
        p = self.pace
        all_expected: list[_Expect] = []
        spurious = len(self._unexpected)
        for n in range(rounds):
            exits = self._exit_some(p.per_round)
            await self._wait_all(exits)
            restarts = self._restart_exited([e.id for e in exits])
            await self._wait_all(restarts)
            all_expected += exits + restarts
            if n + 1 < rounds:
                await anyio.sleep(p.pause)
        seen = [e for e in all_expected if e.seen.is_set()]
        codes_ok = all(e.code_ok for e in seen)
        latencies = [e.latency for e in seen if e.latency is not None]
        exits_seen = sum(1 for e in seen if e.kind is EventKind.CONTAINER_EXITED)
        exits_all = sum(1 for e in all_expected if e.kind is EventKind.CONTAINER_EXITED)
        median = statistics.median(latencies) * 1000 if latencies else float("nan")
        step.observed = (f"{len(seen)}/{len(all_expected)} reported ({exits_seen}/{exits_all} "
                         f"exits, codes {'right' if codes_ok else 'WRONG'}); median latency "
                         f"{median:.0f} ms")
        step.ok = len(seen) == len(all_expected) and codes_ok
        extra = self._unexpected[spurious:]
        if extra:
            step.ok = False
            step.observed += f"; {len(extra)} spurious report(s)"
        self.say(f"changes: {step.observed}", "" if step.ok else "bold red")
        await anyio.sleep(p.observe)

    def _exit_some(self, n: int) -> list[_Expect]:
        assert self.rt is not None
        state = self.rt.state
        running = sorted(c.id for c in state.running_containers() if c.id not in self._reserved)
        out = []
        for cid in self._rng.sample(running, min(n, len(running))):
            code = next(self._codes)
            container = state.containers[cid]
            label = f"{container.pod.config.metadata.name}/{container.name}"
            self._labels[cid] = label
            expect = self._add(EventKind.CONTAINER_EXITED, cid, label, exit_code=code)
            state.exit_container(cid, code, "OOMKilled" if code == 137 else None)
            self.say(f"  script: {label} ({cid[:12]}) exits with code {code}", "yellow")
            out.append(expect)
        return out

    def _restart_exited(self, ids: list[str]) -> list[_Expect]:
        """The kubelet's restart: a new container (next attempt) starts; the old one goes."""
        assert self.rt is not None
        state = self.rt.state
        out = []
        for cid in ids:
            old = state.containers.get(cid)
            if old is None:
                continue
            config = api.ContainerConfig()
            config.CopyFrom(old.config)
            config.metadata.attempt += 1
            config.annotations["io.kubernetes.container.restartCount"] = str(
                config.metadata.attempt)
            label = f"{old.pod.config.metadata.name}/{old.name}"
            started = self._add(EventKind.CONTAINER_STARTED, "", label)
            removed = self._add(EventKind.CONTAINER_REMOVED, cid, label)
            new_id = state.create_container(old.pod.id, config)
            started.id = new_id
            self._expect[(EventKind.CONTAINER_STARTED, new_id)] = started
            self._labels[new_id] = label
            state.start_container(new_id)
            state.remove_container(cid)
            self.say(f"  script: {label} restarts as attempt {config.metadata.attempt} "
                     f"({new_id[:12]}); {cid[:12]} removed", "yellow")
            out += [started, removed]
        return out

    def _add(self, kind: EventKind, cid: str, label: str, *,
             exit_code: int | None = None) -> _Expect:
        expect = _Expect(kind, cid, label, time.monotonic(), exit_code)
        if cid:
            self._expect[(kind, cid)] = expect
        return expect

    async def _wait_all(self, expects: list[_Expect]) -> None:
        with anyio.move_on_after(self.pace.wait):
            for e in expects:
                await e.seen.wait()

    async def _restart(self, rt: FakeRuntime, client: CRIClient, step: Step) -> None:
        p = self.pace
        assert self.poller is not None
        running = sorted(c.id for c in rt.state.running_containers())
        targets = running[:_CALLERS]
        self._reserved.update(targets)
        redials = client.stats.redials
        spurious = len(self._unexpected)
        stop = anyio.Event()
        self.calls_ok = self.calls_failed = 0
        self._recovered = anyio.Event()
        async with anyio.create_task_group() as callers:
            for cid in targets:
                callers.start_soon(self._caller, client, cid, stop)
            await anyio.sleep(0.3)
            self.say(f"{_CALLERS} callers send ContainerStatus in a loop; stopping the runtime "
                     f"for {p.down_for:g} s (socket removed)", "cyan")
            await rt.stop()
            await anyio.sleep(p.down_for)
            await rt.start()
            self._t_up = time.monotonic()
            self.say("runtime is back: socket file present again", "cyan")
            with anyio.move_on_after(p.wait):
                await self._recovered.wait()
            await anyio.sleep(p.calls_after)
            stop.set()
        up = self._t_up
        first = self._first_ok_after_up
        self._t_up = None
        recovery = (first - up) * 1000 if first is not None and up is not None else None
        redialled = client.stats.redials - redials
        step.observed = (
            f"down {p.down_for:g} s; first successful call "
            + (f"{max(recovery, 0):.0f} ms after the socket returned" if recovery is not None
               else "NEVER")
            + f"; {redialled} redial(s); calls {self.calls_ok} ok / {self.calls_failed} failed"
        )
        step.ok = recovery is not None and self.calls_failed == 0 and redialled >= 1
        if self._failures:
            step.observed += f" (first failure: {self._failures[0]})"
        extra = self._unexpected[spurious:]
        if extra:
            step.ok = False
            step.observed += f"; the poller reported {len(extra)} change(s) nobody made"
        self.say(f"restart: {step.observed}", "" if step.ok else "bold red")
        await anyio.sleep(p.observe)

    async def _caller(self, client: CRIClient, cid: str, stop: anyio.Event) -> None:
        request = api.ContainerStatusRequest(container_id=cid)
        while not stop.is_set():
            try:
                await client.runtime.container_status(request, timeout=30)
            except CRIError as exc:
                self.calls_failed += 1
                self._failures.append(str(exc))
            else:
                self.calls_ok += 1
                up = self._t_up
                if up is not None and self._first_ok_after_up is None:
                    now = time.monotonic()
                    if now >= up:
                        self._first_ok_after_up = now
                        self._recovered.set()
            await anyio.sleep(0.05)

    async def _upgrade(self, rt: FakeRuntime, step: Step) -> None:
        p = self.pace
        self._first_ok_after_up = None
        self.say(f"upgrading: runtime stops, comes back {p.upgrade_down_for:g} s later serving "
                 "CRI v1 only (v1alpha2 dropped)", "cyan")
        await rt.stop()
        await anyio.sleep(p.upgrade_down_for)
        rt.runtime_version = "2.0.0"
        await rt.start(versions=("v1",))
        up = time.monotonic()
        with anyio.move_on_after(p.wait):
            while self._signal_at is None:  # noqa: ASYNC110 (set by the watcher task)
                await anyio.sleep(0.005)
        if self._signal_at is None or not isinstance(self._signal, RestartRequired):
            step.ok = False
            step.observed = f"no restart-required signal within {p.wait:g} s"
        else:
            took = max(self._signal_at - up, 0.0) * 1000
            err = self._signal
            step.ok = True
            step.observed = (f"signalled {took:.0f} ms after the socket returned (pinned "
                             f"{err.pinned}; runtime now serves {', '.join(err.served)})")
            with anyio.move_on_after(2.0):  # the poller hears it from the client just after
                while self._poller_error is None:  # noqa: ASYNC110 (set by the consumer)
                    await anyio.sleep(0.005)
            if not isinstance(self._poller_error, RestartRequired):
                step.observed += "; the poller did not stop with it"
                step.ok = False
        self.say(f"upgrade: {step.observed}", "" if step.ok else "bold red")
        await anyio.sleep(p.observe)

    # -- background tasks -----------------------------------------------------------------------

    async def _consume(self, poller: Poller) -> None:
        self._quiet_until = None
        try:
            async for event in poller:
                self._on_event(event)
        except CRIError as exc:  # handled here: nothing leaves the demo's task groups wrapped
            self._poller_error = exc
            self.say(f"poller stopped: {exc}", "magenta")

    def _on_event(self, event: LifecycleEvent) -> None:
        if self._quiet_until is None:
            self._quiet_until = event.at
        if event.at <= self._quiet_until:
            return  # the first relist's report of what exists
        expect = self._expect.pop((event.kind, event.id), None)
        label = self._labels.get(event.id, event.id[:12])
        code = f" exit {event.exit_code}" if event.exit_code is not None else ""
        if expect is not None:
            expect.latency = max(event.at - expect.started, 0.0)
            if expect.exit_code is not None:
                expect.code_ok = event.exit_code == expect.exit_code
            expect.seen.set()
            after = f"  ({expect.latency * 1000:.0f} ms after the change)"
        else:
            after = "  (UNEXPECTED: no such change was made)"
            if event.kind is not EventKind.CONTAINER_CREATED:
                self._unexpected.append(event)
        if event.kind is EventKind.CONTAINER_CREATED:
            return  # shown (and counted) as its STARTED
        self.reported += 1  # every counted change is shown, and only those
        self.say(f"  event: {event.kind.value:<18} {label}{code}{after}", "green")

    async def _watch_connection(self, client: CRIClient) -> None:
        attempts = 0
        async for event in client.events():
            if event.kind == "redial_attempt":
                attempts += 1
                continue
            if event.kind == "state":
                # attempts as client.stats.redial_attempts counts them (the one that
                # worked included); client.stats.redials counts the redials that worked
                extra = f" after {attempts} redial attempt(s)" if attempts else ""
                self.say(f"connection: {event.state.value}{extra}", "magenta")
                attempts = 0
            elif event.kind == "newer_version_available":
                self.say(f"connection: runtime now also serves {', '.join(event.served)}",
                         "magenta")

    async def _watch_restart_required(self, client: CRIClient) -> None:
        try:
            error: CRIError = await client.restart_required()
        except CRIError as exc:  # closed first
            error = exc
        self._signal_at = time.monotonic()
        self._signal = error


async def run_demo(*, quick: bool = False, pods: int | None = None,
                   containers_per_pod: int | None = None,
                   console: Console | None = None) -> list[Step]:
    """Run the demo; return the summary's steps (``step.ok`` is True for each that held)."""
    demo = Demo(quick=quick, pods=pods, containers_per_pod=containers_per_pod, console=console)
    return await demo.run()


def main(*, quick: bool = False, pods: int | None = None,
         containers_per_pod: int | None = None) -> int:
    """Run the demo; 0 if every step met its expectation, 1 if not, 130 on Ctrl-C
    (128 + the signal on SIGTERM or SIGHUP)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)

    received: list[int] = []

    async def go() -> list[Step] | None:
        finished: list[list[Step]] = []
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                # SIGTERM and SIGHUP end it like Ctrl-C: the fake runtime stops, its
                # socket and folder go
                try:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                        async for number in signals:
                            received.append(number)
                            tg.cancel_scope.cancel()
                            return
                finally:
                    if received:  # a second signal must not cut the clean-up short
                        signal.signal(signal.SIGTERM, signal.SIG_IGN)
                        signal.signal(signal.SIGHUP, signal.SIG_IGN)

            async def demo() -> None:
                finished.append(await run_demo(quick=quick, pods=pods,
                                               containers_per_pod=containers_per_pod,
                                               console=console))
                tg.cancel_scope.cancel()

            tg.start_soon(on_signals)
            tg.start_soon(demo)
        return finished[0] if finished else None

    runner: Callable[[], Awaitable[list[Step] | None]] = go
    try:
        steps = anyio.run(runner, backend="asyncio")
    except KeyboardInterrupt:
        steps = None
    if steps is None:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            console.print("aiocri demo: interrupted")
        return 128 + received[0] if received else 130
    failed = [s.name for s in steps if not s.ok]
    if failed:
        console.print(f"aiocri demo: FAILED: {', '.join(failed)}", style="bold red")
        return 1
    console.print("aiocri demo: every step met its expectation", style="bold green")
    return 0
