"""``python -m benchmarks.forwarding``: the client's own port-forward speed, no root.

    python -m benchmarks.forwarding [--mib 128] [--repeats 3]

On the embedded fake runtime (its streaming server forwards to a local TCP server that
sends ``--mib`` MiB), side by side in one run: a direct TCP read, ``client.port_forward``
(one connection) and ``client.forward_port`` (a local listener, what ``aiocri
port-forward`` runs) per transport. Against containerd 1.6 its forwarder is the limit
(see ``benchmarks.streaming``); here the client and the fake's server are, so this is
where a slower client shows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from aiocri.streaming import TransportName
from aiocri.testing import FakeRuntime

MiB = 1 << 20
_TRANSPORTS: tuple[TransportName, ...] = ("spdy", "websocket")


async def _timed(total: int, read: Callable[[int], Awaitable[bytes]]) -> float:
    start, got = time.perf_counter(), 0
    while got < total and (chunk := await read(1 << 16)):
        got += len(chunk)
    if got != total:
        raise RuntimeError(f"read {got} bytes of {total}")
    return total / MiB / (time.perf_counter() - start)


async def run(mib: int, repeats: int) -> dict[str, float]:
    payload = b"z" * MiB

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(mib):
            writer.write(payload)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(source, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    best: dict[str, float] = {}

    def keep(name: str, rate: float) -> None:
        best[name] = max(best.get(name, 0.0), rate)

    async with FakeRuntime() as rt, rt.connect() as client:
        pod = rt.populate(1, 0).pod_ids[0]
        for _ in range(repeats):  # interleaved, so that load drifts hit every case alike
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            keep("direct TCP", await _timed(mib * MiB, reader.read))
            writer.close()
            for transport in _TRANSPORTS:
                async with client.port_forward(pod, port, transport=transport) as conn:
                    keep(f"port_forward {transport}", await _timed(mib * MiB, conn.read))
                async with client.forward_port(pod, port, transport=transport) as forwarder:
                    local, out = await asyncio.open_connection("127.0.0.1", forwarder.port)
                    keep(f"forward_port {transport}", await _timed(mib * MiB, local.read))
                    out.close()
    server.close()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forwarding")
    parser.add_argument("--mib", type=int, default=128, help="MiB per transfer")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (best kept)")
    args = parser.parse_args(argv)
    best = asyncio.run(run(args.mib, args.repeats))
    direct = best["direct TCP"]
    print(f"port-forward on the fake runtime, {args.mib} MiB, best of {args.repeats}")
    print(f"  {'case':24} {'MiB/s':>7}   vs direct TCP")
    for name, rate in best.items():
        print(f"  {name:24} {rate:7.0f}   {rate / direct:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
