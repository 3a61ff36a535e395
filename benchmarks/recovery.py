"""Recovery: from the runtime socket's return to the first successful call.

Three clients live in one process and go through the same outages (one restart,
three clients):

- ``aiocri``: ``aiocri.connect(endpoint)`` with its default RedialPolicy; a loop of
  ``client.runtime.version()`` (its calls wait for the redial on their own);
- ``plain``: ``grpc.aio.insecure_channel(endpoint)`` with default settings;
- ``kubelet``: the same with the kubelet's dial settings (backoff 100 ms first, 3 s
  max, 5 s minimum connect timeout: ``grpc.initial_reconnect_backoff_ms=100``,
  ``grpc.max_reconnect_backoff_ms=3000``, ``grpc.min_reconnect_backoff_ms=5000``).

The plain channels loop ``Version`` with ``wait_for_ready=True`` and a 0.25 s
deadline, retried at once. Each client calls about every 10 ms while healthy.

An outage: the runtime is stopped (SIGTERM, or SIGKILL which leaves a stale socket
file), stays down ``down`` seconds, and is started again. The socket's return is
taken by a separate tiny process that polls the socket file every 1 ms and
connects to it: the first moment the new file accepts a connection. A client's
figure is its first successful call after that, minus that moment.

Also the restart-required signal (fake runtime only): the runtime serves only
v1alpha2, the client pins it, the runtime comes back serving only v1; the figure is
from the new socket's return to ``await client.restart_required()`` returning.

And an in-place upgrade, beside the restarts (where containerd 1.6 and 1.7 can run:
root, ``sh .ci/system-deps``): a private containerd 1.6.20 with 20 pods x 5 (the one
under test with ``--runtime containerd``) is stopped (SIGTERM), stays down 1 s and
comes back as 1.7.24 on the same socket, root and state; the next round goes back to
1.6, and so on. The same three clients, the same figures; the one that matters is
what aiocri adds to the new runtime's own first answer.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections import Counter
from typing import Any

import anyio
import grpc
import grpc.aio

from benchmarks._common import (
    KUBELET_CHANNEL_OPTIONS,
    ContainerdRuntime,
    FakeRuntime,
    SocketWatch,
    fmt_ms,
    fmt_x,
    median,
    percentile,
    ratio,
    socket_identity,
    table,
)

CLIENTS = ("aiocri", "kubelet", "plain")
PACE = 0.01  # seconds between calls while healthy
PLAIN_DEADLINE = 0.25
TARGET = 0.100
Series = list[tuple[str, tuple[float, ...], int]]  # (signal, down times, repeats)
FULL_SERIES: Series = [("SIGTERM", (1.0, 5.0, 20.0), 5), ("SIGKILL", (1.0, 5.0, 20.0), 5)]
QUICK_SERIES: Series = [("SIGKILL", (1.0,), 1), ("SIGTERM", (5.0,), 1)]
FULL_RESTART_REQUIRED = 5
QUICK_RESTART_REQUIRED = 1
UPGRADE_TARGET = 0.020  # what aiocri may add to the new runtime's first answer (p95)
UPGRADE_DOWN = 1.0
FULL_UPGRADES = 10  # rounds each way (1.6 -> 1.7, 1.7 -> 1.6)
QUICK_UPGRADES = 1


class Prober:
    """Counts one client's successes; remembers the first after :meth:`arm`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.armed = math.inf
        self.first: float | None = None
        self.last_ok = 0.0
        self.errors: Counter[str] = Counter()
        self.ok_count = 0

    def ok(self) -> None:
        t = time.monotonic()
        self.last_ok = t
        self.ok_count += 1
        if self.first is None and t > self.armed:
            self.first = t

    def arm(self, t: float) -> None:
        self.armed = t
        self.first = None


async def _plain_loop(channel: grpc.aio.Channel, prober: Prober) -> None:
    from aiocri import api

    stub = channel.unary_unary(
        "/runtime.v1.RuntimeService/Version",
        request_serializer=api.VersionRequest.SerializeToString,
        response_deserializer=api.VersionResponse.FromString,
    )
    request = api.VersionRequest(version="0.1.0")
    while True:
        try:
            await stub(request, timeout=PLAIN_DEADLINE, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            prober.errors[exc.code().name] += 1
            if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.UNAVAILABLE):
                await asyncio.sleep(0.005)
            continue
        prober.ok()
        await asyncio.sleep(PACE)


