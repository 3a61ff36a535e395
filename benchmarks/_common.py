"""What the benchmarks share: runtimes under test, worker processes, CPU and load
accounting, statistics and tables."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc
import grpc.aio

from aiocri._proto.runtime.v1 import api_pb2 as pb

#: The channel arguments of aiocri's ChannelManager (aiocri/channel.py), for the raw
#: stubs: an identical channel. The throughput worker checks them against the live
#: manager's and uses the live ones if they differ.
AIOCRI_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.client_idle_timeout_ms", 2**31 - 1),
]

#: The kubelet's dial settings (k8s.io/cri-client remote_runtime.go): backoff base
#: 100 ms, max 3 s, minimum connect timeout 5 s, 16 MiB messages. In C-core the
#: minimum connect timeout is ``grpc.min_reconnect_backoff_ms``.
KUBELET_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 3000),
    ("grpc.min_reconnect_backoff_ms", 5000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]

V1 = "/runtime.v1.RuntimeService/"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# ----------------------------------------------------------------- accounting


def cpu_self() -> float:
    """CPU seconds (user + sys) of this process so far, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + sys) of process ``pid`` (0.0 if gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy() -> float:
    """CPU seconds spent busy by the whole machine so far (all cores)."""
    with open("/proc/stat", "rb") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def vmrss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Meter:
    """Wall time, this process's CPU, the server's CPU and everybody else's CPU
    between :meth:`start` and :meth:`stop`: ``other`` (in cores) shows whether
    someone else used the machine during a measurement."""

    server_pid: int | None = None
    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0
    other_cores: float = 0.0
    _t: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0), repr=False)

    def start(self) -> None:
        self._t = (time.perf_counter(), cpu_self(), proc_cpu(self.server_pid), system_busy())

    def stop(self) -> None:
        t0, c0, s0, b0 = self._t
        self.wall = time.perf_counter() - t0
        self.cpu = cpu_self() - c0
        self.server_cpu = proc_cpu(self.server_pid) - s0
        busy = system_busy() - b0
        self.other_cores = max(0.0, busy - self.cpu - self.server_cpu) / self.wall


# ----------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ratio(a: float, b: float) -> float:
    if not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def fmt(value: Any, spec: str = ".0f", unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:{spec}}{unit}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    ms = seconds * 1000
    if abs(ms) >= 1000:
        return f"{seconds:.2f} s"
    if abs(ms) >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def fmt_x(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]],
          notes: Iterable[str] = ()) -> str:
    """A plain-text table (also valid GitHub markdown)."""
    body = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    lines = [f"### {title}", "", line(headers),
             "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                            for i, w in enumerate(widths)) + "|"]
    lines += [line(row) for row in body]
    notes = list(notes)
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- workers


async def run_worker(module: str, spec: dict[str, Any], *, timeout: float = 900.0,
                     pythonpath: Sequence[str] | None = None) -> Any:
    """Run ``python -m MODULE --worker SPEC`` in a fresh process; return the JSON it
    prints on its last stdout line. The measurement then owns its process: its
    rusage holds nothing of the orchestrator.

    ``pythonpath``: import from these folders, in this order, and not from the
    current folder (``python -P``, PYTHONPATH): another tree's ``aiocri`` beside
    this tree's benchmarks."""
    argv = [sys.executable, "-m", module, "--worker", json.dumps(spec)]
    env = None
    if pythonpath is not None:
        argv.insert(1, "-P")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    with anyio.fail_after(timeout):
        result = await anyio.run_process(argv, check=False, cwd=_repo_root(), env=env)
    if result.returncode != 0:
        raise RuntimeError(
            f"worker {module} failed ({result.returncode}):\n"
            + result.stderr.decode(errors="replace")[-4000:]
        )
    lines = result.stdout.decode().strip().splitlines()
    return json.loads(lines[-1])


def worker_output(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine_info() -> dict[str, Any]:
    import platform

    import google.protobuf as _pb
    import grpc as _grpc

    try:
        from google.protobuf.internal import api_implementation
        impl = api_implementation.Type()
    except Exception:  # pragma: no cover
        impl = "?"
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = None
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "grpcio": _grpc.__version__,
        "protobuf": f"{_pb.__version__} ({impl})",
        "uvloop": uv,
        "cpus": NCPU,
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_at_start": loadavg(),
    }


# ----------------------------------------------------------------- socket watch

#: A tiny separate process that polls the socket file every 1 ms and prints the
#: CLOCK_MONOTONIC time at which the file (with an identity other than ``old``)
#: first accepts a connection; then, on a fresh grpc channel each time, calls
#: ``/runtime.v1.RuntimeService/Version`` every 5 ms until it answers OK and prints
#: that time too (when the runtime itself is ready: containerd accepts on its
#: socket before its CRI service is initialised). A process, not a thread: no GIL
#: between it and the clients being measured.
_WATCH = r"""
import os, socket, sys, time
path, old = sys.argv[1], sys.argv[2]
import grpc
sys.stdout.write("armed\n"); sys.stdout.flush()
first_file = None
while True:
    try:
        st = os.stat(path)
        ident = "%d:%d:%d" % (st.st_dev, st.st_ino, st.st_ctime_ns)
    except OSError:
        ident = None
    if ident is not None and ident != old:
        if first_file is None:
            first_file = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            pass
        else:
            accepts = time.monotonic()
            break
        finally:
            s.close()
    time.sleep(0.001)
sys.stdout.write("%r %r\n" % (accepts, first_file)); sys.stdout.flush()
answers = None
deadline = accepts + 60
while time.monotonic() < deadline:
    ch = grpc.insecure_channel("unix:" + path, options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        ch.unary_unary("/runtime.v1.RuntimeService/Version")(b"", timeout=1.0)
    except grpc.RpcError:
        time.sleep(0.005)
        continue
    else:
        answers = time.monotonic()
        break
    finally:
        ch.close()
sys.stdout.write("%r\n" % (answers,)); sys.stdout.flush()
"""


def socket_identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "none"
    return f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}"


