"""Run one command's coroutine on a connected client; failures become one line and a code.

Expected failures (every :class:`~aiocri.CRIError`, bad files and flags, Ctrl-C)
print a single line on stderr: what failed, where, and what to try, and exit
non-zero. ``--debug`` adds the gRPC code, the runtime's details and the
traceback. Unexpected exceptions also print one line (plus the traceback under
``--debug``) so the command never dumps a traceback on a user by surprise.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import NoReturn

import anyio

from aiocri import api
from aiocri._cli.settings import LONGEST_DEADLINE, Settings, SettingsError
from aiocri.channel import RedialPolicy
from aiocri.cli import reader_gone
from aiocri.client import CRIClient, connect
from aiocri.endpoint import Endpoint, discover, parse_endpoint
from aiocri.errors import (
    ClientClosed,
    ConnectFailed,
    CRIError,
    DeadlineExceeded,
    EndpointError,
    InternalError,
    RestartRequired,
    UpgradeRefused,
)
from aiocri.instrument import Instrumentation

__all__ = [
    "EXIT_INTERRUPTED",
    "CLIError",
    "cli_line",
    "configure_logging",
    "current_endpoint",
    "fail",
    "report",
    "resolve_container",
    "resolve_pod",
    "run",
]

EXIT_INTERRUPTED = 130
log = logging.getLogger("aiocri.cli")
_endpoint: contextvars.ContextVar[str] = contextvars.ContextVar("endpoint", default="")


def current_endpoint() -> str:
    """The runtime endpoint the running command connected to ("" before connecting)."""
    return _endpoint.get()


class CLIError(Exception):
    """A failure the user can fix; printed as one line."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _CLIHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler the command installs (found again and replaced on the next call)."""


def configure_logging(debug: bool) -> None:
    """``--debug`` shows aiocri's own log (connection states, redials); quiet otherwise."""
    logger = logging.getLogger("aiocri")
    for old in [h for h in logger.handlers if isinstance(h, _CLIHandler)]:
        logger.removeHandler(old)
    handler = _CLIHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Quiet unless --debug: the command reports what matters itself, in one line.
    handler.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.CRITICAL)
    logger.propagate = False


# The library's advice names connect() arguments; the command's user has flags instead.
_CLI_WORDS = (
    ("allow more time with connect(..., redial=RedialPolicy(connect_timeout=...))",
     "raise -t/--timeout"),
    ("raise timeout=", "raise -t/--timeout"),
    ("allow a longer outage with connect(..., redial=RedialPolicy(give_up_after=...))",
     "raise -t/--timeout"),
    ("CONTAINER_RUNTIME_ENDPOINT for the CLI", "-r or CONTAINER_RUNTIME_ENDPOINT"),
    ("use unix:///path (or tcp://host:port with allow_tcp=True)",
     "use -r unix:///path (or tcp://host:port)"),
    ("use transport='spdy' (or 'auto') when the command must see the end of stdin",
     "leave out -r websocket when the command must see the end of stdin"),
    ("start a new session (the runtime's streaming URLs are valid for one use)",
     "run the command again"),
    ("open a new client with aiocri.connect()", "run the command again"),
    ("allow more time with connect(..., redial=RedialPolicy(connect_timeout=...))",
     "raise -t/--timeout"),
    ("restart the client (a new aiocri.connect() negotiates again)",
     "run the command again (it negotiates again)"),
)


def _for_cli(text: str) -> str:
    for library, cli in _CLI_WORDS:
        text = text.replace(library, cli)
    return text


#: The command's own advice, by kind of error (the most specific class wins); the
#: library's hint, put in flags, for the others.
_CLI_HINTS: dict[type[CRIError], str] = {
    ConnectFailed: "check that the runtime runs and -r/--runtime-endpoint names its socket, "
                   "or raise -t/--timeout",
    ClientClosed: "run the command again",
    InternalError: "run the command again with -D/--debug and report the traceback",
    DeadlineExceeded: "raise -t/--timeout (or the command's own timeout flag), or check "
                      "the runtime's load",
    UpgradeRefused: "run the command again (streaming URLs are valid once); with "
                    "-r websocket, try without it",
}


