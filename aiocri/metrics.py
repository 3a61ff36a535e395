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
import errno
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
    from aiocri._events import ConnectionStats
    from aiocri.channel import ChannelManager
    from aiocri.poller import Poller
    from aiocri.poller._model import PollerStats

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
        self.discarded = Counter(
            "aiocri_pleg_discard_events", "Runtime events dropped because they piled up "
            "(a relist follows).", ep, registry=r)
        self.stream_success = Counter(
            "aiocri_pleg_events_connection_success", "Times GetContainerEvents was "
            "opened.", ep, registry=r)
        self.stream_errors = Counter(
            "aiocri_pleg_events_connection_error", "Times GetContainerEvents failed or was "
            "refused.", ep, registry=r)
        self.stream_reopens = Counter(
            "aiocri_pleg_events_stream_reopens", "Times a poller started GetContainerEvents "
            "again after its first start (a broken stream, a new connection, a retry of a "
            "refused or failing stream).", ep, registry=r)
        st = ["kind", "transport", "endpoint"]
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
            "aiocri_streaming_sessions_open", "Streaming sessions open now.",
            ["kind", "endpoint"], registry=r)
        # Watched objects, read when Prometheus scrapes (from its thread: under the
        # lock). Their counters are kept strongly: once an object is collected, they
        # are folded into a per-endpoint base, so that a total never goes down.
        self._lock = threading.Lock()
        self._managers: list[tuple[weakref.ref[ChannelManager], str, ConnectionStats]] = []
        self._pollers: list[tuple[weakref.ref[Poller], str, PollerStats]] = []
        self._gone: dict[str, dict[str, int]] = {}
        self._lost_at: weakref.WeakKeyDictionary[ChannelManager, float] = (
            weakref.WeakKeyDictionary())
        #: Endpoints whose runtime dropped the pinned version, until a client of that
        #: endpoint is ready again: the gauge outlives the client that saw it.
        self.restart_required: dict[str, bool] = {}  # holds True only
        registry.register(_StateCollector(self))

    # -- hooks --------------------------------------------------------------------

    def attach(self, manager: ChannelManager) -> None:
        with self._lock:
            self._sweep()
            self._managers.append((weakref.ref(manager), str(manager.endpoint), manager.stats))

    def call_type(self, endpoint: str, method: str, name: str) -> CallType:
        labels = (snake_case(name), endpoint)
        return _CallType(self.operations.labels(*labels), self.errors, labels,
                         None if name in _UNTIMED else self.duration.labels(*labels),
                         self.in_flight.labels(*labels))

    def connection_event(self, manager: ChannelManager, event: ConnectionEvent) -> None:
        if event.kind != "state":
            return
        state = event.state
        if state is ConnectionState.RESTART_REQUIRED:
            self.restart_required[event.endpoint] = True
        if state is ConnectionState.RECONNECTING:
            self._lost_at[manager] = event.at
        elif state is ConnectionState.READY:
            self.restart_required.pop(event.endpoint, None)
            lost = self._lost_at.pop(manager, None)
            if lost is not None:
                self.reconnect.labels(event.endpoint).observe(event.at - lost)
        elif state.terminal:
            self._lost_at.pop(manager, None)

    def poller(self, poller: Poller, endpoint: str) -> PollerObserver:
        with self._lock:
            self._sweep()
            self._pollers.append((weakref.ref(poller), endpoint, poller.stats))
        return _PollerObserver(self, endpoint)

    def session(self, kind: str, endpoint: str) -> SessionObserver:
        return _SessionObserver(self, kind, endpoint)

    # -- read at scrape time --------------------------------------------------------

    def _sweep(self) -> None:
        """Fold the counters of collected objects into their endpoint's base (locked)."""
        managers = []
        for item in self._managers:
            if item[0]() is None:
                _add(self._gone.setdefault(item[1], {}), _connection_totals(item[2]))
            else:
                managers.append(item)
        pollers = []
        for entry in self._pollers:
            if entry[0]() is None:
                _add(self._gone.setdefault(entry[1], {}), _poller_totals(entry[2]))
            else:
                pollers.append(entry)
        self._managers, self._pollers = managers, pollers

    def watched(self) -> tuple[list[tuple[ChannelManager, str]], list[tuple[Poller, str]],
                               dict[str, dict[str, int]]]:
        """The live connections and pollers, and the totals of those collected, by
        endpoint (what a scrape reports)."""
        with self._lock:
            self._sweep()
            managers = [(m, ep) for ref, ep, _ in self._managers if (m := ref()) is not None]
            pollers = [(p, ep) for ref, ep, _ in self._pollers if (p := ref()) is not None]
            return managers, pollers, {ep: dict(t) for ep, t in self._gone.items()}


