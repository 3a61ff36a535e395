"""``fake-runtime`` (the embedded fake CRI runtime in the foreground) and ``demo``."""

from __future__ import annotations

import os
import signal
import stat
from functools import partial
from typing import Annotated, Any

import anyio

from aiocri._cli.args import Option
from aiocri._cli.common import TRY, command, debug_flag
from aiocri._cli.runner import CLIError, fail
from aiocri._cli.settings import RUNTIME_ENV

__all__ = ["demo_cmd", "fake_runtime_cmd"]


@command("fake-runtime", TRY, lasting=True)
def fake_runtime_cmd(
    socket: Annotated[str, Option("--socket", help="Unix socket path to serve on")],
    versions: Annotated[str, Option(
        "--versions", help="CRI versions to serve, e.g. v1,v1alpha2")] = "v1,v1alpha2",
    pods: Annotated[int, Option("--pods", help="Running pods to create")] = 0,
    containers_per_pod: Annotated[int, Option(
        "--containers-per-pod", help="Running containers per pod")] = 0,
    churn_per_second: Annotated[float, Option(
        "--churn-per-second", help="Container crash-restarts per second")] = 0.0,
    runtime_name: Annotated[str, Option("--runtime-name")] = "aiocri-fake",
    runtime_version: Annotated[str, Option("--runtime-version")] = "1.0.0",
    seed: Annotated[int, Option("--seed", help="Id seed: same seed, same ids")] = 0,
    images: Annotated[list[str] | None, Option(
        "--image", metavar="REFERENCE", show_default=False,
        help="A local image (repeat); default: a few busybox/nginx/pause")] = None,
    pull: Annotated[str, Option(
        "--pull", metavar="any|registry",
        help="PullImage of an unknown reference: 'any' makes the image, 'registry' answers "
             "NOT_FOUND")] = "any",
    stop_missing: Annotated[str, Option(
        "--stop-missing", metavar="not-found|ok",
        help="StopContainer/StopPodSandbox of an unknown id: OK (containerd 1.7, 2.x) or "
             "NOT_FOUND (containerd 1.6)")] = "ok",
    compat: Annotated[str, Option(
        "--compat", metavar="1.7|1.6",
        help="Answer as containerd 1.7 or 1.6 where they differ")] = "1.7",
) -> None:
    """Serve the embedded fake CRI runtime in the foreground until Ctrl-C (for tests, demos).

    Once it serves, it says how to point aiocri (or crictl) at it: -r unix://SOCKET, or
    CONTAINER_RUNTIME_ENDPOINT=unix://SOCKET in the environment.

    The containers run their commands with a stand-in for busybox sh and its applets
    (sh -c with ; && || | and redirections, echo, printf, cat, ls, head, wc, env, id,
    hostname, sleep, ...); see python -m aiocri.testing --help for the whole list.
    """
    from aiocri.testing import serve
    from aiocri.versions import resolve_versions

    _check_socket_path(socket)
    for flag, value, choices in (("--pull", pull, ("any", "registry")),
                                 ("--stop-missing", stop_missing, ("not-found", "ok")),
                                 ("--compat", compat, ("1.7", "1.6"))):
        if value not in choices:
            raise CLIError(f"{flag} must be {' or '.join(choices)}, not {value!r}", code=2)
    try:
        served = resolve_versions(v.strip() for v in versions.split(",") if v.strip())
    except ValueError as exc:
        raise CLIError(f"--versions {versions!r}: {exc}", code=2) from None
    serving = partial(serve, socket, versions=served, pods=pods,
                      containers_per_pod=containers_per_pod, churn_per_second=churn_per_second,
                      images=images, runtime_name=runtime_name, runtime_version=runtime_version,
                      seed=seed, pull_policy=pull, stop_missing=stop_missing, compat=compat)
    try:
        anyio.run(_serve_until_stopped, serving, backend="asyncio")
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # the task group wraps what serve() raised
        if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C while stopping
            raise SystemExit(130) from None
        if isinstance(exc, OSError):  # a live server on the socket, a failed bind
            exc = CLIError(str(exc))
        fail("serving the fake runtime", exc, debug=debug_flag())
    raise SystemExit(0)


async def _serve_until_stopped(serve: Any) -> None:
    """Serve until SIGTERM or SIGINT; say where once serving (first line: "serving")."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            runtime = await tg.start(serve)
            names = ",".join(v.name for v in runtime.versions)
            print(f"aiocri fake runtime serving {names} on {runtime.endpoint}: "
                  f"{len(runtime.state.pods)} pods, {len(runtime.state.containers)} containers")
            print(f"point aiocri or crictl at it: -r {runtime.endpoint}, or "
                  f"export {RUNTIME_ENV}={runtime.endpoint}", flush=True)
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


@command("demo", TRY, lasting=True)
def demo_cmd(
    quick: Annotated[bool, Option(
        "--quick", help="A ~10 s run for CI instead of about a minute")] = False,
    pods: Annotated[int | None, Option(
        "--pods", help="Pods to start with (default 30, quick 10)", show_default=False)] = None,
    containers_per_pod: Annotated[int | None, Option(
        "--containers-per-pod", help="Containers per pod (default 10)",
        show_default=False)] = None,
) -> None:
    """Show version pinning, redial and restart-required on the embedded fake runtime."""
    from aiocri.demo import main as demo_main

    raise SystemExit(demo_main(quick=quick, pods=pods, containers_per_pod=containers_per_pod))


#: The longest path a unix socket address holds (108 bytes with the final NUL).
_SOCKET_PATH_MAX = 107


def _check_socket_path(path: str) -> None:
    """Refuse, as a usage error, a --socket path no server can bind (grpc would only say
    "failed to bind")."""
    folder = os.path.dirname(os.path.abspath(path))
    problem = None
    if not os.path.exists(folder):
        problem = f"the folder {folder} does not exist; create it or choose another path"
    elif not os.path.isdir(folder):
        problem = f"{folder} is not a folder; choose another path"
    elif os.path.lexists(path) and not stat.S_ISSOCK(os.lstat(path).st_mode):
        problem = "it exists and is not a socket; remove it or choose another path"
    elif len(os.fsencode(path)) > _SOCKET_PATH_MAX:
        problem = (f"the path is longer than the {_SOCKET_PATH_MAX} bytes a unix socket may have; "
                   "choose a shorter path")
    if problem is not None:
        raise CLIError(f"--socket {path}: {problem}", code=2)