class SocketWatch:
    """Start before the runtime comes back: ``await watch.result()`` gives
    (accepts_at, file_at) and ``await watch.answers()`` the time Version first
    answered OK, all in ``time.monotonic()`` seconds."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    async def arm(cls, path: str, old_identity: str) -> SocketWatch:
        env = dict(os.environ, GRPC_VERBOSITY="NONE")
        proc = subprocess.Popen(  # noqa: ASYNC220 (a few ms; its pipe is read in a thread)
            [sys.executable, "-c", _WATCH, path, old_identity],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        )
        assert proc.stdout is not None
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        if line.strip() != b"armed":
            raise RuntimeError("socket watcher did not start")
        return cls(proc)

    async def _line(self, timeout: float) -> bytes:
        assert self._proc.stdout is not None
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(self._proc.stdout.readline)

    async def result(self, timeout: float = 120.0) -> tuple[float, float]:
        accepts, first_file = (await self._line(timeout)).split()
        return float(accepts), float(first_file)

    async def answers(self, timeout: float = 70.0) -> float | None:
        text = (await self._line(timeout)).strip()
        return None if text in (b"None", b"") else float(text)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()


# ----------------------------------------------------------------- runtimes


def short_tmpdir(prefix: str) -> str:
    """A folder under /tmp (unix socket paths must stay short)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


class Runtime:
    """The runtime under test, in its own process: stop it and start it again."""

    kind: str
    endpoint: str
    socket_path: str

    @property
    def server_pid(self) -> int | None:
        raise NotImplementedError

    async def stop(self, sig: signal.Signals) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError


