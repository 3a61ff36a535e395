"""OpenTelemetry traces and the RPC duration metric for aiocri clients.

Needs the ``otel`` extra (``pip install 'aiocri[otel]'``: the OpenTelemetry API
only; bring the SDK and exporters you use)::

    tracing = aiocri.tracing.OpenTelemetry(tracer_provider=provider)
    async with aiocri.connect(endpoint, instrumentation=tracing) as client:
        ...

It follows OpenTelemetry's RPC semantic conventions as of schema 1.44.0 (the
stable-candidate RPC conventions, not the older ones that
``opentelemetry-instrumentation-grpc`` still emits):

- a CLIENT span per call named after ``rpc.method``
  (``runtime.v1.RuntimeService/ContainerStatus``), with ``rpc.system.name="grpc"``,
  ``rpc.method``, ``server.address`` (a unix socket's path), ``network.transport``,
  ``rpc.response.status_code`` ("OK", "NOT_FOUND") and, on failure, ``error.type``
  and an ERROR status. The caller's current span is its parent;
- the span's context sent to the runtime in the call's metadata (W3C
  ``traceparent``, through the global propagator);
- an ``aiocri.resent`` event on a call's span when it was sent again after a redial;
- an ``aiocri.redial`` span from a lost connection to the next ready one (or the
  restart-required verdict), an event per failed attempt;
- an ``aiocri.relist`` span around each poller relist (its calls are its children);
- the histogram ``rpc.client.call.duration`` (seconds) with the same attributes.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aiocri.tracing needs opentelemetry-api: "
                      "pip install 'aiocri[otel]'") from exc

from aiocri._events import ConnectionEvent, ConnectionState
from aiocri.instrument import (
    CallRecord,
    CallType,
    Instrumentation,
    PollerObserver,
    error_code,
)

if TYPE_CHECKING:
    from aiocri.channel import ChannelManager
    from aiocri.poller import Poller

__all__ = ["SCHEMA_URL", "OpenTelemetry"]

#: The semantic conventions followed.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"

#: rpc.client.call.duration's advised buckets (the conventions' list), seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aiocri")
    except PackageNotFoundError:  # pragma: no cover - a source tree
        return "0"


def _server(endpoint: str) -> dict[str, str]:
    if endpoint.startswith("unix://"):
        return {"server.address": endpoint[len("unix://"):], "network.transport": "unix"}
    address = endpoint.split("://", 1)[-1]
    return {"server.address": address.rsplit(":", 1)[0], "network.transport": "tcp"}


class OpenTelemetry(Instrumentation):
    """Spans and the call-duration metric through OpenTelemetry's API.

    ``tracer_provider`` / ``meter_provider``: default the global ones (set by your
    SDK set-up, or no-ops when there is none).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: otel_metrics.MeterProvider | None = None) -> None:
        if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
            raise TypeError(f"tracer_provider must be an opentelemetry TracerProvider, "
                            f"not {tracer_provider!r}")
        if meter_provider is not None and not isinstance(meter_provider,
                                                         otel_metrics.MeterProvider):
            raise TypeError(f"meter_provider must be an opentelemetry MeterProvider, "
                            f"not {meter_provider!r}")
        self.tracer = trace.get_tracer("aiocri", _version(), tracer_provider,
                                       schema_url=SCHEMA_URL)
        meter = otel_metrics.get_meter("aiocri", _version(), meter_provider,
                                       schema_url=SCHEMA_URL)
        self.duration = meter.create_histogram(
            "rpc.client.call.duration", unit="s",
            description="Duration of CRI calls as the client saw them.",
            explicit_bucket_boundaries_advisory=list(_BUCKETS))
        self._redials: weakref.WeakKeyDictionary[ChannelManager, trace.Span] = (
            weakref.WeakKeyDictionary())

    def call_type(self, endpoint: str, method: str, name: str) -> CallType:
        return _CallType(self, method, endpoint)

    def connection_event(self, manager: ChannelManager, event: ConnectionEvent) -> None:
        endpoint, state = event.endpoint, event.state
        span = self._redials.get(manager)
        if event.kind == "redial_attempt" and span is not None:
            span.add_event("aiocri.redial_attempt", {
                "aiocri.attempt": event.attempt,
                "error.type": "" if event.error is None else error_code(event.error)})
            return
        if event.kind != "state":
            return
        if state is ConnectionState.RECONNECTING and span is None:
            self._redials[manager] = self.tracer.start_span(
                "aiocri.redial", kind=SpanKind.INTERNAL, context=_ROOT,
                attributes={**_server(endpoint), "aiocri.pinned": event.pinned or "",
                            "aiocri.generation.lost": event.generation})
        elif span is not None and state is not ConnectionState.RECONNECTING:
            del self._redials[manager]
            span.set_attribute("aiocri.state", state.value)
            if state is ConnectionState.READY:
                span.set_attribute("aiocri.generation", event.generation)
            elif state is ConnectionState.RESTART_REQUIRED:
                span.set_status(Status(StatusCode.ERROR, "the runtime dropped the pinned "
                                       "CRI version: restart required"))
                span.set_attribute("error.type", "RestartRequired")
            span.end()

    def poller(self, poller: Poller, endpoint: str) -> PollerObserver:
        return _PollerObserver(self.tracer, {**_server(endpoint)})


