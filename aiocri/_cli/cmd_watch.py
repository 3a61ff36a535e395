"""Long-running subcommands: ``events`` and ``watch``, both built on the poller.

``events`` prints what crictl prints: one ContainerEventResponse per event, as
JSON or YAML (or a line each). Its events are the poller's: it follows
GetContainerEvents where the runtime has it and relists where it does not, moves
between the two by itself, and after a reconnect relists to tell what changed
while the runtime was down. ``watch`` is a live table (rich.live) of the poller's
snapshot, its recent events and the connection's state.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

import anyio
from google.protobuf.message import Message
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aiocri import api
from aiocri._cli.args import Context, Option
from aiocri._cli.cmd_read import POD_NAME_LABEL, POD_NAMESPACE_LABEL, container_state_text
from aiocri._cli.common import WATCH, TemplateOpt, command, output_template, settings_of
from aiocri._cli.render import OutputFormat, age, dump, message_dict, rfc3339, truncate_id
from aiocri._cli.runner import CLIError, current_endpoint, run
from aiocri.client import CRIClient
from aiocri.errors import RestartRequired
from aiocri.poller import EventKind, LifecycleEvent, Poller, Snapshot

__all__ = ["EventMessages", "events_cmd", "watch_cmd"]

_EVENT_TYPE = {
    EventKind.CONTAINER_CREATED: api.CONTAINER_CREATED_EVENT,
    EventKind.CONTAINER_STARTED: api.CONTAINER_STARTED_EVENT,
    EventKind.CONTAINER_EXITED: api.CONTAINER_STOPPED_EVENT,
    EventKind.CONTAINER_REMOVED: api.CONTAINER_DELETED_EVENT,
    EventKind.POD_READY: api.CONTAINER_STARTED_EVENT,
    EventKind.POD_NOT_READY: api.CONTAINER_STOPPED_EVENT,
    EventKind.POD_REMOVED: api.CONTAINER_DELETED_EVENT,
}
_S = TypeVar("_S", api.PodSandboxStatus, api.ContainerStatus)
_GONE = (EventKind.CONTAINER_REMOVED, EventKind.POD_REMOVED)


class EventMessages:
    """Poller events in GetContainerEvents' form, each with its pod's status and (for a
    container) the container's status as last seen.

    The poller's events carry the status fetched for the change; removals and what the
    first relist listed carry none: those come from the statuses of earlier events,
    else from the snapshot (``first``: the one of the first relist, which still holds
    what was removed since).
    """

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._first: Snapshot = poller.snapshot
        self._pods: dict[str, api.PodSandboxStatus] = {}
        self._containers: dict[str, api.ContainerStatus] = {}

    def message(self, event: LifecycleEvent) -> api.ContainerEventResponse:
        """``event`` as a ContainerEventResponse; ``created_at``: when the poller saw it."""
        wall = time.time_ns() - time.monotonic_ns() + int(event.at * 1e9)
        message = api.ContainerEventResponse(
            container_id=event.id, container_event_type=_EVENT_TYPE[event.kind],
            created_at=wall)
        pod = self._known(self._pods, event.pod_id, event.status, api.PodSandboxStatus)
        if pod is not None:
            message.pod_sandbox_status.CopyFrom(pod)
        if event.kind.is_pod:
            message.pod_sandbox_status.state = event.state  # type: ignore[assignment]
        else:
            status = self._known(self._containers, event.id, event.status, api.ContainerStatus)
            if status is not None:
                mine = message.containers_statuses.add()
                mine.CopyFrom(status)
                mine.state = event.state  # type: ignore[assignment]
                if event.exit_code is not None:
                    mine.exit_code = event.exit_code
        if event.kind in _GONE:
            (self._pods if event.kind.is_pod else self._containers).pop(event.id, None)
        return message

    def _known(self, known: dict[str, _S], oid: str, status: object, kind: type[_S]
               ) -> _S | None:
        """The status of ``oid``: ``status`` if it is one, else the last one seen, else
        one made of the snapshot's list entry (the fields they share)."""
        if isinstance(status, kind):
            known[oid] = status
            return status
        found = known.get(oid)
        if found is None:
            listed = _listed((self._poller.snapshot, self._first), kind, oid)
            if listed is not None:
                shared = [f.name for f in listed.DESCRIPTOR.fields
                          if f.name in kind.DESCRIPTOR.fields_by_name]
                found = known[oid] = kind(**{name: getattr(listed, name) for name in shared})
        return found


