"""``python -m benchmarks.streaming``: exec, stdout and port-forward speed against containerd.

    python -m benchmarks.streaming [--quick] [--out benchmarks/results]

Side by side in one run, on one private containerd and one busybox container:
  * exec round trip of ``true``: in-process through SPDY and through WebSocket, the
    ExecSync RPC in-process, and ``aiocri exec`` / ``aiocri exec -s`` as a process per call
    (what a crictl user pays), beside ``runc exec`` run directly on the same container (no
    containerd, no client: the floor any CRI client stands on);
  * exec stdout throughput: 256 MiB from ``busybox dd if=/dev/zero`` per transport;
  * port-forward throughput: 256 MiB from ``busybox nc`` in the pod, through a forwarded
    connection per transport and directly (the pod shares the host's network).
Prints a table with ratios and writes OUT/streaming.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiocri
from aiocri.api import (
    CreateContainerRequest,
    ExecSyncRequest,
    RemovePodSandboxRequest,
    RunPodSandboxRequest,
    StartContainerRequest,
    StopPodSandboxRequest,
)
from aiocri.streaming import TransportName
from aiocri.testing.containerd import Containerd, container_config, containerd_available

MiB = 1 << 20
TRANSPORTS: list[TransportName] = ["spdy", "websocket"]
ROOT = Path(__file__).resolve().parents[1]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 2),
            "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1e3, 2),
            "min_ms": round(ordered[0] * 1e3, 2), "n": len(ordered)}


async def _round_trips(client: aiocri.CRIClient, cid: str, endpoint: str, runc_root: Path,
                       n: int) -> dict[str, dict[str, float]]:
    async def stream(transport: TransportName) -> float:
        t = time.perf_counter()
        async with client.exec_stream(cid, ["true"], transport=transport) as session:
            await session.wait()
        return time.perf_counter() - t

    async def sync() -> float:
        t = time.perf_counter()
        await client.runtime.exec_sync(ExecSyncRequest(container_id=cid, cmd=["true"]))
        return time.perf_counter() - t

    def command(*flags: str) -> float:
        t = time.perf_counter()
        subprocess.run([*_script(), "-r", endpoint, "exec", *flags, cid, "--", "true"],
                       check=True, env=_script_env(), stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    def runc() -> float:
        t = time.perf_counter()
        subprocess.run(["runc", "--root", str(runc_root), "exec", cid, "true"], check=True)
        return time.perf_counter() - t

    cases: dict[str, Any] = {
        "exec spdy (in-process)": lambda: stream("spdy"),
        "exec websocket (in-process)": lambda: stream("websocket"),
        "ExecSync (in-process)": sync,
        "aiocri exec (a process per call)": lambda: asyncio.to_thread(command),
        "aiocri exec -s (a process per call)": lambda: asyncio.to_thread(command, "-s"),
        "runc exec alone (no containerd)": lambda: asyncio.to_thread(runc),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(n):  # interleaved, so that load drifts hit every case alike
        for name, case in cases.items():
            samples[name].append(await case())
    return {name: _stats(values) for name, values in samples.items()}


def _script() -> list[str]:
    """The installed ``aiocri`` command, as a user runs it."""
    script = Path(sys.executable).with_name("aiocri")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aiocri"]


def _script_env() -> dict[str, str]:
    # bytecode written as an installed package has it; no config file
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "CRI_CONFIG_FILE": os.devnull, "PYTHONPATH": str(ROOT)}


def _command_rate(endpoint: str, cid: str, cmd: list[str], mib: int) -> float:
    """MiB/s of ``aiocri exec ID -- cmd`` as a process, its stdout read through a pipe,
    from the start of the process to its end (start-up included)."""
    t = time.perf_counter()
    proc = subprocess.Popen([*_script(), "-r", endpoint, "exec", cid, "--", *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=_script_env())
    assert proc.stdout is not None
    got = 0
    while chunk := proc.stdout.read(1 << 20):
        got += len(chunk)
    assert proc.wait() == 0, proc.returncode
    assert got == mib * MiB, got
    return got / MiB / (time.perf_counter() - t)


async def _stdout_throughput(client: aiocri.CRIClient, cid: str, endpoint: str, mib: int,
                             repeats: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    cmd = ["busybox", "dd", "if=/dev/zero", f"bs={MiB}", f"count={mib}"]
    for transport in TRANSPORTS:
        rates = []
        for _ in range(repeats):
            t = time.perf_counter()
            got = 0
            async with client.exec_stream(cid, cmd, stderr=False, transport=transport) as s:
                assert s.stdout is not None
                async for chunk in s.stdout:
                    got += len(chunk)
                assert await s.wait() == 0
            assert got == mib * MiB
            rates.append(got / MiB / (time.perf_counter() - t))
        out[transport] = {"best_mib_s": round(max(rates)), "median_mib_s":
                          round(statistics.median(rates)), "runs": repeats}
    rates = [await asyncio.to_thread(_command_rate, endpoint, cid, cmd, mib)
             for _ in range(repeats)]
    out["aiocri exec (a process, spdy)"] = {
        "best_mib_s": round(max(rates)), "median_mib_s": round(statistics.median(rates)),
        "runs": repeats}
    return out


async def _port_forward_throughput(client: aiocri.CRIClient, pod_id: str, port: int, mib: int,
                                   repeats: int) -> dict[str, dict[str, float]]:
    async def through(transport: TransportName | None) -> float:
        for _ in range(200):  # the pod's nc is restarted by its loop after each transfer
            try:
                if transport is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    conn = None
                else:
                    conn = await client.port_forward(pod_id, port, transport=transport)
                break
            except (OSError, aiocri.StreamingError):
                await asyncio.sleep(0.05)
        t = time.perf_counter()
        got = 0
        if conn is None:
            while chunk := await reader.read(1 << 18):
                got += len(chunk)
            writer.close()
        else:
            try:
                while chunk := await conn.read():
                    got += len(chunk)
            except aiocri.StreamingError:
                got = 0  # nc was not listening yet: the runtime's error stream said so
            await conn.aclose()
        if got != mib * MiB:
            return 0.0
        return got / MiB / (time.perf_counter() - t)

    out: dict[str, dict[str, float]] = {}
    for name, transport in (("direct TCP (no forward)", None), ("spdy", "spdy"),
                            ("websocket", "websocket")):
        rates: list[float] = []
        while len(rates) < repeats:
            rate = await through(transport)  # type: ignore[arg-type]
            if rate:
                rates.append(rate)
            await asyncio.sleep(0.2)
        out[name] = {"best_mib_s": round(max(rates)), "median_mib_s":
                     round(statistics.median(rates)), "runs": repeats}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(quick: bool) -> dict[str, Any]:
    n, repeats, mib = (8, 1, 64) if quick else (30, 3, 256)
    ctd = await Containerd.astart(log_level="warn")
    try:
        async with aiocri.connect(ctd.endpoint) as client:
            config = ctd.pod_config("bench-stream")
            pod_id = (await client.runtime.run_pod_sandbox(
                RunPodSandboxRequest(config=config), timeout=60)).pod_sandbox_id
            port = _free_port()
            try:
                ids = []
                for name, command in (
                    ("sleeper", ["sleep", "3600"]),
                    ("source", ["sh", "-c", f"while true; do busybox dd if=/dev/zero bs={MiB} "
                                f"count={mib} 2>/dev/null | busybox nc -l -p {port}; done"]),
                ):
                    cid = (await client.runtime.create_container(CreateContainerRequest(
                        pod_sandbox_id=pod_id, config=container_config(name, command=command),
                        sandbox_config=config), timeout=60)).container_id
                    await client.runtime.start_container(
                        StartContainerRequest(container_id=cid), timeout=60)
                    ids.append(cid)
                cid = ids[0]
                _log("== exec round trip (true)")
                trips = await _round_trips(
                    client, cid, ctd.endpoint, ctd.state / "runc" / "k8s.io", n)
                _log("== exec stdout throughput")
                stdout = await _stdout_throughput(client, cid, ctd.endpoint, mib, repeats)
                _log("== port-forward throughput")
                forward = await _port_forward_throughput(client, pod_id, port, mib, repeats)
            finally:
                await client.runtime.stop_pod_sandbox(StopPodSandboxRequest(pod_sandbox_id=pod_id))
                await client.runtime.remove_pod_sandbox(
                    RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    finally:
        await ctd.astop()
    return {"quick": quick, "mib": mib, "round_trip": trips, "stdout": stdout,
            "port_forward": forward, "loadavg": os.getloadavg()[0]}


def render(results: dict[str, Any]) -> str:
    lines = [f"streaming against containerd ({results['mib']} MiB transfers, "
             f"load {results['loadavg']:.2f})", "",
             "exec round trip of `true`           median    p90     vs ExecSync  vs a process"
             "  vs runc alone"]
    trips = results["round_trip"]
    sync = trips["ExecSync (in-process)"]["median_ms"]
    process = trips["aiocri exec (a process per call)"]["median_ms"]
    floor = trips["runc exec alone (no containerd)"]["median_ms"]
    for name, s in trips.items():
        lines.append(f"  {name:34} {s['median_ms']:6.1f} {s['p90_ms']:6.1f} ms"
                     f"  {s['median_ms'] / sync:5.2f}x  {s['median_ms'] / process:10.2f}x"
                     f"  {s['median_ms'] / floor:10.2f}x")
    lines += ["", "exec stdout (busybox dd)          best   median MiB/s   vs 300 MiB/s (crictl)"
              "   median vs in-process spdy"]
    in_process = results["stdout"]["spdy"]["median_mib_s"]
    for name, s in results["stdout"].items():
        lines.append(f"  {name:30} {s['best_mib_s']:6} {s['median_mib_s']:6}"
                     f"          {s['best_mib_s'] / 300:5.2f}x"
                     f"   {in_process / s['median_mib_s']:5.2f}x the time")
    lines += ["", "port-forward (busybox nc)       best   median MiB/s   vs direct TCP"]
    direct = results["port_forward"]["direct TCP (no forward)"]["best_mib_s"]
    for name, s in results["port_forward"].items():
        lines.append(f"  {name:28} {s['best_mib_s']:6} {s['median_mib_s']:6}"
                     f"          {s['best_mib_s'] / direct:5.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    reason = containerd_available()
    if reason is not None:
        print(f"streaming benchmark skipped: containerd cannot run here: {reason}")
        return 0
    results = asyncio.run(run(args.quick))
    print(render(results))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "streaming.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