#: A context with no span in it: a redial is no call's child.
_ROOT = trace.set_span_in_context(trace.INVALID_SPAN)


class _CallType(CallType):
    __slots__ = ("attributes", "duration", "failed", "method", "ok", "tracer")

    def __init__(self, owner: OpenTelemetry, method: str, endpoint: str) -> None:
        self.tracer = owner.tracer
        self.duration = owner.duration
        self.method = method
        self.attributes: Mapping[str, Any] = {
            "rpc.system.name": "grpc", "rpc.method": method, **_server(endpoint)}
        self.ok = {**self.attributes, "rpc.response.status_code": "OK"}
        self.failed: dict[str, dict[str, Any]] = {}  # attributes of a failure, by code

    def begin(self) -> CallRecord:
        span = self.tracer.start_span(self.method, kind=SpanKind.CLIENT,
                                      attributes=self.attributes)
        return _CallRecord(self, span)

    def failure(self, code: str) -> dict[str, Any]:
        attributes = self.failed.get(code)
        if attributes is None:
            attributes = self.failed[code] = {
                **self.attributes, "rpc.response.status_code": code, "error.type": code}
        return attributes


class _CallRecord(CallRecord):
    __slots__ = ("kind", "metadata", "span", "started")

    def __init__(self, kind: _CallType, span: trace.Span) -> None:
        self.kind = kind
        self.span = span
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            self.metadata = _grpc_metadata(carrier)
        else:
            self.metadata = None
        self.started = time.perf_counter()

    def resent(self, generation: int) -> None:
        self.span.add_event("aiocri.resent", {"aiocri.generation": generation})

    def end(self, error: BaseException | None) -> None:
        seconds = time.perf_counter() - self.started
        span, kind = self.span, self.kind
        if error is None:
            attributes = kind.ok
            span.set_attribute("rpc.response.status_code", "OK")
        else:
            code = error_code(error)
            attributes = kind.failure(code)
            span.set_attribute("rpc.response.status_code", code)
            span.set_attribute("error.type", code)
            if not isinstance(error, asyncio.CancelledError):
                span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()
        kind.duration.record(seconds, attributes)


_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")


def _grpc_metadata(carrier: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    """What a propagator wrote, as gRPC metadata: keys lowercased (gRPC refuses
    capitals, as in X-Ray's ``X-Amzn-Trace-Id``); keys gRPC cannot carry as text
    (binary ``-bin`` ones, odd characters) left out."""
    pairs = []
    for key, value in carrier.items():
        key = key.lower()
        if _METADATA_KEY.fullmatch(key) and not key.endswith("-bin") \
                and not key.startswith("grpc-"):
            pairs.append((key, str(value)))
    return tuple(pairs) or None


class _PollerObserver(PollerObserver):
    def __init__(self, tracer: trace.Tracer, attributes: dict[str, Any]) -> None:
        self.tracer = tracer
        self.attributes = attributes

    def relist(self) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span("aiocri.relist", kind=SpanKind.INTERNAL,
                                                 attributes=self.attributes)