def _listed(snapshots: tuple[Snapshot, ...], kind: type[Message], oid: str
            ) -> Message | None:
    """The list entry of ``oid`` in the first of ``snapshots`` that has it."""
    for snapshot in snapshots:
        objects: Mapping[str, Message] = (
            snapshot.pods if kind is api.PodSandboxStatus else snapshot.containers)
        found = objects.get(oid)
        if found is not None:
            return found
    return None


_EVENT_COLUMNS = "{:<24} {:<13} {:<22} {:<13} {}"


def _event_row(event: api.ContainerEventResponse, *, header: bool) -> None:
    """One aligned line an event (the table streams: no width known in advance)."""
    if header:
        print(_EVENT_COLUMNS.format("TIME", "CONTAINER", "EVENT", "POD", "NAME"))
    kind = api.ContainerEventType.Name(event.container_event_type).removeprefix("CONTAINER_")
    pod = event.pod_sandbox_status
    when = rfc3339(event.created_at)[:23] if event.created_at else "-"
    name = next((c.metadata.name for c in event.containers_statuses
                 if c.id == event.container_id), "")
    print(_EVENT_COLUMNS.format(when, event.container_id[:13], kind, pod.id[:13],
                                f"{pod.metadata.namespace}/{pod.metadata.name} {name}".strip()
                                if pod.metadata.name else name), flush=True)


class _ModeNote:
    """One line on stderr each time the poller moves between the runtime's event stream
    and relisting (a runtime without GetContainerEvents, a downgrade, an upgrade)."""

    def __init__(self, client: CRIClient, period: float) -> None:
        self._client = client
        self._period = period
        self._shown = "events"  # what the command starts out promising

    def check(self, mode: str) -> None:
        if mode not in ("events", "relist") or mode == self._shown:
            return
        self._shown = mode
        if mode == "events":
            line = "GetContainerEvents is available again; following it"
        elif "GetContainerEvents" not in self._client.version.rpcs:
            line = (f"GetContainerEvents is not available (the runtime speaks CRI "
                    f"{self._client.version.name}, which has no event stream); showing the "
                    f"poller's events instead (relist every {self._period:g} s)")
        else:
            line = ("GetContainerEvents is not available (the runtime answered UNIMPLEMENTED); "
                    f"showing the poller's events instead (relist every {self._period:g} s)")
        sys.stderr.write(f"aiocri: {line}\n")
        sys.stderr.flush()


METRICS_PORT_HELP = ("Serve the client's and the poller's Prometheus metrics on this port "
                     "(/metrics; 0: any free port) while it runs; needs aiocri[prometheus]")


def _metrics(host: str, port: int | None) -> tuple[str, int] | None:
    if port is None:
        return None
    if not 0 <= port <= 65535:
        raise CLIError(f"--metrics-port must be between 0 and 65535, not {port}", code=2)
    return host, port


