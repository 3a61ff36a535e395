"""A node agent built on aiocri: it watches the node's container runtime over the CRI
and serves Prometheus metrics about it, one per node (see daemonset.yaml).

    python agent.py --endpoint unix:///run/containerd/containerd.sock --metrics-port 9101

It serves aiocri's own metrics (every CRI call, the connection, the poller's relists)
and ``node_agent_lifecycle_events_total{kind}``, the pod and container changes it saw.

Exit codes: 0 after SIGTERM or SIGINT; 3 when the runtime came back without the CRI
version the agent pinned (after ``--linger`` seconds, so that Prometheus scrapes
``aiocri_restart_required 1`` first; the restarted agent negotiates afresh, as the
kubelet does); 1 for any other failure.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence

import anyio
import anyio.abc
import prometheus_client

import aiocri
from aiocri.metrics import PrometheusMetrics, serve_metrics

__all__ = ["EXIT_FAILED", "EXIT_RESTART", "main", "parse_args", "run"]

log = logging.getLogger("node_agent")

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
EXIT_FAILED = 1
EXIT_RESTART = 3


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def _period(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("the period must be more than 0 s")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0..65535, not {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Watch the node's CRI runtime and serve Prometheus metrics about it.")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("CONTAINER_RUNTIME_ENDPOINT", DEFAULT_ENDPOINT),
        help="the runtime's CRI socket (default: $CONTAINER_RUNTIME_ENDPOINT, else "
             f"{DEFAULT_ENDPOINT})")
    # every address by default: Prometheus scrapes a pod on the pod's own IP
    parser.add_argument(
        "--metrics-host", default="0.0.0.0",
        help="address to serve /metrics on (default 0.0.0.0, for a pod; 127.0.0.1 on a "
             "workstation)")
    parser.add_argument("--metrics-port", type=_port, default=9101,
                        help="port to serve /metrics on (default 9101; 0: any free port)")
    parser.add_argument("--period", type=_period, default=1.0,
                        help="seconds between two relists of the runtime (default 1)")
    parser.add_argument(
        "--linger", type=_seconds, default=30.0,
        help="seconds to keep serving metrics after the runtime dropped the pinned CRI "
             "version, before exiting with 3 (default 30: a few scrapes)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def lifecycle_counter(registry: prometheus_client.CollectorRegistry
                      ) -> prometheus_client.Counter:
    counter = prometheus_client.Counter(
        "node_agent_lifecycle_events_total",
        "Pod and container changes the agent saw, by kind (the first relist counts "
        "what already existed).",
        ["kind"], registry=registry)
    # every kind from the start, at 0: rate() needs the series before the first event
    for kind in aiocri.EventKind:
        counter.labels(kind=kind.value)
    return counter


async def watch(client: aiocri.CRIClient, period: float,
                events: prometheus_client.Counter) -> None:
    """Count the runtime's changes until the poller stops (it raises why)."""
    async with aiocri.Poller(client, period=period) as poller:
        async for event in poller:
            events.labels(kind=event.kind.value).inc()
            log.debug("%s %s", event.kind.value, event.id)


async def run(options: argparse.Namespace,
              registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY,
              ) -> int:
    """The agent until its exit code (SIGTERM is handled by the caller's cancel scope)."""
    events = lifecycle_counter(registry)
    instrumentation = PrometheusMetrics(registry)
    try:
        async with serve_metrics(options.metrics_port, host=options.metrics_host,
                                 registry=registry) as server:
            log.info("serving metrics on http://%s:%d/metrics", options.metrics_host,
                     server.port)
            async with aiocri.connect(options.endpoint,
                                      instrumentation=instrumentation) as client:
                runtime = client.runtime_version
                log.info("pinned CRI %s on %s %s at %s", client.version, runtime.runtime_name,
                         runtime.runtime_version, options.endpoint)
                try:
                    await watch(client, options.period, events)
                except aiocri.RestartRequired as error:
                    # The runtime was upgraded to one without our CRI version. The client
                    # stays open while we linger, so the scrapes keep reporting why.
                    log.error("the runtime dropped our CRI version (%s); exiting with %d in "
                              "%g s so that a fresh start negotiates again",
                              error, EXIT_RESTART, options.linger)
                    await anyio.sleep(options.linger)
                    return EXIT_RESTART
            log.error("the poller ended without an error")
            return EXIT_FAILED
    except aiocri.CRIError as error:
        # connect failed, or the runtime answered the poller in a way it does not retry
        log.error("%s: %s", type(error).__name__, error)
        return EXIT_FAILED
    except OSError as error:  # the metrics port is taken, or the address is not ours
        # the errno's own words: the library's message repeats the address
        why = os.strerror(error.errno) if error.errno else str(error)
        log.error("cannot serve metrics on %s:%d: %s", options.metrics_host,
                  options.metrics_port, why)
        return EXIT_FAILED


async def _stop_on_signal(scope: anyio.CancelScope, *,
                          task_status: anyio.abc.TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("%s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return


async def serve(options: argparse.Namespace) -> int:
    """:func:`run`, ended by SIGTERM (the kubelet stopping the pod) or SIGINT: exit 0."""
    code = 0
    async with anyio.create_task_group() as tg:
        # the handler is in place before anything listens: an early SIGTERM is clean too
        await tg.start(_stop_on_signal, tg.cancel_scope)
        code = await run(options)
        tg.cancel_scope.cancel()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=options.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return anyio.run(serve, options)


if __name__ == "__main__":
    sys.exit(main())