class FakeRuntime(Runtime):
    """aiocri's fake runtime as a process (FakeRuntimeProcess)."""

    kind = "fake"

    def __init__(self, **kwargs: Any) -> None:
        from aiocri.testing import FakeRuntimeProcess

        self.folder = short_tmpdir("aiocri-bench-")
        self.socket_path = os.path.join(self.folder, "cri.sock")
        kwargs.setdefault("uvloop", True)
        self.process = FakeRuntimeProcess(self.socket_path, **kwargs)
        self.endpoint = self.process.endpoint

    @property
    def server_pid(self) -> int | None:
        return self.process.pid

    async def stop(self, sig: signal.Signals) -> None:
        if sig == signal.SIGKILL:
            await self.process.kill()
        else:
            await self.process.terminate()

    async def start(self) -> None:
        await self.process.start()

    async def __aenter__(self) -> FakeRuntime:
        await self.process.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.process.__aexit__(None, None, None)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class ContainerdRuntime(Runtime):
    """A private containerd (aiocri.testing.containerd) with ``pods`` x
    ``containers_per_pod`` running ``sleep`` containers."""

    kind = "containerd"

    def __init__(self, pods: int = 20, containers_per_pod: int = 5, series: str = "1.6") -> None:
        self.series = series  # "1.6": Debian's, on PATH; "1.7": the unpacked one
        self.pods = pods
        self.containers_per_pod = containers_per_pod
        self.ctd: Any = None
        self.endpoint = ""
        self.socket_path = ""
        self.create_seconds = 0.0
        #: pod id -> its PodSandboxConfig (CreateContainer needs it: containerd 1.6
        #: dereferences a missing sandbox_config and crashes)
        self.pod_configs: dict[str, Any] = {}

    @property
    def server_pid(self) -> int | None:
        return self.ctd.pid if self.ctd is not None else None

    async def stop(self, sig: signal.Signals) -> None:
        await self.ctd.akill(sig)

    async def start(self) -> None:
        await self.ctd.alaunch()

    async def __aenter__(self) -> ContainerdRuntime:
        from aiocri.testing.containerd import Containerd, containerd_17

        bin_dir = containerd_17() if self.series == "1.7" else None
        if self.series == "1.7" and bin_dir is None:
            raise RuntimeError("no containerd 1.7: run `sh .ci/system-deps` as root")
        self.ctd = await Containerd.astart(log_level="warn", bin_dir=bin_dir)
        self.endpoint = self.ctd.endpoint
        self.socket_path = self.ctd.address
        try:
            begin = time.monotonic()
            await self._populate()
            self.create_seconds = time.monotonic() - begin
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.ctd.astop()
            raise
        return self

    async def _populate(self) -> None:
        from aiocri.testing.containerd import container_config

        async with raw_channel(self.endpoint) as channel:
            run = _method(channel, "RunPodSandbox", pb.RunPodSandboxRequest, pb.RunPodSandboxResponse)
            create = _method(channel, "CreateContainer", pb.CreateContainerRequest,
                             pb.CreateContainerResponse)
            start = _method(channel, "StartContainer", pb.StartContainerRequest,
                            pb.StartContainerResponse)
            limiter = anyio.CapacityLimiter(4)

            async def pod(i: int) -> None:
                async with limiter:
                    config = self.ctd.pod_config(f"bench-{i}")
                    pod_id = (await run(pb.RunPodSandboxRequest(config=config), timeout=60)).pod_sandbox_id
                    self.pod_configs[pod_id] = config
                    for j in range(self.containers_per_pod):
                        cid = (await create(pb.CreateContainerRequest(
                            pod_sandbox_id=pod_id, config=container_config(f"c{j}"),
                            sandbox_config=config), timeout=60)).container_id
                        await start(pb.StartContainerRequest(container_id=cid), timeout=60)

            async with anyio.create_task_group() as tg:
                for i in range(self.pods):
                    tg.start_soon(pod, i)

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.ctd.astop()


@contextlib.asynccontextmanager
async def raw_channel(endpoint: str) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(endpoint, options=AIOCRI_CHANNEL_OPTIONS)
    try:
        yield channel
    finally:
        with anyio.CancelScope(shield=True):
            await channel.close(None)


def _method(channel: grpc.aio.Channel, name: str, req: Any, resp: Any) -> Any:
    return channel.unary_unary(V1 + name, request_serializer=req.SerializeToString,
                               response_deserializer=resp.FromString)


async def sample_ids(endpoint: str) -> tuple[str, str, int]:
    """A running container's id, a pod's id, and how many containers there are."""
    async with raw_channel(endpoint) as channel:
        lc = _method(channel, "ListContainers", pb.ListContainersRequest, pb.ListContainersResponse)
        lp = _method(channel, "ListPodSandbox", pb.ListPodSandboxRequest, pb.ListPodSandboxResponse)
        containers = (await lc(pb.ListContainersRequest(), timeout=30)).containers
        pods = (await lp(pb.ListPodSandboxRequest(), timeout=30)).items
    running = [c for c in containers if c.state == pb.CONTAINER_RUNNING] or list(containers)
    return running[0].id, pods[0].id, len(containers)


def connectable(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True