@command("events", WATCH, lasting=True)
def events_cmd(
    ctx: Context,
    output: Annotated[OutputFormat, Option(
        "-o", "--output", help="Output format: json, yaml, go-template (with --template) or "
        "table (a line an event)", case_sensitive=False)
    ] = OutputFormat.json,
    count: Annotated[int, Option(
        "-n", "--count", help="Exit after this many events (0: until Ctrl-C)")] = 0,
    period: Annotated[float, Option(
        "--poll-period", help="Relist period, seconds, where the runtime has no "
        "GetContainerEvents and while its stream is down")] = 1.0,
    metrics_port: Annotated[int | None, Option(
        "--metrics-port", help=METRICS_PORT_HELP)] = None,
    metrics_host: Annotated[str, Option(
        "--metrics-host", help="Address to serve metrics on")] = "127.0.0.1",
    template: TemplateOpt = None,
) -> None:
    """Stream container events: each change of a pod or a container, once, in order.

    What exists when it starts is not printed; changes from then on are. It follows
    GetContainerEvents where the runtime has it, else (CRI v1alpha2, containerd 1.6)
    relists every --poll-period and says so on stderr, and moves between the two by
    itself when the runtime is upgraded or downgraded. After a runtime restart it
    relists: what changed while the runtime was down (a container that exited) is
    printed then, as the same events as the stream's.

    Each event is a ContainerEventResponse, whether the runtime's stream or a relist
    found the change: a container's CREATED, STARTED, STOPPED (exited) and DELETED
    events; a pod sandbox's STARTED (ready), STOPPED (not ready) and DELETED events,
    before its containers' events and after their exits and removals. Each carries
    the pod's status, the container's status as last seen (for a DELETED event, its
    last one) and, as created_at, when the change was seen. A relist reports the
    state it finds: a container created and started between two relists is STARTED
    only.
    """
    if period <= 0:
        raise CLIError("--poll-period must be a positive number of seconds", code=2)
    tmpl = output_template(output, template)
    settings = settings_of(ctx)
    printed = [0]

    def show(event: api.ContainerEventResponse) -> bool:
        """Print ``event``; True once ``--count`` events are printed."""
        if output is OutputFormat.table:
            _event_row(event, header=printed[0] == 0)
        else:
            dump(message_dict(event), output, template=tmpl)
        printed[0] += 1
        return bool(count) and printed[0] >= count

    async def body(client: CRIClient) -> None:
        async with Poller(client, period=period) as poller:
            await poller.wait_synced()
            # The first relist reports what exists (one event per object): not changes.
            synced_at = poller.stats.last_relist_at or 0.0
            messages = EventMessages(poller)
            note = _ModeNote(client, period)
            note.check(poller.stats.mode)
            async for event in poller:
                if event.at <= synced_at:
                    continue
                note.check(poller.stats.mode)
                if show(messages.message(event)):
                    return

    run(settings, "following container events", body, interrupt_ok=True,
        metrics=_metrics(metrics_host, metrics_port))


# -- watch ----------------------------------------------------------------------------------------


class _View:
    """What the live table shows; rebuilt on every refresh."""

    def __init__(self, client: CRIClient, poller: Poller, endpoint: str, show_all: bool,
                 max_rows: int) -> None:
        self.client = client
        self.poller = poller
        self.endpoint = endpoint
        self.show_all = show_all
        self.max_rows = max_rows
        self.recent: deque[tuple[float, LifecycleEvent]] = deque(maxlen=8)
        self.counts: dict[EventKind, int] = dict.fromkeys(EventKind, 0)

    def add(self, event: LifecycleEvent) -> None:
        self.recent.append((time.time(), event))
        self.counts[event.kind] += 1

    def render(self) -> Group:
        snap = self.poller.snapshot
        stats = self.poller.stats
        state = self.client.state.value
        header = Text.assemble(
            ("aiocri watch ", "bold"), f"{self.endpoint}  CRI ", (self.client.version.name, "bold"),
            f"  connection {state}  poller {stats.mode}  ",
            f"{len(snap.pods)} pods  {len(snap.containers)} containers  "
            f"relists {stats.relists}",
        )
        now = time.time()
        containers = [c for c in snap.containers.values()
                      if self.show_all or c.state == api.CONTAINER_RUNNING]
        containers.sort(key=lambda c: (c.labels.get(POD_NAMESPACE_LABEL, ""),
                                       c.labels.get(POD_NAME_LABEL, ""), c.metadata.name))
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        for title in ("CONTAINER", "NAME", "STATE", "ATTEMPT", "POD", "NAMESPACE", "CREATED"):
            table.add_column(title, no_wrap=True)
        for c in containers[: self.max_rows]:
            state_text = container_state_text(c.state)
            style = {"Running": "green", "Exited": "red", "Created": "yellow"}.get(state_text, "")
            table.add_row(truncate_id(c.id), c.metadata.name, Text(state_text, style=style),
                          str(c.metadata.attempt), c.labels.get(POD_NAME_LABEL, "unknown"),
                          c.labels.get(POD_NAMESPACE_LABEL, "unknown"), age(c.created_at, now))
        more = len(containers) - self.max_rows
        parts: list[Text | Table] = [header, table]
        if more > 0:
            parts.append(Text(f"... and {more} more", style="dim"))
        events = Text.assemble(("recent events:", "bold"))
        for at, ev in self.recent:
            code = f" exit {ev.exit_code}" if ev.exit_code is not None else ""
            name = ev.status.metadata.name if ev.status is not None else ""
            events.append(f"\n  {time.strftime('%H:%M:%S', time.localtime(at))} "
                          f"{ev.kind.value:<18} {truncate_id(ev.id)} {name}{code}")
        parts.append(events)
        return Group(*parts)