async def _aiocri_loop(client: Any, prober: Prober) -> None:
    from aiocri import CRIError, api

    request = api.VersionRequest(version="0.1.0")
    while True:
        try:
            await client.runtime.version(request)
        except CRIError as exc:
            prober.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.005)
            continue
        prober.ok()
        await asyncio.sleep(PACE)


async def _wait_healthy(probers: list[Prober], timeout: float = 60.0) -> None:
    with anyio.fail_after(timeout):
        while True:
            now = time.monotonic()
            if all(now - p.last_ok < 0.1 for p in probers):
                return
            await anyio.sleep(0.02)


async def outages(runtime: Any, *, quick: bool, log: Any = print,
                  series: Series | None = None,
                  label: str = "recovery") -> list[dict[str, Any]]:
    """Run the outage series against ``runtime`` with the three clients."""
    import aiocri

    series = series or (QUICK_SERIES if quick else FULL_SERIES)
    results: list[dict[str, Any]] = []
    plain = grpc.aio.insecure_channel(runtime.endpoint)
    kubelet = grpc.aio.insecure_channel(runtime.endpoint, options=KUBELET_CHANNEL_OPTIONS)
    probers = {name: Prober(name) for name in CLIENTS}
    try:
        async with aiocri.connect(runtime.endpoint) as client:
            tasks = [
                asyncio.create_task(_aiocri_loop(client, probers["aiocri"])),
                asyncio.create_task(_plain_loop(plain, probers["plain"])),
                asyncio.create_task(_plain_loop(kubelet, probers["kubelet"])),
            ]
            try:
                for sig_name, downs, repeats in series:
                    sig = getattr(signal, sig_name)
                    for down in downs:
                        for r in range(repeats):
                            await _wait_healthy(list(probers.values()))
                            await anyio.sleep(0.3)  # settled: every client READY and calling
                            before = client.runtime_version.runtime_version
                            res = await _one_outage(runtime, sig, down, probers)
                            # aiocri's version check after the redial: the new runtime's
                            after = client.runtime_version.runtime_version
                            res.update({"signal": sig_name, "down": down, "repeat": r,
                                        "aiocri_redials": client.stats.redials,
                                        "aiocri_redial_attempts": client.stats.redial_attempts,
                                        "version_before": before, "version_after": after,
                                        "errors": {n: dict(p.errors) for n, p in probers.items()}})
                            results.append(res)
                            change = "" if after == before else f"{before} -> {after}, "
                            log(f"  {label}: {change}{sig_name} down {down:g} s #{r + 1}: "
                                + ", ".join(f"{c} {fmt_ms(res['clients'][c])}" for c in CLIENTS)
                                + f" (outage {res['outage']:.2f} s, runtime answered "
                                f"{fmt_ms(res['runtime_answers'])})")
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        with anyio.CancelScope(shield=True):
            await plain.close(None)
            await kubelet.close(None)
    return results


async def _one_outage(runtime: Any, sig: signal.Signals, down: float,
                      probers: dict[str, Prober]) -> dict[str, Any]:
    old = socket_identity(runtime.socket_path)
    t_stop = time.monotonic()
    await runtime.stop(sig)
    t_dead = time.monotonic()
    for p in probers.values():
        p.arm(t_dead)
    watch = await SocketWatch.arm(runtime.socket_path, old)
    try:
        await anyio.sleep(max(0.0, down - (time.monotonic() - t_dead)))
        t_start = time.monotonic()
        await runtime.start()
        t_started = time.monotonic()
        t_back, t_file = await watch.result()
        t_answers = await watch.answers()
        with anyio.move_on_after(max(0.0, t_back + 60.0 - time.monotonic())):
            # polled: the probers' loops signal nothing (they must stay as lean as possible)
            while any(p.first is None for p in probers.values()):  # noqa: ASYNC110
                await anyio.sleep(0.01)
    finally:
        watch.close()
    return {
        "outage": t_back - t_dead,
        "stop_took": t_dead - t_stop,
        "file_to_accept": t_back - t_file,
        "start_called_to_back": t_back - t_start,
        "harness_ready_after_back": t_started - t_back,
        # the runtime's own readiness: Version first answered OK on a fresh channel
        "runtime_answers": (t_answers - t_back) if t_answers is not None else None,
        "clients": {name: (p.first - t_back) if p.first is not None else None
                    for name, p in probers.items()},
    }


