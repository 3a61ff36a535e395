"""Streaming subcommands: exec, attach, port-forward, logs.

exec, attach and port-forward go through the runtime's streaming server (SPDY
by default, ``-r websocket`` for WebSocket); logs reads the container's log file,
as crictl does, so it works on the runtime's own machine.
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiocri import api
from aiocri._cli.args import Argument, Context, Option
from aiocri._cli.common import STREAM, command, debug_flag, settings_of
from aiocri._cli.runner import CLIError, report, resolve_container, resolve_pod, run
from aiocri._cli.terminal import forward_session
from aiocri.client import CRIClient
from aiocri.errors import ExecFailed
from aiocri.logs import LogEntry, Stream, parse_time
from aiocri.streaming import PortForwarder, TransportName

__all__: list[str] = []

TransportOpt = Annotated[str, Option(
    "-r", "--transport", metavar="spdy|websocket",
    help="Streaming transport (default: spdy, falling back to websocket)")]


def _transport(value: str) -> TransportName:
    if value not in ("spdy", "websocket", "auto", ""):
        raise CLIError(f"-r/--transport must be spdy or websocket, not {value!r}", code=2)
    return "auto" if value in ("", "auto") else value  # type: ignore[return-value]


def _terminal_for_tty(interactive: bool, tty: bool) -> None:
    """-it runs the command on a terminal: refuse, as crictl does, when the input is not
    one (a pipe, a file), rather than send the piped bytes as typed keys."""
    if not (interactive and tty):
        return
    try:
        terminal = sys.stdin.isatty()
    except (AttributeError, ValueError):  # no stdin, or a closed one
        terminal = False
    if not terminal:
        raise CLIError("-t needs a terminal, and the input is not a terminal; leave out -t "
                       "to send the piped input with -i alone", code=2)


async def _streamed(client: CRIClient, opening: object, *, interactive: bool) -> int:
    from aiocri.streaming import Opening, StreamSession

    assert isinstance(opening, Opening)
    try:
        async with opening as session:
            assert isinstance(session, StreamSession)
            return await forward_session(session, interactive=interactive)
    except ExecFailed as exc:
        sys.stderr.write(f"aiocri: {exc}\n")
        return exc.exit_code if exc.exit_code is not None else 1


@command("exec", STREAM, interspersed=False, lasting=True)
def exec_cmd(
    ctx: Context,
    container: Annotated[str, Argument(
        metavar="CONTAINER", help="Container id or id prefix")],
    cmd: Annotated[list[str], Argument(
        metavar="-- CMD", help="The command and its arguments, after --")],
    interactive: Annotated[bool, Option(
        "-i", "--interactive", help="Send this process's stdin to the command")] = False,
    tty: Annotated[bool, Option(
        "-t", "--tty", help="Run the command on a terminal (raw mode here, sizes forwarded)")
    ] = False,
    sync: Annotated[bool, Option(
        "-s", "--sync", help="Run with ExecSync (no stdin, output once the command ends)")
    ] = False,
    transport: TransportOpt = "",
    timeout: Annotated[int, Option(
        "--timeout", help="With -s: seconds the command may run (0: no limit)")] = 0,
) -> None:
    """Run a command in a running container; exit with the command's exit code."""
    settings = settings_of(ctx)
    argv = cmd[1:] if cmd and cmd[0] == "--" else cmd
    if not argv:
        raise CLIError("give the command after --, e.g. aiocri exec ID -- ls /", code=2)
    chosen = _transport(transport)
    if sync and (interactive or tty):
        raise CLIError("-s (ExecSync) cannot take -i or -t", code=2)
    _terminal_for_tty(interactive, tty)

    async def body(client: CRIClient) -> int:
        cid = await resolve_container(client, container)
        if sync:
            # kubelet's rule: no deadline without a command timeout, else timeout + the usual
            deadline = None if timeout <= 0 else settings.deadline(timeout)
            r = await client.runtime.exec_sync(
                api.ExecSyncRequest(container_id=cid, cmd=argv, timeout=max(timeout, 0)),
                timeout=deadline,
            )
            sys.stdout.buffer.write(r.stdout)
            sys.stdout.flush()
            sys.stderr.buffer.write(r.stderr)
            sys.stderr.flush()
            return r.exit_code
        opening = client.exec_stream(cid, argv, stdin=interactive, tty=tty, transport=chosen,
                                     timeout=settings.deadline())
        return await _streamed(client, opening, interactive=interactive)

    run(settings, "executing in the container", body)


