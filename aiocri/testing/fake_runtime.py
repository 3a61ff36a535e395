"""The embedded fake CRI runtime: a real grpc.aio server on a unix socket.

``FakeRuntime`` serves a :class:`FakeState` (which outlives the server, so a
restart keeps pods and containers, like containerd's) over the CRI versions
asked for, and gives tests the controls a real node cannot: stop, restart,
upgrade to other CRI versions, kill, latency and error injection, scripted
container exits. ``serve``/``main`` run it as a process
(``python -m aiocri.testing``); see :mod:`aiocri.testing._process` for the
helper that spawns that process.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import signal
import sys
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Self

import anyio
import grpc
import grpc.aio
from anyio.abc import TaskStatus

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri._timeouts import check_positive_int
from aiocri.client import _Connect, connect
from aiocri.testing._exec import ExecHandler, default_exec_handler, run_session
from aiocri.testing._server import (
    Hooks,
    build_handlers,
    cut_connections,
    leave_stale_socket,
    refuse_live_socket,
    remove_socket_file,
    socket_is_live,
)
from aiocri.testing._servicer import FakeServicer
from aiocri.testing._shared import COMPAT_CHOICES
from aiocri.testing._state import FakeState, Image, Populated
from aiocri.testing._streaming import WEBSOCKET_PROTOCOLS, StreamingServer
from aiocri.versions import CRIVersion, resolve_versions

__all__ = ["DEFAULT_VERSIONS", "FakeRuntime", "churn", "churn_once", "main", "serve"]

#: What containerd 1.6/1.7 serve, and so the fake by default.
DEFAULT_VERSIONS: tuple[str, ...] = ("v1", "v1alpha2")
_MiB = 1 << 20


class FakeRuntime:
    """A fake CRI runtime serving ``state`` on ``socket_path``.

    Use as ``async with FakeRuntime(path) as rt:`` (serves on entry, stops on
    exit) or call :meth:`start` / :meth:`stop` yourself. Everything runs on the
    caller's event loop (asyncio).

    Without ``socket_path`` it serves in a short folder of its own under /tmp:
    :meth:`stop` removes that folder and :meth:`start` makes it again (same
    path); one never stopped is removed when the object is collected or at exit.
    A socket file that a live server answers on is never taken over: :meth:`start`
    raises OSError (EADDRINUSE); a stale one (refusing connections) is replaced.

    Its streaming server (exec, attach, port-forward URLs) serves SPDY/3.1 and
    WebSocket; ``websocket_protocols`` are the WebSocket subprotocols it accepts, in
    its order of preference: by default remotecommand ``v5.channel.k8s.io`` first
    (stdin can be closed alone), then ``v4.channel.k8s.io`` and ``channel.k8s.io``.
    ``websocket_protocols=WEBSOCKET_V4`` (from ``aiocri.testing``) serves as
    containerd does, without v5. ``rt.streaming.websocket_protocols`` changes it on a
    running fake, for the next sessions.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        versions: Iterable[str | CRIVersion] = DEFAULT_VERSIONS,
        images: Iterable[str | Image] | None = None,
        registry: Iterable[str | Image] = (),
        runtime_name: str = "aiocri-fake",
        runtime_version: str = "1.0.0",
        state: FakeState | None = None,
        seed: int | None = None,
        stream_chunk: int = 1000,
        max_receive_message_length: int = 16 * _MiB,
        compat: str | None = None,
        websocket_protocols: Sequence[str] = WEBSOCKET_PROTOCOLS,
    ) -> None:
        resolved = resolve_versions(versions)
        websocket_protocols = _protocol_list(websocket_protocols)
        if compat is not None and compat not in COMPAT_CHOICES:
            raise ValueError(f"compat must be one of {', '.join(COMPAT_CHOICES)}, not {compat!r}")
        images = None if images is None else _image_list("images", images)
        registry = _image_list("registry", registry)
        check_positive_int("stream_chunk", stream_chunk)
        check_positive_int("max_receive_message_length", max_receive_message_length)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, not {seed!r}")
        self._owns_state = state is None
        self.state = state if state is not None else FakeState(images, registry=registry, seed=seed)
        if compat is not None:
            self.state.compat = compat
        self._servicer = FakeServicer(
            self.state,
            runtime_name=runtime_name,
            runtime_version=runtime_version,
            stream_chunk=stream_chunk,
        )
        servicer = self._servicer
        self.streaming = StreamingServer(
            lambda kind, request, io: run_session(
                self.state, lambda: servicer.exec_handler, kind, request, io
            )
        )
        self.streaming.websocket_protocols = websocket_protocols
        servicer.streaming = self.streaming
        self._hooks = Hooks(seed)
        self._versions = resolved
        self._options = [
            ("grpc.max_receive_message_length", max_receive_message_length),
            ("grpc.max_send_message_length", -1),
        ]
        self._server: grpc.aio.Server | None = None
        self._lock = anyio.Lock()
        self._bound = False  # the socket file is ours (serving, or left by kill)
        # the folder last, once every argument has passed
        self._own_folder: str | None = None
        self._folder: weakref.finalize[[str], FakeRuntime] | None = None  # alive: it exists
        if socket_path is None:  # a short path of its own (unix socket paths are short)
            self._own_folder = tempfile.mkdtemp(prefix="cri-", dir="/tmp")
            self._folder = weakref.finalize(self, _remove_folder, self._own_folder)
            socket_path = os.path.join(self._own_folder, "rt.sock")
        self.socket_path = os.path.abspath(os.fspath(socket_path))

    # -- what it is ----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def versions(self) -> tuple[CRIVersion, ...]:
        """The CRI versions served (or to be served at the next start)."""
        return self._versions

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def runtime_name(self) -> str:
        return self._servicer.runtime_name

    @runtime_name.setter
    def runtime_name(self, value: str) -> None:
        self._servicer.runtime_name = value

    @property
    def runtime_version(self) -> str:
        return self._servicer.runtime_version

    @runtime_version.setter
    def runtime_version(self, value: str) -> None:
        self._servicer.runtime_version = value

    @property
    def cgroup_driver(self) -> pb.CgroupDriver.ValueType:
        return self._servicer.cgroup_driver

    @cgroup_driver.setter
    def cgroup_driver(self, value: pb.CgroupDriver.ValueType) -> None:
        self._servicer.cgroup_driver = value

    @property
    def stream_chunk(self) -> int:
        """Items per message in the Stream* RPCs."""
        return self._servicer.stream_chunk

    @stream_chunk.setter
    def stream_chunk(self, value: int) -> None:
        if value < 1:
            raise ValueError("stream_chunk must be at least 1")
        self._servicer.stream_chunk = value

    @property
    def calls(self) -> Counter[str]:
        """Calls served since creation, by RPC name (``rt.calls["ListContainers"]``)."""
        return self._hooks.calls

    @property
    def calls_by_path(self) -> Counter[str]:
        """Calls served, by method path (``"/runtime.v1alpha2.RuntimeService/Version"``)."""
        return self._hooks.calls_by_path

    @property
    def traceparents(self) -> list[tuple[str, str]]:
        """(RPC name, ``traceparent``) of the last 1000 calls that carried W3C trace
        context in their metadata, oldest first."""
        return list(self._hooks.traceparents)

    # -- serving -------------------------------------------------------------------

    async def start(self, *, versions: Iterable[str | CRIVersion] | None = None) -> None:
        """Bind the socket and serve.

        A stale socket file is replaced; OSError (EADDRINUSE) if a live server
        answers on the path.
        """
        async with self._lock:
            if self._server is not None:
                raise RuntimeError(f"the fake runtime already serves {self.endpoint}")
            if versions is not None:
                self._versions = resolve_versions(versions)
            if self._own_folder is not None and not (self._folder and self._folder.alive):
                # stop() removed it; mkdir fails if another took the name meanwhile
                os.mkdir(self._own_folder, 0o700)
                self._folder = weakref.finalize(self, _remove_folder, self._own_folder)
            refuse_live_socket(self.socket_path)
            server = grpc.aio.server(options=self._options)
            server.add_generic_rpc_handlers(
                build_handlers(self._servicer, self._versions, self._hooks)
            )
            server.add_insecure_port(f"unix:{self.socket_path}")
            await server.start()
            self._bound = True
            await self.streaming.start()
            self._server = server

    async def stop(self, grace: float = 0.0) -> None:
        """Stop serving (clients get a GOAWAY) and remove the socket file, and the
        folder if it is the runtime's own; state is kept."""
        async with self._lock:
            server, self._server = self._server, None
            serving = server is not None
            with anyio.CancelScope(shield=True):
                await self.streaming.stop()
            if server is not None:
                with anyio.CancelScope(shield=True):
                    await server.stop(grace)
                del server
                _release_grpc_cycles()
            # ours only: after a kill(), a successor may serve on our stale file
            if self._bound and (serving or not socket_is_live(self.socket_path)):
                remove_socket_file(self.socket_path)
            self._bound = False
            if self._folder is not None:
                self._folder()  # once; start() makes it again

    async def kill(self) -> None:
        """Die as if SIGKILLed: connections dropped with no goodbye, socket file left behind.

        Open streams and in-flight calls fail with UNAVAILABLE ("Socket
        closed"); connecting is refused until :meth:`start`. The server side of
        each connection is found in /proc and shut down under grpc's feet
        (Linux; elsewhere this degrades to a graceful stop plus a stale file).
        For a real SIGKILL use :class:`FakeRuntimeProcess`.
        """
        async with self._lock:
            server, self._server = self._server, None
            if server is None:
                raise RuntimeError("the fake runtime is not serving")
            cut_connections(self.socket_path)
            with anyio.CancelScope(shield=True):
                await self.streaming.stop()
                await server.stop(0)  # its GOAWAY finds the connections already dead
            leave_stale_socket(self.socket_path)

    async def restart(
        self,
        down_for: float = 0.5,
        *,
        versions: Iterable[str | CRIVersion] | None = None,
        runtime_version: str | None = None,
    ) -> None:
        """Stop, stay away ``down_for`` seconds with no socket file, serve again (same state)."""
        await self.stop()
        if runtime_version is not None:
            self.runtime_version = runtime_version
        await anyio.sleep(down_for)
        await self.start(versions=versions)

    async def upgrade(
        self,
        versions: Iterable[str | CRIVersion] = ("v1",),
        *,
        down_for: float = 0.0,
        runtime_version: str | None = None,
    ) -> None:
        """Restart serving other CRI versions, as after a runtime upgrade."""
        await self.restart(down_for, versions=versions, runtime_version=runtime_version)

    def swap_versions(self, versions: Iterable[str | CRIVersion]) -> None:
        """Serve other CRI versions from now on, without dropping any connection.

        What a client sees when the runtime was upgraded behind a reconnect it
        never noticed: the same connection, but the pinned version answers
        UNIMPLEMENTED.
        """
        self._versions = resolve_versions(versions)
        if self._server is not None:
            self._hooks.served = frozenset(v.name for v in self._versions)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:  # no __aexit__ follows: leave no folder behind
            with anyio.CancelScope(shield=True):
                await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):  # a cancelled owner must still stop the server
            await self.stop()  # also clears a stale file left by kill(), and our folder
        if self._owns_state:  # its containers end with it (a given state is its owner's)
            self.state.shutdown()

    def connect(self, **options: Any) -> _Connect:
        """A client of this runtime: ``async with rt.connect() as client`` or
        ``client = await rt.connect()``; ``options`` as :func:`aiocri.connect` takes."""
        return connect(self.endpoint, **options)

    # -- controls --------------------------------------------------------------------

    def inject_latency(self, rpc: str, seconds: float) -> None:
        """Delay every ``rpc`` call (an RPC name, or ``"*"``) by ``seconds``; 0 clears."""
        self._hooks.faults.set_latency(rpc, seconds)

    def inject_errors(
        self,
        rpc: str,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        rate: float = 1.0,
        *,
        details: str | None = None,
        count: int | None = None,
    ) -> None:
        """Fail a share ``rate`` of ``rpc`` calls (or ``"*"``) with ``code``.

        ``count`` limits it to that many failures; rate 0 clears.
        """
        self._hooks.faults.set_error(
            rpc, code, rate, details or f"injected {code.name} for {rpc}", count
        )

    def clear_injections(self, rpc: str | None = None) -> None:
        """Remove injected latency and errors for ``rpc``, or all of them."""
        self._hooks.faults.clear(rpc)

    def set_exec_handler(self, handler: ExecHandler | None) -> None:
        """Answer ExecSync with ``handler(container, cmd)``; None restores the default."""
        self._servicer.exec_handler = handler or default_exec_handler

    def write_output(self, container_id: str, data: bytes | str, stream: str = "stdout") -> None:
        """Make a running container print ``data`` (to its CRI log file and to the
        sessions attached to it)."""
        self.state.write_output(container_id, data, stream)

    def populate(self, pods: int, containers_per_pod: int, **kwargs: Any) -> Populated:
        """Add running pods and containers (see :meth:`FakeState.populate`)."""
        return self.state.populate(pods, containers_per_pod, **kwargs)

    async def wait_for_event_streams(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` GetContainerEvents streams are subscribed.

        A client's stream call returns before the server has seen it; wait
        here before making changes the stream must see.
        """
        with anyio.fail_after(timeout):
            # polled: the state is synchronous and signals nothing when a stream subscribes
            while self.state.subscribers < count:  # noqa: ASYNC110
                await anyio.sleep(0.005)


# -- churn ------------------------------------------------------------------------------


def churn_once(state: FakeState, rng: random.Random) -> str | None:
    """One kubelet-like crash loop step: a running container exits, its next attempt
    starts, the dead one is removed. Returns the new container's id (None if idle)."""
    ids = list(state.containers)
    victim = None
    for _ in range(min(20, len(ids))):
        candidate = state.containers[rng.choice(ids)]
        if candidate.running:
            victim = candidate
            break
    if victim is None:
        victim = next(state.running_containers(), None)
        if victim is None:
            return None
    code = rng.choice((0, 1, 1, 137))
    reason = "OOMKilled" if code == 137 and rng.random() < 0.5 else None
    state.exit_container(victim.id, code, reason)
    config = pb.ContainerConfig()
    config.CopyFrom(victim.config)
    config.metadata.attempt += 1
    config.annotations["io.kubernetes.container.restartCount"] = str(config.metadata.attempt)
    new_id = state.create_container(victim.pod.id, config)
    state.start_container(new_id)
    state.remove_container(victim.id)
    return new_id


def _remove_folder(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _release_grpc_cycles() -> None:
    # A handler that aborted or was cancelled leaves grpc's per-call state in a
    # reference cycle that holds the stopped server. Until a collection frees
    # it, grpc.aio keeps its process-wide completion queue, and the late
    # completions of that server reach the *next* event loop, which fails with
    # "Event loop is closed" (one loop per test under pytest). Collect now,
    # while this loop still runs.
    gc.collect()


async def churn(state: FakeState, per_second: float, *, seed: int | None = None) -> None:
    """Run :func:`churn_once` ``per_second`` times a second, for ever."""
    rng = random.Random(seed)
    interval = 1.0 / per_second
    due = anyio.current_time()
    while True:
        due += interval
        await anyio.sleep(max(0.0, due - anyio.current_time()))
        churn_once(state, rng)


# -- as a process ------------------------------------------------------------------------


async def serve(
    socket_path: str | os.PathLike[str],
    *,
    versions: Iterable[str | CRIVersion] = DEFAULT_VERSIONS,
    pods: int = 0,
    containers_per_pod: int = 0,
    churn_per_second: float = 0.0,
    images: Iterable[str] | None = None,
    runtime_name: str = "aiocri-fake",
    runtime_version: str = "1.0.0",
    seed: int | None = 0,
    pull_policy: str = "registry",
    stop_missing: str = "ok",
    compat: str = "1.7",
    task_status: TaskStatus[FakeRuntime] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Populate and serve until cancelled; ``await tg.start(serve, ...)`` gives the runtime.

    The default ``seed=0`` makes ids repeat from run to run, so a restarted
    process lists the same pods and containers, as containerd does after a
    restart.
    """
    runtime = FakeRuntime(
        socket_path,
        versions=versions,
        images=images,
        runtime_name=runtime_name,
        runtime_version=runtime_version,
        seed=seed,
        compat=compat,
    )
    runtime.state.pull_policy = pull_policy
    if compat == "1.7":  # 1.6 brings its own answer
        runtime.state.stop_missing = stop_missing
    runtime.populate(pods, containers_per_pod)  # before serving: the first answer is complete
    async with runtime, anyio.create_task_group() as tg:
        if churn_per_second > 0:
            tg.start_soon(partial(churn, runtime.state, churn_per_second, seed=seed))
        task_status.started(runtime)
        await anyio.sleep_forever()


EXEC_HELP = """\
what the containers run (their command at start, ExecSync, exec and attach):
  a stand-in for busybox sh and its applets, on each container's own files:
  sh -c '...' with ; && || | ! and redirections (> >> < 2> 2>&1), $VAR, quotes,
  if, while, until, for, ( ), { }, $((..)), $(..), cd, exit N, export, read, trap,
  shift; echo, printf, cat, ls, head, tail, wc, tr, cut, grep, test/[, seq, yes,
  env, id, whoami, hostname, uname, pwd, sleep, true, false, mkdir, touch, rm
  (no case, functions or here-documents: those exit 2, "not supported")
  exec through the streaming server also: stty size (with -t), sh with stdin
  a program it lacks: ExecSync fails UNKNOWN (runc's "executable file not
  found", as containerd); `sh -c prog` exits 127 ("sh: prog: not found")
containers: sleep infinity and programs the fake lacks (an nginx image's
  server) run until stopped; a script ends with its exit code; stop with no
  grace period is SIGKILL (137), with one SIGTERM (143); attach writes to the
  command's stdin (create the container with stdin: `sh` then runs what comes)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiocri.testing",
        description="Serve a fake CRI runtime on a unix socket until SIGTERM or SIGINT.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXEC_HELP,
    )
    parser.add_argument("--socket", required=True, help="unix socket path to serve on")
    parser.add_argument(
        "--versions", default=",".join(DEFAULT_VERSIONS), help="CRI versions, e.g. v1,v1alpha2"
    )
    parser.add_argument("--pods", type=int, default=0, help="running pods to create")
    parser.add_argument("--containers-per-pod", type=int, default=0)
    parser.add_argument(
        "--churn-per-second", type=float, default=0.0, help="container crash-restarts per second"
    )
    parser.add_argument("--runtime-name", default="aiocri-fake")
    parser.add_argument("--runtime-version", default="1.0.0")
    parser.add_argument(
        "--image", action="append", dest="images", help="a local image (repeat); default: a few"
    )
    parser.add_argument(
        "--pull", choices=("any", "registry"), default="any",
        help="PullImage of an unknown reference: 'any' makes the image as a registry "
             "would have it (default), 'registry' answers NOT_FOUND",
    )
    parser.add_argument(
        "--stop-missing", choices=("not-found", "ok"), default="ok",
        help="StopContainer/StopPodSandbox of an unknown id: OK as containerd 1.7 and 2.x "
             "and the CRI's idempotence rule (default), or NOT_FOUND as containerd 1.6",
    )
    parser.add_argument(
        "--compat", choices=COMPAT_CHOICES, default="1.7",
        help="answer as containerd 1.7 (default) or 1.6 where they differ (1.6: stops of "
             "unknown ids NOT_FOUND, no GetContainerEvents, nothing pinned, ...)",
    )
    parser.add_argument("--seed", type=int, default=0, help="id seed; same seed, same ids")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument(
        "--parent-fd", type=int, metavar="FD",
        help="stop when FD (the read end of a pipe whose write end the parent holds) "
             "reaches end of file: the parent has gone",
    )
    return parser


async def _exit_with_parent(fd: int, scope: anyio.CancelScope) -> None:
    # Nothing is ever written: readable means end of file, every writer has gone.
    await anyio.wait_readable(fd)
    scope.cancel()


async def _run(args: argparse.Namespace, versions: tuple[CRIVersion, ...]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            runtime: FakeRuntime = await tg.start(
                partial(
                    serve,
                    args.socket,
                    versions=versions,
                    pods=args.pods,
                    containers_per_pod=args.containers_per_pod,
                    churn_per_second=args.churn_per_second,
                    images=args.images,
                    runtime_name=args.runtime_name,
                    runtime_version=args.runtime_version,
                    seed=args.seed,
                    pull_policy=args.pull,
                    stop_missing=args.stop_missing,
                    compat=args.compat,
                )
            )
            served = ",".join(v.name for v in runtime.versions)
            print(
                f"aiocri fake runtime serving {served} on {runtime.endpoint}: "
                f"{len(runtime.state.pods)} pods, {len(runtime.state.containers)} containers",
                flush=True,
            )
            if args.parent_fd is not None:
                tg.start_soon(_exit_with_parent, args.parent_fd, tg.cancel_scope)
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiocri.testing ...``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        versions = resolve_versions(v.strip() for v in args.versions.split(",") if v.strip())
    except ValueError as exc:
        parser.error(str(exc))
    backend_options = {"use_uvloop": True} if args.uvloop else {}
    try:
        anyio.run(_run, args, versions, backend="asyncio", backend_options=backend_options)
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # the task groups wrap what start() raised
        if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C while stopping
            return 130
        if isinstance(exc, OSError):  # a live server on the socket, and the like
            print(f"fake runtime: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


def _image_list(name: str, given: Iterable[str | Image]) -> list[str | Image]:
    """``given`` as a list, refused at once unless it holds references or Image objects."""
    items = None if isinstance(given, str | bytes) else list(given)
    if items is None or any(not isinstance(i, str | Image) for i in items):
        raise TypeError(f"FakeRuntime({name}=...) takes image references (str) or Image "
                        f"objects, not {given!r}")
    return items


def _protocol_list(given: Sequence[str]) -> tuple[str, ...]:
    """``websocket_protocols`` as a tuple, refused at once unless it names at least one."""
    items = None if isinstance(given, str | bytes) else tuple(given)
    if not items or any(not isinstance(p, str) or not p for p in items):
        raise TypeError("FakeRuntime(websocket_protocols=...) takes a non-empty list of "
                        f"subprotocol names (e.g. WEBSOCKET_V4), not {given!r}")
    return items