async def restart_required(*, quick: bool, log: Any = print, down: float = 0.5) -> list[dict[str, Any]]:
    """Fake runtime v1alpha2 -> v1 only: socket back -> client.restart_required()."""
    import aiocri
    from aiocri.versions import resolve_versions

    n = QUICK_RESTART_REQUIRED if quick else FULL_RESTART_REQUIRED
    out = []
    async with FakeRuntime(versions=("v1alpha2",), pods=2, containers_per_pod=1) as rt:
        for i in range(n):
            sig = signal.SIGKILL if i % 2 else signal.SIGTERM
            if rt.process.versions != resolve_versions(("v1alpha2",)):
                await rt.stop(signal.SIGTERM)
                rt.process.versions = resolve_versions(("v1alpha2",))
                await rt.start()
            async with aiocri.connect(rt.endpoint) as client:
                pinned = client.version.name
                got: dict[str, Any] = {}
                done = anyio.Event()

                async def wait(client: Any = client, got: dict[str, Any] = got,
                               done: anyio.Event = done) -> None:
                    got["error"] = await client.restart_required()
                    got["at"] = time.monotonic()
                    done.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await anyio.sleep(0.2)
                    old = socket_identity(rt.socket_path)
                    await rt.stop(sig)
                    watch = await SocketWatch.arm(rt.socket_path, old)
                    try:
                        rt.process.versions = resolve_versions(("v1",))
                        await anyio.sleep(down)
                        await rt.start()
                        t_back, _ = await watch.result()
                    finally:
                        watch.close()
                    with anyio.move_on_after(30):
                        await done.wait()
                    tg.cancel_scope.cancel()
                latency = got["at"] - t_back if "at" in got else None
                out.append({"signal": sig.name, "pinned": pinned, "latency": latency,
                            "error": str(got.get("error", ""))[:300]})
                log(f"  restart-required ({sig.name}): pinned {pinned}, signalled "
                    f"{fmt_ms(latency)} after the new socket accepted")
    return out


class _Switching:
    """A private containerd that comes back as the other release each time it is
    started: 1.6 -> 1.7, then 1.7 -> 1.6, ... (an in-place upgrade, then a downgrade)."""

    kind = "containerd"

    def __init__(self, ctd: Any, bin_17: Any) -> None:
        self.ctd = ctd
        self.bin_17 = bin_17
        self.endpoint = ctd.endpoint
        self.socket_path = ctd.address

    async def stop(self, sig: signal.Signals) -> None:
        await self.ctd.akill(sig)

    async def start(self) -> None:
        target = self.bin_17 if self.ctd.bin_dir is None else None
        await anyio.to_thread.run_sync(self.ctd.use_binaries, target)
        await self.ctd.alaunch()


def _series(version: str) -> str:
    return ".".join(version.split(".")[:2])