def _connection_totals(stats: ConnectionStats) -> dict[str, int]:
    return {"redials": stats.redials, "redial_attempts": stats.redial_attempts,
            "losses": stats.losses}


def _poller_totals(stats: PollerStats) -> dict[str, int]:
    return {"coalesced": stats.coalesced, "dropped_to_latest": stats.dropped_to_latest,
            "relists": stats.relists}


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


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
        self.discards = metrics.discarded.labels(endpoint)
        self.opened = metrics.stream_success.labels(endpoint)
        self.reopened = metrics.stream_reopens.labels(endpoint)
        self.failed = metrics.stream_errors.labels(endpoint)
        self.opened_before = False

    def relist(self) -> AbstractContextManager[None]:
        return nullcontext()

    def relist_done(self, seconds: float, interval: float | None) -> None:
        self.relist_duration.observe(seconds)
        if interval is not None:
            self.relist_interval.observe(interval)

    def stream_opened(self) -> None:
        self.opened.inc()
        if self.opened_before:
            self.reopened.inc()
        self.opened_before = True

    def stream_failed(self, error: BaseException) -> None:
        self.failed.inc()

    def delivered(self, lag: float) -> None:
        self.lag.observe(lag)

    def discarded(self, count: int) -> None:
        self.discards.inc(count)


class _SessionObserver(SessionObserver):
    def __init__(self, metrics: PrometheusMetrics, kind: str, endpoint: str) -> None:
        self.metrics = metrics
        self.kind = kind
        self.endpoint = endpoint
        self.transport = "unknown"
        self.started = 0.0

    def opened(self, transport: str) -> None:
        self.transport = transport
        self.started = time.monotonic()
        self.metrics.sessions.labels(self.kind, transport, self.endpoint).inc()
        self.metrics.sessions_open.labels(self.kind, self.endpoint).inc()

    def closed(self, sent: int, received: int) -> None:
        m, labels = self.metrics, (self.kind, self.transport, self.endpoint)
        m.sessions_open.labels(self.kind, self.endpoint).dec()
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
        managers, pollers, gone = self._metrics.watched()
        yield from _connection_families(managers, dict(self._metrics.restart_required), gone)
        yield from _poller_families(pollers, gone)


def _connection_families(managers: list[tuple[ChannelManager, str]],
                         restart_required: dict[str, bool],
                         gone: dict[str, dict[str, int]]) -> Iterator[Any]:
    state = GaugeMetricFamily("aiocri_connection_state", "Connections in each state "
                              "(1 for the state a connection is in; closed ones are left "
                              "out).", labels=["endpoint", "state"])
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
    totals = {ep: dict(t) for ep, t in gone.items()}
    live: dict[str, list[ChannelManager]] = {}
    for m, endpoint in managers:
        _add(totals.setdefault(endpoint, {}), _connection_totals(m.stats))
        if m.state is not ConnectionState.CLOSED:
            live.setdefault(endpoint, []).append(m)
    for endpoint, total in totals.items():
        if any(name in total for name in counters):
            for name, family in counters.items():
                family.add_metric([endpoint], total.get(name, 0))
    for endpoint, group in live.items():
        for s in ConnectionState:
            if s is not ConnectionState.CLOSED:
                state.add_metric([endpoint, s.value], sum(m.state is s for m in group))
        generation.add_metric([endpoint], max(m.generation for m in group))
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
    for endpoint in live.keys() - restart_required.keys():
        restart.add_metric([endpoint], 0.0)
    yield from (state, generation, info, restart, *counters.values())


