"""Prometheus metrics for aiocri clients, pollers and streaming sessions.

Needs the ``prometheus`` extra (``pip install 'aiocri[prometheus]'``)::

    metrics = aiocri.metrics.PrometheusMetrics()          # the default registry
    async with aiocri.connect(endpoint, instrumentation=metrics) as client, \\
            aiocri.metrics.serve_metrics(9101):
        ...

The names follow the kubelet's (``kubelet_runtime_operations_*``,
``kubelet_pleg_*``) with the prefix ``aiocri_``, so that a kubelet dashboard or alert
reads them with one word changed. Labels are bounded: RPC names, endpoints, states,
codes, consumer names; never an object id. Every metric is listed in the README's
"Metrics" table with its labels.

Per call, the cost is a histogram observation and two counter increments on
children made once per RPC and endpoint; connection and poller state is read only
when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aiocri.metrics needs prometheus-client: "
                      "pip install 'aiocri[prometheus]'") from exc

from aiocri._events import ConnectionEvent, ConnectionState
from aiocri._rpc import snake_case
from aiocri.instrument import (
    CallRecord,
    CallType,
    Instrumentation,
    PollerObserver,
    SessionObserver,
    error_code,
)

if TYPE_CHECKING:
    from aiocri.channel import ChannelManager
    from aiocri.poller import Poller

__all__ = ["KUBELET_BUCKETS", "MetricsServer", "PrometheusMetrics", "serve_metrics"]

#: The kubelet's runtime-operation buckets: ExponentialBuckets(0.005, 2.5, 14).
KUBELET_BUCKETS: tuple[float, ...] = tuple(0.005 * 2.5**i for i in range(14))

#: Stream RPCs that live as long as their reader: counted, not timed (a duration
#: would measure the reader's patience; the poller's event lag is the latency).
_UNTIMED = frozenset({"GetContainerEvents"})


class PrometheusMetrics(Instrumentation):
    """Prometheus collectors for every client, poller and session instrumented with it.

    Give one to :func:`aiocri.connect` (``instrumentation=``); any number of clients
    may share it. ``registry``: where the collectors are registered (default
    ``prometheus_client.REGISTRY``); one PrometheusMetrics per registry.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = prometheus_client.REGISTRY
        elif not isinstance(registry, CollectorRegistry):
            raise TypeError(f"registry must be a prometheus_client.CollectorRegistry, "
                            f"not {registry!r}")
        self.registry = registry
        ep, op = ["endpoint"], ["operation_type", "endpoint"]
        r = registry
        self.operations = Counter(
            "aiocri_runtime_operations", "CRI calls made, by RPC and endpoint.", op, registry=r)
        self.errors = Counter(
            "aiocri_runtime_operations_errors", "CRI calls that failed, by RPC, endpoint and "
            "code (gRPC code, CANCELLED, or the error class).", [*op, "code"], registry=r)
        self.duration = Histogram(
            "aiocri_runtime_operations_duration_seconds", "Duration of CRI calls, seconds "
            "(the kubelet's buckets; GetContainerEvents is not timed).", op,
            buckets=KUBELET_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "aiocri_runtime_operations_in_flight", "CRI calls in flight.", op, registry=r)
        self.reconnect = Histogram(
            "aiocri_connection_reconnect_duration_seconds", "From a lost connection to the "
            "next one ready (version re-checked), seconds.", ep, registry=r)
        self.relist_duration = Histogram(
            "aiocri_pleg_relist_duration_seconds", "Duration of a poller relist (lists, "
            "diff and status calls), seconds.", ep, registry=r)
        self.relist_interval = Histogram(
            "aiocri_pleg_relist_interval_seconds", "Seconds between the starts of two "
            "relists.", ep, registry=r)
        self.event_lag = Histogram(
            "aiocri_pleg_event_lag_seconds", "From the runtime's own time of a change "
            "(container start or finish, creation) to its delivery to a consumer, "
            "seconds.", ep, registry=r)
        self.last_seen = Gauge(
            "aiocri_pleg_last_seen_seconds", "Unix time the poller last saw the runtime "
            "(a relist or an event).", ep, registry=r)
        self.discarded = Counter(
            "aiocri_pleg_discard_events", "Runtime events dropped because they piled up "
            "(a relist follows).", ep, registry=r)
        self.stream_success = Counter(
            "aiocri_pleg_events_connection_success", "Times GetContainerEvents was "
            "opened.", ep, registry=r)
        self.stream_errors = Counter(
            "aiocri_pleg_events_connection_error", "Times GetContainerEvents failed or was "
            "refused.", ep, registry=r)
        st = ["kind", "transport"]
        self.sessions = Counter(
            "aiocri_streaming_sessions", "Streaming sessions opened (exec, attach, "
            "portforward) by transport.", st, registry=r)
        self.session_duration = Histogram(
            "aiocri_streaming_session_duration_seconds", "Streaming sessions, open to "
            "close, seconds.", st, registry=r)
        self.session_bytes = Counter(
            "aiocri_streaming_bytes", "Bytes of closed streaming sessions, by direction "
            "(sent: to the container).", [*st, "direction"], registry=r)
        self.sessions_open = Gauge(
            "aiocri_streaming_sessions_open", "Streaming sessions open now.", ["kind"],
            registry=r)
        # Read at scrape time: tuples replaced whole, so the scraping thread never
        # sees one half-changed.
        self._managers: tuple[weakref.ref[ChannelManager], ...] = ()
        self._pollers: tuple[tuple[weakref.ref[Poller], str], ...] = ()
        self._lost_at: dict[str, float] = {}
        #: Endpoints whose runtime dropped the pinned version, until a client of that
        #: endpoint is ready again: the gauge outlives the client that saw it.
        self.restart_required: dict[str, bool] = {}  # holds True only
        registry.register(_StateCollector(self))

    # -- hooks --------------------------------------------------------------------

    def attach(self, manager: ChannelManager) -> None:
        alive = tuple(m for m in self._managers if m() is not None)
        self._managers = (*alive, weakref.ref(manager))

    def call_type(self, endpoint: str, method: str, name: str) -> CallType:
        labels = (snake_case(name), endpoint)
        return _CallType(self.operations.labels(*labels), self.errors, labels,
                         None if name in _UNTIMED else self.duration.labels(*labels),
                         self.in_flight.labels(*labels))

    def connection_event(self, event: ConnectionEvent) -> None:
        if event.kind != "state":
            return
        if event.state is ConnectionState.RESTART_REQUIRED:
            self.restart_required[event.endpoint] = True
        if event.state is ConnectionState.RECONNECTING:
            self._lost_at[event.endpoint] = event.at
        elif event.state is ConnectionState.READY:
            self.restart_required.pop(event.endpoint, None)
            lost = self._lost_at.pop(event.endpoint, None)
            if lost is not None:
                self.reconnect.labels(event.endpoint).observe(event.at - lost)
        elif event.state.terminal:
            self._lost_at.pop(event.endpoint, None)

    def poller(self, poller: Poller, endpoint: str) -> PollerObserver:
        alive = tuple(p for p in self._pollers if p[0]() is not None)
        self._pollers = (*alive, (weakref.ref(poller), endpoint))
        return _PollerObserver(self, endpoint)

    def session(self, kind: str, endpoint: str) -> SessionObserver:
        return _SessionObserver(self, kind)

    # -- read at scrape time --------------------------------------------------------

    def managers(self) -> list[ChannelManager]:
        return [m for ref in self._managers if (m := ref()) is not None]

    def pollers(self) -> list[tuple[Poller, str]]:
        return [(p, ep) for ref, ep in self._pollers if (p := ref()) is not None]