async def upgrades(runtime: Any, *, quick: bool, log: Any = print) -> dict[str, Any]:
    """containerd 1.6 <-> 1.7 in place, alternately, with the three clients; skipped
    (with the reason) where the two cannot run."""
    from aiocri.testing.containerd import (
        CONTAINERD_17_CACHE,
        containerd_17,
        containerd_available,
    )

    reason = containerd_available()
    bin_17 = containerd_17() if reason is None else None
    if reason is None and bin_17 is None:
        reason = f"no containerd 1.7 in {CONTAINERD_17_CACHE} (run `sh .ci/system-deps` as root)"
    if reason is not None:
        log(f"  upgrade 1.6 <-> 1.7: skipped: {reason}")
        return {"skipped": reason, "rounds": []}
    rounds_each_way = QUICK_UPGRADES if quick else FULL_UPGRADES
    series: Series = [("SIGTERM", (UPGRADE_DOWN,), 2 * rounds_each_way)]
    if runtime.kind == "containerd" and runtime.ctd.bin_dir is None:
        # the containerd under test (1.6); an even number of rounds leaves it on 1.6
        rounds = await outages(_Switching(runtime.ctd, bin_17), quick=quick, log=log,
                               series=series, label="upgrade")
    else:
        log("  upgrade: starting a private containerd 1.6 with 20 pods x 5 containers")
        async with ContainerdRuntime(pods=20, containers_per_pod=5) as ctd:
            rounds = await outages(_Switching(ctd.ctd, bin_17), quick=quick, log=log,
                                   series=series, label="upgrade")
    for o in rounds:
        o["direction"] = f"{_series(o['version_before'])} -> {_series(o['version_after'])}"
    return {"skipped": None, "rounds": rounds}


async def run(runtime: Any, *, quick: bool, log: Any = print) -> dict[str, Any]:
    result: dict[str, Any] = {"runtime": runtime.kind}
    result["outages"] = await outages(runtime, quick=quick, log=log)
    if runtime.kind == "fake":
        result["restart_required"] = await restart_required(quick=quick, log=log)
    else:
        result["restart_required"] = None
    result["upgrades"] = await upgrades(runtime, quick=quick, log=log)
    result["summary"] = summarize(result)
    return result