@command("attach", STREAM, lasting=True)
def attach_cmd(
    ctx: Context,
    container: Annotated[str, Argument(
        metavar="CONTAINER", help="Container id or id prefix")],
    interactive: Annotated[bool, Option(
        "-i", "--stdin", help="Send this process's stdin to the container")] = False,
    tty: Annotated[bool, Option(
        "-t", "--tty", help="The container runs on a terminal (its config says tty)")] = False,
    transport: TransportOpt = "",
) -> None:
    """Attach to a running container's main process (Ctrl-C ends; with -it it goes to the
    container)."""
    settings = settings_of(ctx)
    chosen = _transport(transport)
    _terminal_for_tty(interactive, tty)

    async def body(client: CRIClient) -> int:
        cid = await resolve_container(client, container)
        opening = client.attach_stream(cid, stdin=interactive, tty=tty, transport=chosen,
                                       timeout=settings.deadline())
        return await _streamed(client, opening, interactive=interactive)

    run(settings, "attaching to the container", body, interrupt_ok=True)


_PORT_SPEC = re.compile(r"^(?:(\d*):)?(\d+)$")


def _port_pairs(specs: list[str]) -> list[tuple[int, int]]:
    pairs = []
    for spec in specs:
        match = _PORT_SPEC.match(spec)
        if match is None:
            raise CLIError(f"{spec!r}: expected [LOCAL:]REMOTE, e.g. 8080:80", code=2)
        given_local, remote = match.group(1), int(match.group(2))
        # "80" forwards 80 to 80; ":80" and "0:80" take any free local port
        local = remote if given_local is None else int(given_local or 0)
        if not 0 < remote < 65536 or not 0 <= local < 65536:
            raise CLIError(f"{spec!r}: ports are 1..65535 (local 0: any free port)", code=2)
        pairs.append((local, remote))
    return pairs


@command("port-forward", STREAM, lasting=True)
def port_forward_cmd(
    ctx: Context,
    pod: Annotated[str, Argument(metavar="POD", help="Pod sandbox id or id prefix")],
    ports: Annotated[list[str], Argument(
        metavar="[LOCAL:]REMOTE...", help="Ports to forward (LOCAL empty or 0: any free port)")],
    address: Annotated[str, Option(
        "--address", help="Local address to listen on")] = "127.0.0.1",
    transport: TransportOpt = "",
) -> None:
    """Forward local ports to ports of a pod until interrupted (Ctrl-C).

    Says, as kubectl does, where it listens, each connection it handles, and on stderr
    why a connection failed (the runtime's words: nothing listens on the pod's port...).
    """
    settings = settings_of(ctx)
    pairs = _port_pairs(ports)
    chosen = _transport(transport)

    async def body(client: CRIClient) -> int:
        pod_id = await resolve_pod(client, pod)
        forwarders: list[PortForwarder] = []
        try:
            for local, remote in pairs:
                forwarder = await client.forward_port(pod_id, remote, local_port=local,
                                                      host=address, transport=chosen,
                                                      timeout=settings.deadline())
                forwarders.append(forwarder)
                print(f"Forwarding from {address}:{forwarder.port} -> {remote}", flush=True)
            await _narrate(forwarders)  # until Ctrl-C
        finally:
            for forwarder in forwarders:
                await forwarder.aclose()
        return 0

    run(settings, "forwarding ports", body, interrupt_ok=True)


#: How often port-forward looks for new connections and failures to tell of.
_NARRATE_EVERY = 0.05


