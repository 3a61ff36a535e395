"""aiocri.tracing: spans, propagation and the call-duration metric, checked with the
OpenTelemetry SDK's in-memory exporter and reader against the fake runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator, default_setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import aiocri
from aiocri import ConnectionState, RedialPolicy
from aiocri.poller import Poller
from aiocri.testing import FakeRuntime, wait_for, wait_for_state
from aiocri.tracing import OpenTelemetry

pytestmark = pytest.mark.anyio

FAST = RedialPolicy(connect_timeout=2.0)


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    provider: TracerProvider
    instrumentation: OpenTelemetry

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def durations(self) -> list[tuple[dict[str, Any], int]]:
        data = self.reader.get_metrics_data()
        points: list[tuple[dict[str, Any], int]] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "rpc.client.call.duration":
                        assert metric.unit == "s"
                        points += [(dict(p.attributes or {}), p.count)  # type: ignore[union-attr]
                                   for p in metric.data.data_points]
        return points


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, provider, OpenTelemetry(tracer_provider=provider,
                                                      meter_provider=meters))
    provider.shutdown()
    meters.shutdown()


async def until(condition: Callable[[], object], what: str) -> None:
    await wait_for(lambda: bool(condition()), timeout=30, what=what)


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


async def test_a_client_span_per_call_with_the_conventions_attributes(
        runtime: FakeRuntime, otel: Otel) -> None:
    async with aiocri.connect(runtime.endpoint, instrumentation=otel.instrumentation) as client:
        await client.runtime.list_containers()
        with pytest.raises(aiocri.NotFound):
            await client.runtime.container_status(container_id="missing")
    ok, failed = otel.finished("runtime.v1.RuntimeService/ListContainers"), otel.finished(
        "runtime.v1.RuntimeService/ContainerStatus")
    assert len(ok) == 1 and len(failed) == 1
    socket = runtime.endpoint.removeprefix("unix://")
    assert ok[0].kind is SpanKind.CLIENT
    assert dict(ok[0].attributes or {}) == {
        "rpc.system.name": "grpc", "rpc.method": "runtime.v1.RuntimeService/ListContainers",
        "server.address": socket, "network.transport": "unix",
        "rpc.response.status_code": "OK"}
    assert ok[0].status.status_code is StatusCode.UNSET
    attributes = dict(failed[0].attributes or {})
    assert attributes["rpc.response.status_code"] == "NOT_FOUND"
    assert attributes["error.type"] == "NOT_FOUND"
    assert failed[0].status.status_code is StatusCode.ERROR
    assert "missing" in (failed[0].status.description or "")
    # the metric, with the same attributes
    points = dict((p["rpc.method"] + " " + p["rpc.response.status_code"], n)
                  for p, n in otel.durations())
    assert points == {"runtime.v1.RuntimeService/ListContainers OK": 1,
                      "runtime.v1.RuntimeService/ContainerStatus NOT_FOUND": 1}


async def test_the_v1alpha2_method_is_named_by_its_package(otel: Otel) -> None:
    async with (FakeRuntime(versions=("v1alpha2",)) as rt,
                aiocri.connect(rt.endpoint, instrumentation=otel.instrumentation) as client):
        await client.runtime.version()
    assert [s.name for s in otel.finished()] == ["runtime.v1alpha2.RuntimeService/Version"]


async def test_the_users_span_is_the_parent_and_the_runtime_gets_its_context(
        runtime: FakeRuntime, otel: Otel) -> None:
    tracer = otel.provider.get_tracer("the user's code")
    async with aiocri.connect(runtime.endpoint, instrumentation=otel.instrumentation) as client:
        with tracer.start_as_current_span("reconcile") as mine:
            await client.runtime.list_pod_sandbox()
        await client.runtime.version()  # no span of the user's: a root
    (call,) = otel.finished("runtime.v1.RuntimeService/ListPodSandbox")
    (root,) = otel.finished("runtime.v1.RuntimeService/Version")
    assert call.parent is not None
    assert call.parent.span_id == mine.get_span_context().span_id
    assert call.context.trace_id == mine.get_span_context().trace_id
    assert root.parent is None
    # W3C trace context in the call's metadata: version-trace-parent-flags
    sent = dict(runtime.traceparents)
    assert sent["ListPodSandbox"].split("-")[:3] == [
        "00", hexid(call.context.trace_id, 32), hexid(call.context.span_id, 16)]
    assert sent["Version"].split("-")[2] == hexid(root.context.span_id, 16)


async def test_a_no_op_provider_sends_no_context(runtime: FakeRuntime) -> None:
    tracing = OpenTelemetry(tracer_provider=trace.NoOpTracerProvider())
    async with aiocri.connect(runtime.endpoint, instrumentation=tracing) as client:
        await client.runtime.version()
    assert runtime.traceparents == []


async def test_a_resend_after_a_redial_is_an_event_on_the_calls_span(
        runtime: FakeRuntime, otel: Otel) -> None:
    runtime.inject_latency("ListContainers", 0.5)
    async with aiocri.connect(runtime.endpoint, redial=FAST,
                              instrumentation=otel.instrumentation) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.runtime.list_containers)
            await until(lambda: runtime.calls["ListContainers"], "the call in flight")
            runtime.clear_injections()
            await runtime.restart(down_for=0.1)
        assert client.generation == 2
    (call,) = otel.finished("runtime.v1.RuntimeService/ListContainers")
    assert [e.name for e in call.events] == ["aiocri.resent"]
    assert dict(call.events[0].attributes or {}) == {"aiocri.generation": 2}
    assert call.status.status_code is StatusCode.UNSET
    # both sends carried the same span's context
    sent = [tp for name, tp in runtime.traceparents if name == "ListContainers"]
    assert len(sent) == 2 and sent[0] == sent[1]
    # the redial: one span from the loss to the next ready connection
    (redial,) = otel.finished("aiocri.redial")
    attributes = dict(redial.attributes or {})
    assert attributes["aiocri.state"] == "ready"
    assert attributes["aiocri.generation"] == 2
    assert redial.parent is None
    assert redial.end_time is not None and redial.start_time is not None
    assert redial.end_time > redial.start_time


async def test_an_upgrade_that_drops_the_version_ends_the_redial_span_in_error(
        otel: Otel) -> None:
    async with (FakeRuntime(versions=("v1alpha2",)) as rt,
                aiocri.connect(rt.endpoint, redial=FAST,
                               instrumentation=otel.instrumentation) as client):
        await rt.upgrade(("v1",), down_for=0.1)
        await client.restart_required()
        assert client.state is ConnectionState.RESTART_REQUIRED
    (redial,) = otel.finished("aiocri.redial")
    assert redial.status.status_code is StatusCode.ERROR
    assert dict(redial.attributes or {})["aiocri.state"] == "restart_required"
    assert "restart required" in (redial.status.description or "")


async def test_failed_redial_attempts_are_events(runtime: FakeRuntime, otel: Otel) -> None:
    async with aiocri.connect(runtime.endpoint, redial=FAST,
                              instrumentation=otel.instrumentation) as client:
        await runtime.stop()
        await wait_for_state(client, ConnectionState.RECONNECTING)
        runtime.inject_errors("Version", count=2)
        await runtime.start()
        await wait_for_state(client, ConnectionState.READY, timeout=30)
    (redial,) = otel.finished("aiocri.redial")
    attempts = [e for e in redial.events if e.name == "aiocri.redial_attempt"]
    assert len(attempts) >= 2
    assert all(dict(e.attributes or {})["error.type"] for e in attempts)


async def test_a_relist_is_a_span_with_its_calls_as_children(
        runtime: FakeRuntime, otel: Otel) -> None:
    runtime.populate(pods=1, containers_per_pod=1)
    async with (aiocri.connect(runtime.endpoint, instrumentation=otel.instrumentation) as client,
                Poller(client, mode="relist", period=30) as poller):
        await poller.wait_synced()
    relists = otel.finished("aiocri.relist")
    assert len(relists) == 1
    relist = relists[0]
    children = [s for s in otel.finished()
                if s.parent is not None and s.parent.span_id == relist.context.span_id]
    names = sorted(s.name.rsplit("/", 1)[1] for s in children)
    # the lists (Stream* on v1), and the first relist's status of exited ones: none here
    assert names == ["StreamContainers", "StreamPodSandboxes"], names
    assert all(s.context.trace_id == relist.context.trace_id for s in children)


class _XRayLike(TextMapPropagator):
    """Writes its header with capitals, as AWS X-Ray's propagator does, and a binary one."""

    def inject(self, carrier: Any, context: Any = None, setter: Any = default_setter) -> None:
        span = trace.get_current_span(context).get_span_context()
        setter.set(carrier, "X-Amzn-Trace-Id", f"Root=1-{span.trace_id:032x}")
        setter.set(carrier, "grpc-trace-bin", "not text")

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        return context

    @property
    def fields(self) -> set[str]:
        return {"X-Amzn-Trace-Id", "grpc-trace-bin"}


async def test_any_propagator_works_over_grpc_metadata(
        runtime: FakeRuntime, otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC refuses capitals in metadata keys: a propagator's header is lowercased,
    not a reason for every call to fail."""
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT",
                        CompositePropagator([TraceContextTextMapPropagator(), _XRayLike()]))
    async with aiocri.connect(runtime.endpoint, instrumentation=otel.instrumentation) as client:
        await client.runtime.version()
    (call,) = otel.finished("runtime.v1.RuntimeService/Version")
    assert call.status.status_code is StatusCode.UNSET
    assert runtime.traceparents[-1][1].split("-")[1] == hexid(call.context.trace_id, 32)