def _row(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Median / p95 figures of a group of outages."""
    row: dict[str, Any] = {"n": len(items), "outage": median([o["outage"] for o in items])}
    ready = [o["runtime_answers"] for o in items if o.get("runtime_answers") is not None]
    row["runtime_answers"] = {"median": median(ready), "p95": percentile(ready, 95)}
    behind = [o["clients"]["aiocri"] - o["runtime_answers"] for o in items
              if o.get("runtime_answers") is not None and o["clients"]["aiocri"] is not None]
    row["aiocri_after_runtime"] = {"median": median(behind), "p95": percentile(behind, 95)}
    for c in CLIENTS:
        vals = [o["clients"][c] for o in items if o["clients"][c] is not None]
        row[c] = {"median": median(vals), "p95": percentile(vals, 95),
                  "max": max(vals) if vals else math.nan,
                  "missing": sum(1 for o in items if o["clients"][c] is None)}
    row["plain_over_aiocri"] = ratio(row["plain"]["median"], row["aiocri"]["median"])
    row["kubelet_over_aiocri"] = ratio(row["kubelet"]["median"], row["aiocri"]["median"])
    return row


def _upgrade_summary(result: dict[str, Any]) -> dict[str, Any] | None:
    up = result.get("upgrades")
    if not up or up.get("skipped") or not up.get("rounds"):
        return None
    rounds = up["rounds"]
    rows = [{"direction": d, **_row([o for o in rounds if o["direction"] == d])}
            for d in sorted({o["direction"] for o in rounds})]
    both = _row(rounds)
    return {"rows": rows, "all": both,
            # every round's client re-checked its version: the new runtime's answer
            "rechecked": sum(1 for o in rounds if o["version_after"] != o["version_before"]),
            "target": {"target": "<= 20 ms", "worst": both["aiocri_after_runtime"]["p95"],
                       "met": both["aiocri_after_runtime"]["p95"] <= UPGRADE_TARGET}}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = []
    keys = sorted({(o["signal"], o["down"]) for o in result["outages"]},
                  key=lambda k: (k[0], k[1]))
    worst_p95 = 0.0
    worst_behind = 0.0
    for sig, down in keys:
        items = [o for o in result["outages"] if o["signal"] == sig and o["down"] == down]
        row: dict[str, Any] = {"signal": sig, "down": down, **_row(items)}
        worst_p95 = max(worst_p95, row["aiocri"]["p95"])
        if not math.isnan(row["aiocri_after_runtime"]["p95"]):
            worst_behind = max(worst_behind, row["aiocri_after_runtime"]["p95"])
        rows.append(row)
    rr = result.get("restart_required")
    rr_summary = None
    if rr:
        vals = [o["latency"] for o in rr if o["latency"] is not None]
        rr_summary = {"median": median(vals), "p95": percentile(vals, 95), "n": len(rr),
                      "missing": sum(1 for o in rr if o["latency"] is None)}
    upgrade = _upgrade_summary(result)
    return {
        "rows": rows,
        "restart_required": rr_summary,
        "upgrade": upgrade,
        "targets": {
            "aiocri_p95": {"target": "<= 100 ms", "worst": worst_p95,
                           "met": worst_p95 <= TARGET},
            "aiocri_after_runtime_p95": {"target": "<= 100 ms", "worst": worst_behind,
                                         "met": worst_behind <= TARGET},
            "restart_required": None if rr_summary is None else {
                "target": "<= 100 ms", "worst": rr_summary["p95"],
                "met": rr_summary["p95"] <= TARGET and not rr_summary["missing"]},
            "upgrade": None if upgrade is None else upgrade["target"],
        },
    }


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    body = []
    for row in s["rows"]:
        cells = [row["signal"], f"{row['down']:g} s", row["n"], f"{row['outage']:.2f} s",
                 f"{fmt_ms(row['runtime_answers']['median'])} / "
                 f"{fmt_ms(row['runtime_answers']['p95'])}"]
        for c in CLIENTS:
            v = row[c]
            text = f"{fmt_ms(v['median'])} / {fmt_ms(v['p95'])}"
            if v["missing"]:
                text += f" ({v['missing']} never)"
            cells.append(text)
        cells += [fmt_x(row["kubelet_over_aiocri"]), fmt_x(row["plain_over_aiocri"]),
                  f"{fmt_ms(row['aiocri_after_runtime']['median'])} / "
                  f"{fmt_ms(row['aiocri_after_runtime']['p95'])}"]
        body.append(cells)
    out = [table(
        f"Recovery after a runtime restart ({result['runtime']}): socket accepts -> first "
        "successful call, median / p95",
        ["signal", "down", "n", "outage", "runtime answers", "aiocri", "kubelet settings",
         "plain grpc.aio", "kubelet/aiocri", "plain/aiocri", "aiocri - runtime answers"],
        body,
        notes=[
            "All three clients in one process, through the same outages. 'outage' = runtime "
            "dead -> new socket accepts (median; the restart itself adds the runtime's "
            "start-up to 'down').",
            "plain/kubelet: Version with wait_for_ready=True, 0.25 s deadline, retried at once; "
            "aiocri: client.runtime.version() (waits for its own redial). Ratios of medians.",
            "SIGKILL leaves the socket file behind (the fake's grpc server replaces it when it "
            "binds; the containerd helper removes it before launching).",
            "'runtime answers' = when Version first answered OK on a fresh channel polled every "
            "5 ms by a separate process (containerd accepts connections before its CRI service "
            "is initialised and answers UNKNOWN 'server is not initialized yet' meanwhile): no "
            "client can be faster. 'aiocri - runtime answers' = what aiocri adds to that.",
        ],
    )]
    out.append(_upgrade_report(result))
    rr = s["restart_required"]
    if rr is not None:
        per = ", ".join(f"{o['signal']} {fmt_ms(o['latency'])}" for o in result["restart_required"])
        out.append(table(
            "Restart-required signal: runtime v1alpha2 -> v1 only (fake runtime)",
            ["scenario", "n", "median", "p95", "runs"],
            [["new socket accepts -> await client.restart_required()", rr["n"],
              fmt_ms(rr["median"]), fmt_ms(rr["p95"]), per]],
        ))
    else:
        out.append(table(
            "Restart-required signal (containerd)",
            ["scenario", "result"],
            [["runtime drops the pinned CRI version",
              "not measurable: containerd 1.6 always serves both v1 and v1alpha2 "
              "(see the fake runtime's table)"]],
        ))
    t = s["targets"]
    lines = [f"aiocri p95 <= 100 ms for every outage length: "
             f"{'MET' if t['aiocri_p95']['met'] else 'MISSED'} (worst p95 "
             f"{fmt_ms(t['aiocri_p95']['worst'])}, from the socket accepting)"]
    if "aiocri_after_runtime_p95" in t:
        v = t["aiocri_after_runtime_p95"]
        lines.append(f"aiocri p95 <= 100 ms after the runtime itself first answers: "
                     f"{'MET' if v['met'] else 'MISSED'} (worst p95 {fmt_ms(v['worst'])})")
    if t.get("upgrade") is not None:
        v = t["upgrade"]
        lines.append(f"in-place upgrade/downgrade, aiocri p95 <= 20 ms after the new runtime "
                     f"first answers: {'MET' if v['met'] else 'MISSED'} (p95 {fmt_ms(v['worst'])})")
    if t["restart_required"] is not None:
        lines.append(f"restart-required signal <= 100 ms: "
                     f"{'MET' if t['restart_required']['met'] else 'MISSED'} "
                     f"(p95 {fmt_ms(t['restart_required']['worst'])})")
    out.append("Recovery targets:\n" + "\n".join(f"- {line}" for line in lines) + "\n")
    return "\n".join(out)


def _upgrade_report(result: dict[str, Any]) -> str:
    title = "Recovery after an in-place upgrade: containerd 1.6.20 <-> 1.7.24"
    up = result.get("upgrades")
    summary = result["summary"].get("upgrade")
    if summary is None:
        why = (up or {}).get("skipped") or "not measured in this run"
        return table(title, ["scenario", "result"], [["upgrade in place", f"skipped: {why}"]])

    def cells(name: str, row: dict[str, Any]) -> list[Any]:
        return [name, row["n"], f"{row['outage']:.2f} s",
                *(f"{fmt_ms(row[k]['median'])} / {fmt_ms(row[k]['p95'])}"
                  for k in ("runtime_answers", "aiocri", "kubelet", "plain",
                            "aiocri_after_runtime"))]

    body = [cells(row["direction"], row) for row in summary["rows"]]
    body.append(cells("both ways", summary["all"]))
    if result["runtime"] == "containerd" and result["outages"]:
        body.append(cells("restart, same binary (table above)", _row(result["outages"])))
    return table(
        f"{title} (SIGTERM, down {UPGRADE_DOWN:g} s, 20 pods x 5): socket accepts -> first "
        "successful call, median / p95",
        ["scenario", "n", "outage", "runtime answers", "aiocri", "kubelet settings",
         "plain grpc.aio", "aiocri - runtime answers"],
        body,
        notes=[
            "The old containerd is stopped and the other release started on the same socket, "
            "root and state; the pods keep running. Rounds alternate 1.6 -> 1.7 and 1.7 -> 1.6. "
            "Same clients and columns as the restart table.",
            f"aiocri's version check after the redial answered with the new release in "
            f"{summary['rechecked']} of {summary['all']['n']} rounds.",
        ],
    )


def plot(ax: Any, result: dict[str, Any]) -> None:
    rows = result["summary"]["rows"]
    labels = [f"{r['signal']}\n{r['down']:g} s" for r in rows]
    xs = list(range(len(rows)))
    width = 0.27
    colors = {"aiocri": "tab:blue", "kubelet": "tab:green", "plain": "tab:red"}
    for k, c in enumerate(CLIENTS):
        med = [max(r[c]["median"], 1e-4) if not math.isnan(r[c]["median"]) else 0 for r in rows]
        p95 = [max(r[c]["p95"], 1e-4) if not math.isnan(r[c]["p95"]) else 0 for r in rows]
        pos = [x + (k - 1) * width for x in xs]
        ax.bar(pos, med, width, color=colors[c], alpha=0.85, label=f"{c} (median)")
        ax.scatter(pos, p95, color="black", marker="_", s=120, zorder=3,
                   label="p95" if k == 0 else None)
    ax.axhline(TARGET, color="tab:blue", linestyle="--", linewidth=0.8, label="target 100 ms")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("socket back -> first success (s)")
    ax.set_title(f"Recovery ({result['runtime']})")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