class _CallType(CallType):
    __slots__ = ("errors", "errors_family", "in_flight", "labels", "ops", "seconds")

    def __init__(self, ops: Any, errors_family: Counter, labels: tuple[str, str],
                 seconds: Any, in_flight: Any) -> None:
        self.ops = ops
        self.errors_family = errors_family
        self.labels = labels
        self.seconds = seconds
        self.in_flight = in_flight
        self.errors: dict[str, Any] = {}  # the error counter's children, by code

    def begin(self) -> CallRecord:
        self.in_flight.inc()
        return _CallRecord(self, time.perf_counter())


class _CallRecord(CallRecord):
    __slots__ = ("kind", "started")

    def __init__(self, kind: _CallType, started: float) -> None:
        self.kind = kind
        self.started = started

    def end(self, error: BaseException | None) -> None:
        kind = self.kind
        kind.in_flight.dec()
        kind.ops.inc()
        if kind.seconds is not None:
            kind.seconds.observe(time.perf_counter() - self.started)
        if error is not None:
            code = error_code(error)
            child = kind.errors.get(code)
            if child is None:
                child = kind.errors[code] = kind.errors_family.labels(*kind.labels, code)
            child.inc()


class _PollerObserver(PollerObserver):
    def __init__(self, metrics: PrometheusMetrics, endpoint: str) -> None:
        self.relist_duration = metrics.relist_duration.labels(endpoint)
        self.relist_interval = metrics.relist_interval.labels(endpoint)
        self.lag = metrics.event_lag.labels(endpoint)
        self.last_seen = metrics.last_seen.labels(endpoint)
        self.discards = metrics.discarded.labels(endpoint)
        self.opened = metrics.stream_success.labels(endpoint)
        self.failed = metrics.stream_errors.labels(endpoint)

    def relist(self) -> AbstractContextManager[None]:
        return nullcontext()

    def relist_done(self, seconds: float, interval: float | None) -> None:
        self.relist_duration.observe(seconds)
        if interval is not None:
            self.relist_interval.observe(interval)
        self.last_seen.set(time.time())

    def stream_opened(self) -> None:
        self.opened.inc()

    def stream_failed(self, error: BaseException) -> None:
        self.failed.inc()

    def delivered(self, lag: float) -> None:
        self.lag.observe(lag)
        self.last_seen.set(time.time())

    def discarded(self, count: int) -> None:
        self.discards.inc(count)