def _poller_families(pollers: list[tuple[Poller, str]],
                     gone: dict[str, dict[str, int]]) -> Iterator[Any]:
    mode = GaugeMetricFamily("aiocri_pleg_mode", "How each running poller watches (1 for "
                             "the current mode).", labels=["endpoint", "mode"])
    pending = GaugeMetricFamily("aiocri_pleg_pending_events", "Events due to each consumer.",
                                labels=["endpoint", "consumer"])
    last_seen = GaugeMetricFamily("aiocri_pleg_last_seen_seconds", "Unix time a running "
                                  "poller last saw the runtime: its last relist, or now while "
                                  "GetContainerEvents is open.", labels=["endpoint"])
    counters = {
        "coalesced": CounterMetricFamily(
            "aiocri_pleg_coalesced_events", "Events merged into a newer one of the same "
            "object (queues over max_pending).", labels=["endpoint"]),
        "dropped_to_latest": CounterMetricFamily(
            "aiocri_pleg_dropped_to_latest_events", "Events past a consumer's max_pending, "
            "replaced by the object's latest state looked up in its turn.",
            labels=["endpoint"]),
        "relists": CounterMetricFamily("aiocri_pleg_relists", "Relists done.",
                                       labels=["endpoint"]),
    }
    modes = ("starting", "relist", "events")
    totals: dict[str, dict[str, int]] = {}
    for endpoint, total in gone.items():
        if any(name in total for name in counters):
            totals[endpoint] = dict(total)
    modes_by: dict[str, dict[str, int]] = {}
    pending_by: dict[tuple[str, str], int] = {}
    seen_by: dict[str, float] = {}
    now, wall = time.monotonic(), time.time()
    for poller, endpoint in pollers:
        stats = poller.stats
        _add(totals.setdefault(endpoint, {}), _poller_totals(stats))
        if poller.closed:
            continue
        counts = modes_by.setdefault(endpoint, dict.fromkeys(modes, 0))
        counts[stats.mode] = counts.get(stats.mode, 0) + 1
        for consumer in poller.consumers:
            key = (endpoint, consumer.name)
            pending_by[key] = pending_by.get(key, 0) + consumer.pending
        if poller.stream_open:
            seen = wall
        elif stats.last_relist_at is not None:
            seen = wall - (now - stats.last_relist_at)
        else:
            continue
        seen_by[endpoint] = max(seen, seen_by.get(endpoint, 0.0))
    for endpoint, counts in modes_by.items():
        for name, n in counts.items():
            mode.add_metric([endpoint, name], n)
    for (endpoint, name), n in pending_by.items():
        pending.add_metric([endpoint, name], n)
    for endpoint, seen in seen_by.items():
        last_seen.add_metric([endpoint], seen)
    for endpoint, total in totals.items():
        for name, family in counters.items():
            family.add_metric([endpoint], total.get(name, 0))
    yield from (mode, pending, last_seen, *counters.values())


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
        """The port it listens on (the one chosen, when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not listening")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where the metrics are: ``http://host:port/metrics`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def start(self) -> MetricsServer:
        """Listen and serve (what ``await`` and ``async with`` do)."""
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")
        try:
            self._server, self._thread = prometheus_client.start_http_server(
                self._requested, addr=self.host, registry=self.registry)
        except OSError as exc:
            what = ("choose another port" if exc.errno == errno.EADDRINUSE
                    else "check the address")
            raise OSError(exc.errno, f"cannot serve metrics on {self.host}:{self._requested}: "
                          f"{exc.strerror or exc}; {what}") from None
        return self

    async def aclose(self) -> None:
        """Stop serving; from any task, any number of times."""
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