def cli_line(exc: CRIError) -> str:
    """``exc``'s words with the command's advice in place of the library's."""
    text = str(exc)
    if exc.hint and text.endswith(f"; {exc.hint}"):
        text = text[: -len(exc.hint) - 2]
    kind = next((k for k in type(exc).__mro__ if k in _CLI_HINTS), None)
    if kind is ConnectFailed and exc.hint != ConnectFailed.hint:
        kind = None  # a specific diagnosis (a stale socket...) keeps its own advice
    hint = _CLI_HINTS[kind] if kind is not None else _for_cli(exc.hint or "")
    return f"{_for_cli(text)}; {hint}" if hint else _for_cli(text)


def fail(
    action: str, exc: BaseException, *, debug: bool, endpoint: str | None = None
) -> NoReturn:
    """Print ``exc`` as one line (more under ``debug``) and exit with the right code.

    ``endpoint`` (when known) is named in lines whose error does not name it.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a task group's wrapping says nothing to the user
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("aiocri: interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        reader_gone()
    raise SystemExit(report(action, exc, debug=debug, endpoint=endpoint))


def report(
    action: str, exc: BaseException, *, debug: bool, endpoint: str | None = None
) -> int:
    """Print ``exc`` as :func:`fail` does, without exiting; the exit code it calls for.

    For a command that goes on after a failure (``inspect GOOD BAD``) and fails at the end.
    """
    code = 1
    if isinstance(exc, CRIError):
        line = f"aiocri: {action} failed: {cli_line(exc)}"
        extra = [
            f"  error: {type(exc).__module__}.{type(exc).__qualname__}",
            f"  grpc code: {exc.code.name if exc.code is not None else '-'}",
            f"  details: {exc.details or '-'}",
            f"  endpoint: {exc.endpoint or '-'}  method: {exc.method or '-'}",
        ]
    elif isinstance(exc, CLIError):
        where = f" on {endpoint}" if endpoint else ""
        what = f"{action} failed{where}: " if action else ""
        line, extra, code = f"aiocri: {what}{exc}", [], exc.code
    elif isinstance(exc, SettingsError | ValueError):
        line, extra = f"aiocri: {exc}", []
    else:
        hint = "" if debug else "; rerun with --debug for the traceback"
        where = f" on {endpoint}" if endpoint else ""
        line = (f"aiocri: {action} failed{where} with an unexpected "
                f"{type(exc).__name__}: {exc}{hint}")
        extra = []
    sys.stderr.write(" ".join(line.split("\n")) + "\n")
    if debug:
        for item in extra:
            sys.stderr.write(item + "\n")
        sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.flush()
    return code


def run(
    settings: Settings,
    action: str,
    body: Callable[[CRIClient], Awaitable[int | None]],
    *,
    interrupt_ok: bool = False,
    on_restart_required: Callable[[RestartRequired], None] | None = None,
    metrics: tuple[str, int] | None = None,
) -> None:
    """Connect as ``settings`` say, await ``body(client)``, exit with its code (None: 0).

    ``action`` names what the command does ("listing containers") for error lines.
    ``interrupt_ok``: Ctrl-C is the normal way to end this command (exit 0).
    ``on_restart_required``: instead of failing when the runtime drops the pinned CRI
    version, call this and run ``body`` again on a new client (which negotiates again).
    ``metrics``: (host, port) to serve Prometheus metrics of the client on, meanwhile.
    """

    where: list[str] = []

    async def main() -> int | None:
        if metrics is None:
            return await connected(None)
        try:
            from prometheus_client import CollectorRegistry

            from aiocri.metrics import PrometheusMetrics, serve_metrics
        except ImportError:
            raise CLIError("--metrics-port needs prometheus-client: "
                           "pip install 'aiocri[prometheus]'", code=2) from None
        registry = CollectorRegistry()
        instrumentation = PrometheusMetrics(registry)
        host, port = metrics
        try:
            server = await serve_metrics(port, host=host, registry=registry)
        except OSError as exc:
            raise CLIError(str(exc), code=2) from None
        async with server:
            sys.stderr.write(f"aiocri: serving metrics on {server.url}\n")
            sys.stderr.flush()
            return await connected(instrumentation)

    async def connected(instrumentation: Instrumentation | None) -> int | None:
        endpoint = (
            discover() if settings.runtime_endpoint is None
            else _parse_given(settings)
        )
        where.append(str(endpoint))
        _endpoint.set(str(endpoint))
        while True:
            try:
                async with connect(
                    endpoint,
                    settings.image_endpoint,
                    timeout=settings.deadline(),
                    image_pull_timeout=None,
                    allow_tcp=True,
                    redial=redial_policy(settings.timeout),
                    instrumentation=instrumentation,
                ) as client:
                    log.debug("connected to %s: CRI %s (%s %s)", endpoint, client.version,
                              client.runtime_version.runtime_name,
                              client.runtime_version.runtime_version)
                    return await body(client)
            except RestartRequired as exc:
                if on_restart_required is None:
                    raise
                on_restart_required(exc)

    run_coroutine(settings, action, main, interrupt_ok=interrupt_ok, where=where)


def redial_policy(timeout: float) -> RedialPolicy:
    """The command's dialling: start-up waits for the runtime up to ``-t`` (as far as a
    RedialPolicy holds), and one attempt's version check as long, but at most 30 s (the
    longest check the library's dialer gives a slow runtime): ``-t 1e10`` means "wait for
    the runtime", never "one attempt that may hang for ever". The price: a runtime that
    takes over 30 s to answer Version is not waited for whatever -t says, as the library's
    own default does not wait for it either."""
    from aiocri._dialer import SLOW_CHECK_CAP  # loaded by the connect anyway

    return RedialPolicy(connect_timeout=min(timeout, LONGEST_DEADLINE),
                        attempt_timeout=min(timeout, SLOW_CHECK_CAP))


def _parse_given(settings: Settings) -> Endpoint:
    assert settings.runtime_endpoint is not None
    try:
        return parse_endpoint(settings.runtime_endpoint, allow_tcp=True)  # as crictl
    except EndpointError as exc:
        origin = settings.sources.get("runtime-endpoint")
        where = {"env": "from CONTAINER_RUNTIME_ENDPOINT",
                 "config": f"from {settings.config_file}"}.get(origin or "")
        if where is None:
            raise
        raise EndpointError(f"{exc.message} ({where})", hint=exc.hint) from None


def run_coroutine(
    settings: Settings,
    action: str,
    main: Callable[[], Awaitable[int | None]],
    *,
    interrupt_ok: bool = False,
    where: list[str] | None = None,
) -> None:
    """Run ``main`` under anyio (asyncio) and exit like :func:`run`.

    ``where``: filled with the endpoint once known, for error lines.
    """
    try:
        code = anyio.run(main, backend="asyncio")
    except KeyboardInterrupt:
        if interrupt_ok:
            raise SystemExit(0) from None
        fail(action, KeyboardInterrupt(), debug=settings.debug)
    except SystemExit:
        raise
    except BaseException as exc:
        fail(action, exc, debug=settings.debug, endpoint=where[-1] if where else None)
    raise SystemExit(code or 0)


# -- id prefixes ------------------------------------------------------------------------


#: A whole container id as runtimes make them (64 hex digits).
_FULL_ID = re.compile(r"[0-9a-f]{64}")


async def resolve_container(client: CRIClient, ident: str) -> str:
    """The full id of the one container whose id is or starts with ``ident`` (crictl-like)."""
    if not ident:
        raise CLIError("container id must not be empty")
    if _FULL_ID.fullmatch(ident):  # a whole id: nothing to resolve, no list sent
        return ident
    found = await client.runtime.list_containers(
        api.ListContainersRequest(filter=api.ContainerFilter(id=ident))
    )
    ids = sorted({c.id for c in found.containers if c.id.startswith(ident)})
    if not ids:
        # Some runtimes match only whole ids in the filter: match prefixes here.
        everything = await client.runtime.list_containers(api.ListContainersRequest())
        ids = sorted({c.id for c in everything.containers if c.id.startswith(ident)})
    return _one("container", ident, ids, "aiocri ps -a")


async def resolve_pod(client: CRIClient, ident: str) -> str:
    """The full id of the one pod sandbox whose id is or starts with ``ident``."""
    if not ident:
        raise CLIError("pod sandbox id must not be empty")
    found = await client.runtime.list_pod_sandbox(
        api.ListPodSandboxRequest(filter=api.PodSandboxFilter(id=ident))
    )
    ids = sorted({p.id for p in found.items if p.id.startswith(ident)})
    if not ids:
        everything = await client.runtime.list_pod_sandbox(api.ListPodSandboxRequest())
        ids = sorted({p.id for p in everything.items if p.id.startswith(ident)})
    return _one("pod sandbox", ident, ids, "aiocri pods")


def _one(kind: str, ident: str, ids: list[str], lister: str) -> str:
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise CLIError(f"no {kind} has the id or id prefix {ident!r}; list them with '{lister}'")
    raise CLIError(
        f"{kind} id prefix {ident!r} is ambiguous ({len(ids)} match); give more characters"
    )