async def _narrate(forwarders: list[PortForwarder]) -> None:
    """Print "Handling connection for PORT" for each new connection, and each failure
    on stderr, from the forwarders' counters (they take no callbacks)."""
    seen = [(0, 0)] * len(forwarders)
    while True:
        await asyncio.sleep(_NARRATE_EVERY)
        for i, forwarder in enumerate(forwarders):
            connections, failures = forwarder.connections, forwarder.failures
            for _ in range(connections - seen[i][0]):
                print(f"Handling connection for {forwarder.port}", flush=True)
            if failures > seen[i][1] and forwarder.last_error is not None:
                report(f"forwarding {forwarder.port} -> {forwarder.remote_port}",
                       forwarder.last_error, debug=debug_flag())
            seen[i] = (connections, failures)


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    match = _DURATION.match(value)
    try:
        if match is not None and any(match.groups()):
            hours, minutes, seconds = (float(g or 0) for g in match.groups())
            try:
                return datetime.now(UTC) - timedelta(hours=hours, minutes=minutes,
                                                     seconds=seconds)
            except OverflowError:  # further back than dates go: every line qualifies
                return datetime.min.replace(tzinfo=UTC)
        return datetime.fromtimestamp(parse_time(value) / 1e9, UTC)
    except (ValueError, OverflowError):
        raise CLIError(
            f"--since {value!r}: give a duration (10s, 5m, 1h30m) or an RFC 3339 time "
            "(2026-12-01T10:00:00Z)", code=2) from None


def _write(entry: LogEntry, timestamps: bool) -> None:
    out = sys.stdout if entry.stream == "stdout" else sys.stderr
    if timestamps:
        out.buffer.write(entry.timestamp.encode() + b" ")
    out.buffer.write(entry.data)
    out.flush()


@command("logs", STREAM, lasting=True)
def logs_cmd(
    ctx: Context,
    container: Annotated[str, Argument(
        metavar="CONTAINER", help="Container id or id prefix")],
    follow: Annotated[bool, Option(
        "-f", "--follow", help="Keep printing as the container writes, until it stops")] = False,
    tail: Annotated[int, Option(
        "--tail", help="Only the last N lines (-1: all)")] = -1,
    since: Annotated[str | None, Option(
        "--since", help="Only lines since a time (RFC 3339) or for a duration (10s, 5m)")
    ] = None,
    timestamps: Annotated[bool, Option(
        "-t", "--timestamps", help="Print each line's timestamp")] = False,
    stream: Annotated[str | None, Option(
        "-s", "--stream", metavar="stdout|stderr", help="Only this stream")] = None,
    limit_bytes: Annotated[int, Option(
        "--limit-bytes", help="At most N bytes of text (-1: no limit)")] = -1,
    previous: Annotated[bool, Option(
        "-p", "--previous", help="The previous attempt of the container")] = False,
    reverse: Annotated[bool, Option(
        "-r", "--reverse", help="Newest line first (not with -f)")] = False,
) -> None:
    """Print a container's logs from its log file (on the runtime's machine)."""
    settings = settings_of(ctx)
    if stream not in (None, "stdout", "stderr"):
        raise CLIError(f"--stream must be stdout or stderr, not {stream!r}", code=2)
    if reverse and follow:
        raise CLIError("-r (reverse) cannot be used with -f (follow)", code=2)
    if tail < -1 or limit_bytes == 0 or limit_bytes < -1:
        raise CLIError("--tail and --limit-bytes take a positive number or -1 (all)", code=2)
    start = _since(since)
    streams: tuple[Stream, ...] = ("stdout", "stderr") if stream is None else (
        "stdout" if stream == "stdout" else "stderr",)

    async def body(client: CRIClient) -> None:
        cid = await resolve_container(client, container)
        entries = client.container_logs(
            cid, follow=follow, tail=None if tail < 0 else tail, since=start, streams=streams,
            limit_bytes=None if limit_bytes < 0 else limit_bytes, previous=previous)
        if reverse:
            for entry in reversed([e async for e in entries]):
                _write(entry, timestamps)
            return
        async for entry in entries:
            _write(entry, timestamps)

    run(settings, "reading the container's logs", body, interrupt_ok=True)


