"""Long-running subcommands: ``events`` (GetContainerEvents, or the poller) and ``watch``.

``events`` prints what crictl prints: one ContainerEventResponse per event, as
JSON or YAML. Where the pinned CRI version (v1alpha2) or the runtime lacks
GetContainerEvents, it says so on stderr and follows the poller's relist events
instead, printed in the same form. ``watch`` is a live table (rich.live) of the
poller's snapshot, its recent events and the connection's state.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Annotated, Literal

import anyio
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aiocri import api
from aiocri._cli.cmd_read import POD_NAME_LABEL, POD_NAMESPACE_LABEL, container_state_text
from aiocri._cli.common import WATCH, command, settings_of
from aiocri._cli.render import OutputFormat, age, dump, message_dict, rfc3339, truncate_id
from aiocri._cli.runner import current_endpoint, run
from aiocri.client import CRIClient
from aiocri.errors import RestartRequired, Unavailable, Unsupported, UnsupportedByVersion
from aiocri.poller import EventKind, LifecycleEvent, Poller
from aiocri.poller._loop import _Backoff

__all__ = ["event_message", "events_cmd", "watch_cmd"]

_EVENT_TYPE = {
    EventKind.CONTAINER_CREATED: api.CONTAINER_CREATED_EVENT,
    EventKind.CONTAINER_STARTED: api.CONTAINER_STARTED_EVENT,
    EventKind.CONTAINER_EXITED: api.CONTAINER_STOPPED_EVENT,
    EventKind.CONTAINER_REMOVED: api.CONTAINER_DELETED_EVENT,
    EventKind.POD_READY: api.CONTAINER_STARTED_EVENT,
    EventKind.POD_NOT_READY: api.CONTAINER_STOPPED_EVENT,
    EventKind.POD_REMOVED: api.CONTAINER_DELETED_EVENT,
}


def event_message(event: LifecycleEvent) -> api.ContainerEventResponse:
    """A poller event in GetContainerEvents' form (the id is the container's or the pod's)."""
    message = api.ContainerEventResponse(
        container_id=event.id,
        container_event_type=_EVENT_TYPE[event.kind],
        created_at=time.time_ns(),
    )
    if isinstance(event.status, api.PodSandboxStatus):
        message.pod_sandbox_status.CopyFrom(event.status)
    elif isinstance(event.status, api.ContainerStatus):
        message.containers_statuses.append(event.status)
    return message


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


@command("events", WATCH)
def events_cmd(
    ctx: typer.Context,
    output: Annotated[OutputFormat, typer.Option(
        "-o", "--output", help="Output format: json, yaml or table (a line an event)",
        case_sensitive=False)
    ] = OutputFormat.json,
    count: Annotated[int, typer.Option(
        "-n", "--count", help="Exit after this many events (0: until Ctrl-C)")] = 0,
    period: Annotated[float, typer.Option(
        "--poll-period", help="Relist period when falling back to the poller, seconds")] = 1.0,
) -> None:
    """Stream container events (GetContainerEvents; the poller's events where unsupported)."""
    settings = settings_of(ctx)
    printed = [0]

    def show(event: api.ContainerEventResponse) -> bool:
        """Print ``event``; True once ``--count`` events are printed."""
        if output is OutputFormat.table:
            _event_row(event, header=printed[0] == 0)
        else:
            dump(message_dict(event), output)
        printed[0] += 1
        return bool(count) and printed[0] >= count

    async def from_runtime(client: CRIClient) -> None:
        """GetContainerEvents, reopened after the client redialled (a runtime restart)."""
        # A runtime may answer UNAVAILABLE over a healthy connection: without a
        # backoff the reopen would spin and print on every pass.
        backoff = _Backoff()
        reported: str | None = None  # the error already on stderr, until events flow again
        while True:
            delivered = False
            try:
                async for event in client.runtime.get_container_events(api.GetEventsRequest()):
                    delivered = True
                    if show(event):
                        return
                return
            except Unavailable as exc:
                if delivered:
                    backoff.reset()
                    reported = None
                if str(exc) != reported:  # one line per run of identical errors
                    reported = str(exc)
                    sys.stderr.write("aiocri: the event stream broke (runtime restarting?); "
                                     "reopening it once the client has redialled\n")
                    sys.stderr.flush()
            await anyio.sleep(backoff.next())

    async def from_poller(client: CRIClient) -> None:
        async with Poller(client, period=period, mode="relist") as poller:
            await poller.wait_synced()
            synced_at = poller.stats.last_relist_at or 0.0
            async for event in poller:
                # The first relist reports what exists; events are changes.
                if event.at > synced_at and show(event_message(event)):
                    return

    async def body(client: CRIClient) -> None:
        try:
            await from_runtime(client)
        except Unsupported as exc:
            sys.stderr.write(
                f"aiocri: GetContainerEvents is not available ({_why(exc, client)}); "
                f"showing the poller's events instead (relist every {period:g} s)\n")
            sys.stderr.flush()
            await from_poller(client)

    run(settings, "following container events", body, interrupt_ok=True)


def _why(exc: Unsupported, client: CRIClient) -> str:
    if isinstance(exc, UnsupportedByVersion):
        return f"the runtime speaks CRI {client.version.name}, which has no event stream"
    return "the runtime answered UNIMPLEMENTED"


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


@command("watch", WATCH)
def watch_cmd(
    ctx: typer.Context,
    period: Annotated[float, typer.Option("--period", help="Relist period, seconds")] = 1.0,
    mode: Annotated[str, typer.Option(
        "--mode", help="auto (events where the runtime has them), relist or events")] = "auto",
    all: Annotated[bool, typer.Option(
        "-a", "--all", help="Show exited and created containers too")] = False,
    duration: Annotated[float, typer.Option(
        "--duration", help="Exit after this many seconds (0: until Ctrl-C)")] = 0.0,
    rows: Annotated[int, typer.Option(
        "--rows", help="Containers shown at most (0: as many as the terminal fits)")] = 0,
) -> None:
    """A live table of pods and containers, updated in place from the poller.

    When the runtime is upgraded and drops the CRI version the client pinned, the
    table says so and reconnects (a new client negotiates again).
    """
    settings = settings_of(ctx)
    if mode not in ("auto", "relist", "events"):
        raise typer.BadParameter("--mode must be auto, relist or events")
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
        on_restart_required=restart_required)