@command("watch", WATCH, lasting=True)
def watch_cmd(
    ctx: Context,
    period: Annotated[float, Option("--period", help="Relist period, seconds")] = 1.0,
    mode: Annotated[str, Option(
        "--mode", help="auto (events where the runtime has them), relist or events")] = "auto",
    all: Annotated[bool, Option(
        "-a", "--all", help="Show exited and created containers too")] = False,
    duration: Annotated[float, Option(
        "--duration", help="Exit after this many seconds (0: until Ctrl-C)")] = 0.0,
    rows: Annotated[int, Option(
        "--rows", help="Containers shown at most (0: as many as the terminal fits)")] = 0,
    metrics_port: Annotated[int | None, Option(
        "--metrics-port", help=METRICS_PORT_HELP)] = None,
    metrics_host: Annotated[str, Option(
        "--metrics-host", help="Address to serve metrics on")] = "127.0.0.1",
) -> None:
    """A live table of pods and containers, updated in place from the poller.

    When the runtime is upgraded and drops the CRI version the client pinned, the
    table says so and reconnects (a new client negotiates again).
    """
    settings = settings_of(ctx)
    if mode not in ("auto", "relist", "events"):
        raise CLIError(f"--mode must be auto, relist or events, not {mode!r}", code=2)
    if period <= 0:
        raise CLIError("--period must be a positive number of seconds", code=2)
    poller_mode: Literal["auto", "relist", "events"] = mode  # type: ignore[assignment]

    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one final frame, not wrapped at 80 columns
        console = Console(highlight=False, width=160, no_color=True)

    if rows <= 0:
        rows = max(5, console.height - 16) if console.is_terminal else 40
    started = time.monotonic()

    def restart_required(error: RestartRequired) -> None:
        # What a supervisor does for the kubelet: restart the client, negotiate again.
        console.print(Text(f"runtime no longer serves CRI {error.pinned} (it serves "
                           f"{', '.join(error.served) or 'nothing aiocri knows'}); "
                           "reconnecting to negotiate again", style="bold yellow"))

    async def body(client: CRIClient) -> None:
        endpoint = current_endpoint()
        async with Poller(client, period=period, mode=poller_mode) as poller:
            await poller.wait_synced()
            view = _View(client, poller, endpoint, all, rows)
            with Live(view.render(), console=console, auto_refresh=False,
                      transient=False) as live:
                failed: list[Exception] = []
                async with anyio.create_task_group() as tg:

                    async def consume() -> None:
                        # the poller's error leaves the group unwrapped, re-raised below
                        try:
                            async for event in poller:
                                view.add(event)
                        except Exception as exc:
                            failed.append(exc)
                        tg.cancel_scope.cancel()

                    async def refresh() -> None:
                        while True:
                            live.update(view.render(), refresh=True)
                            await anyio.sleep(0.25)

                    tg.start_soon(consume)
                    tg.start_soon(refresh)
                    if duration > 0:  # across reconnects: from the command's start
                        await anyio.sleep(max(0.0, started + duration - time.monotonic()))
                        tg.cancel_scope.cancel()
                live.update(view.render(), refresh=True)
                if failed:
                    raise failed[0]

    run(settings, "watching the runtime", body, interrupt_ok=True,
        on_restart_required=restart_required, metrics=_metrics(metrics_host, metrics_port))