class _SessionObserver(SessionObserver):
    def __init__(self, metrics: PrometheusMetrics, kind: str) -> None:
        self.metrics = metrics
        self.kind = kind
        self.transport = "unknown"
        self.started = 0.0

    def opened(self, transport: str) -> None:
        self.transport = transport
        self.started = time.monotonic()
        self.metrics.sessions.labels(self.kind, transport).inc()
        self.metrics.sessions_open.labels(self.kind).inc()

    def closed(self, sent: int, received: int) -> None:
        m, labels = self.metrics, (self.kind, self.transport)
        m.sessions_open.labels(self.kind).dec()
        m.session_duration.labels(*labels).observe(time.monotonic() - self.started)
        m.session_bytes.labels(*labels, "sent").inc(sent)
        m.session_bytes.labels(*labels, "received").inc(received)


class _StateCollector(Collector):
    """Connection and poller state, read when Prometheus scrapes."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Any]:
        return ()  # made at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        yield from _connection_families(self._metrics.managers(),
                                        dict(self._metrics.restart_required))
        yield from _poller_families(self._metrics.pollers())


def _connection_families(managers: list[ChannelManager],
                         restart_required: dict[str, bool]) -> Iterator[Any]:
    state = GaugeMetricFamily("aiocri_connection_state", "Connections in each state "
                              "(1 for the state a connection is in).", labels=["endpoint", "state"])
    generation = GaugeMetricFamily("aiocri_connection_generation", "Connection generation: "
                                   "grows by one on every connect, redial or renegotiation.",
                                   labels=["endpoint"])
    info = GaugeMetricFamily("aiocri_connection_info", "The pinned CRI version and the "
                             "runtime that answered (1).",
                             labels=["endpoint", "version", "runtime_name", "runtime_version"])
    restart = GaugeMetricFamily("aiocri_restart_required", "1 once the runtime dropped the "
                                "pinned CRI version (even after that client closed), until a "
                                "client of the endpoint is ready again.", labels=["endpoint"])
    counters = {
        "redials": CounterMetricFamily("aiocri_connection_redials", "Successful redials "
                                       "(pinned version still served).", labels=["endpoint"]),
        "redial_attempts": CounterMetricFamily("aiocri_connection_redial_attempts",
                                               "Redial attempts.", labels=["endpoint"]),
        "losses": CounterMetricFamily("aiocri_connection_losses", "Connections declared "
                                      "lost.", labels=["endpoint"]),
    }
    by_endpoint: dict[str, list[ChannelManager]] = {}
    for m in managers:
        by_endpoint.setdefault(str(m.endpoint), []).append(m)
    for endpoint, group in by_endpoint.items():
        for s in ConnectionState:
            state.add_metric([endpoint, s.value], sum(m.state is s for m in group))
        generation.add_metric([endpoint], max(m.generation for m in group))
        for name, family in counters.items():
            family.add_metric([endpoint], sum(getattr(m.stats, name) for m in group))
        seen: set[tuple[str, str, str]] = set()
        for m in group:
            answer = m.version_response
            if m.pinned is None or m.state.terminal:
                continue
            key = (m.pinned.name, getattr(answer, "runtime_name", ""),
                   getattr(answer, "runtime_version", ""))
            if key not in seen:
                seen.add(key)
                info.add_metric([endpoint, *key], 1)
    for endpoint, required in restart_required.items():
        restart.add_metric([endpoint], float(required))
    for endpoint in by_endpoint.keys() - restart_required.keys():
        restart.add_metric([endpoint], 0.0)
    yield from (state, generation, info, restart, *counters.values())


def _poller_families(pollers: list[tuple[Poller, str]]) -> Iterator[Any]:
    mode = GaugeMetricFamily("aiocri_pleg_mode", "How the poller watches (1 for the "
                             "current mode).", labels=["endpoint", "mode"])
    pending = GaugeMetricFamily("aiocri_pleg_pending_events", "Events due to each consumer.",
                                labels=["endpoint", "consumer"])
    coalesced = CounterMetricFamily("aiocri_pleg_coalesced_events", "Events merged into a "
                                    "newer one of the same object (queues over max_pending).",
                                    labels=["endpoint"])
    dropped = CounterMetricFamily("aiocri_pleg_dropped_to_latest_events", "Events past a "
                                  "consumer's max_pending, replaced by the object's latest "
                                  "state looked up in its turn.", labels=["endpoint"])
    relists = CounterMetricFamily("aiocri_pleg_relists", "Relists done.", labels=["endpoint"])
    reopens = CounterMetricFamily("aiocri_pleg_events_stream_opens", "Times "
                                  "GetContainerEvents was opened.", labels=["endpoint"])
    modes = ("starting", "relist", "events")
    totals: dict[str, list[int]] = {}
    modes_by_endpoint: dict[str, dict[str, int]] = {}
    pending_by: dict[tuple[str, str], int] = {}
    for poller, endpoint in pollers:
        stats = poller.stats
        t = totals.setdefault(endpoint, [0, 0, 0, 0])
        t[0] += stats.coalesced
        t[1] += stats.relists
        t[2] += stats.stream_opens
        t[3] += stats.dropped_to_latest
        counts = modes_by_endpoint.setdefault(endpoint, dict.fromkeys(modes, 0))
        counts[stats.mode] = counts.get(stats.mode, 0) + 1
        for consumer in poller.consumers:
            key = (endpoint, consumer.name)
            pending_by[key] = pending_by.get(key, 0) + consumer.pending
    for endpoint, counts in modes_by_endpoint.items():
        for name, n in counts.items():
            mode.add_metric([endpoint, name], n)
    for (endpoint, name), n in pending_by.items():
        pending.add_metric([endpoint, name], n)
    for endpoint, (c, r, o, d) in totals.items():
        coalesced.add_metric([endpoint], c)
        dropped.add_metric([endpoint], d)
        relists.add_metric([endpoint], r)
        reopens.add_metric([endpoint], o)
    yield from (mode, pending, coalesced, dropped, relists, reopens)


class MetricsServer:
    """``/metrics`` over HTTP, served by prometheus_client in a thread of its own.

    Use as ``async with serve_metrics(port) as server``, or ``await`` it and
    ``await server.aclose()`` from any task. ``port``: the port it listens on.
    """

    def __init__(self, port: int, host: str, registry: CollectorRegistry) -> None:
        self._requested = port
        self.host = host
        self.registry = registry
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not listening")
        return int(self._server.server_address[1])

    async def start(self) -> MetricsServer:
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")
        try:
            self._server, self._thread = prometheus_client.start_http_server(
                self._requested, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self._requested}: "
                          f"{exc.strerror or exc}; choose another port") from None
        return self

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() waits for the serving thread's loop to notice: not on the event loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def __await__(self) -> Any:
        return self.start().__await__()

    async def __aenter__(self) -> MetricsServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def serve_metrics(port: int, *, host: str = "127.0.0.1",
                  registry: CollectorRegistry | None = None) -> MetricsServer:
    """Serve ``registry`` (default: prometheus_client's) on ``http://host:port/metrics``;
    port 0 picks a free one (see ``server.port``). Wrong arguments raise at once."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {port}")
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty str, not {host!r}")
    if registry is not None and not isinstance(registry, CollectorRegistry):
        raise TypeError(f"registry must be a prometheus_client.CollectorRegistry, "
                        f"not {registry!r}")
    return MetricsServer(port, host, registry or prometheus_client.REGISTRY)
