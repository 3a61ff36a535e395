"""The fake runtime in its own process, for benchmarks and real SIGKILL tests.

Benchmarks need the server's CPU off the client's process (a grpc.aio server
costs about as much per call as the client), and only a real process can be
SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import anyio
import anyio.abc
import anyio.lowlevel
import grpc
import grpc.aio

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._server import refuse_live_socket, remove_socket_file, socket_is_live
from aiocri.testing.fake_runtime import DEFAULT_VERSIONS
from aiocri.versions import CRIVersion, resolve_versions

__all__ = ["FakeRuntimeProcess"]

# The folder holding the aiocri package, so the child imports this very copy
# (not resolved: a symlinked checkout stays the one in use).
_PACKAGE_ROOT = str(Path(os.path.abspath(__file__)).parents[2])


class FakeRuntimeProcess:
    """``python -m aiocri.testing`` as an async context manager.

    Entering spawns the process and returns once the socket answers Version;
    leaving terminates it. The child seeds its ids (``seed``), so a restarted
    process lists the same pods and containers again. The child stops by
    itself when this process dies (it watches a pipe whose other end only we
    hold), and it is never started on a socket a live server answers on
    (OSError, EADDRINUSE).
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        versions: Iterable[str | CRIVersion] = DEFAULT_VERSIONS,
        pods: int = 0,
        containers_per_pod: int = 0,
        *,
        churn_per_second: float = 0.0,
        runtime_name: str = "aiocri-fake",
        runtime_version: str = "1.0.0",
        images: Iterable[str] | None = None,
        seed: int = 0,
        uvloop: bool = False,
        start_timeout: float = 30.0,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.socket_path = os.path.abspath(os.fspath(socket_path))
        self.versions = resolve_versions(versions)
        self.pods = pods
        self.containers_per_pod = containers_per_pod
        self.churn_per_second = churn_per_second
        self.runtime_name = runtime_name
        self.runtime_version = runtime_version
        self.images = list(images) if images is not None else None
        self.seed = seed
        self.uvloop = uvloop
        self.start_timeout = start_timeout
        self.python = python
        self.env = dict(env) if env is not None else None
        self._process: anyio.abc.Process | None = None
        self._log: IO[bytes] | None = None
        self._lifeline: int | None = None  # the pipe's write end; the child lives while it is open

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def argv(self) -> list[str]:
        args = [
            self.python, "-m", "aiocri.testing",
            "--socket", self.socket_path,
            "--versions", ",".join(v.name for v in self.versions),
            "--pods", str(self.pods),
            "--containers-per-pod", str(self.containers_per_pod),
            "--churn-per-second", str(self.churn_per_second),
            "--runtime-name", self.runtime_name,
            "--runtime-version", self.runtime_version,
            "--seed", str(self.seed),
        ]  # fmt: skip
        for image in self.images or ():
            args += ["--image", image]
        if self.uvloop:
            args.append("--uvloop")
        return args

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
        return env

    async def start(self) -> None:
        """Spawn the process and wait until it answers on the socket."""
        if self.running:
            raise RuntimeError(f"the fake runtime process {self.pid} is running")
        # here too: the old server would answer _wait_ready before the child fails
        refuse_live_socket(self.socket_path)
        self._close_log()
        self._close_lifeline()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child)
        child_end, self._lifeline = os.pipe()
        try:
            self._process = await anyio.open_process(
                [*self.argv(), "--parent-fd", str(child_end)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                env=self._child_env(),
                start_new_session=True,  # a Ctrl-C meant for the tests does not reach it
                pass_fds=(child_end,),
            )
        except BaseException:
            self._close_lifeline()
            raise
        finally:
            os.close(child_end)
        try:
            await self._wait_ready()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._signal(signal.SIGKILL)
            raise

    async def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        version = self.versions[0]
        with anyio.move_on_after(self.start_timeout) as scope:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(
                        f"the fake runtime exited with {process.returncode}: {self.stderr()}"
                    )
                # a stale file from a killed run exists before the new process binds
                exists = await anyio.Path(self.socket_path).exists()
                if exists and await _answers(self.endpoint, version):
                    return
                await anyio.sleep(0.02)
        if scope.cancelled_caught:
            raise TimeoutError(
                f"the fake runtime did not answer on {self.endpoint} within "
                f"{self.start_timeout} s: {self.stderr()}"
            )

    def stderr(self) -> str:
        """What the process wrote to stderr so far (for error messages)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:].strip()

    async def _signal(self, signum: signal.Signals, timeout: float | None = None) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signum)
            with anyio.move_on_after(timeout):
                await process.wait()
            if process.returncode is None:  # ignored SIGTERM for too long
                process.kill()
                await process.wait()
        self._close_lifeline()
        return process.returncode

    async def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: the socket file is removed); SIGKILL after ``timeout``."""
        return await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> int | None:
        """SIGKILL: connections die mid-flight and the socket file stays behind."""
        return await self._signal(signal.SIGKILL)

    async def restart(
        self,
        down_for: float = 0.0,
        *,
        versions: Iterable[str | CRIVersion] | None = None,
        runtime_version: str | None = None,
        kill: bool = False,
    ) -> None:
        """Stop (SIGTERM, or SIGKILL with ``kill=True``), wait, start again."""
        await (self.kill() if kill else self.terminate())
        if versions is not None:
            self.versions = resolve_versions(versions)
        if runtime_version is not None:
            self.runtime_version = runtime_version
        await anyio.sleep(down_for)
        await self.start()

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.terminate()
        self._close_log()
        # a killed child leaves its socket file; a live one is another server's
        if self._process is not None and not socket_is_live(self.socket_path):
            remove_socket_file(self.socket_path)


async def _answers(endpoint: str, version: CRIVersion) -> bool:
    """Whether Version answers on ``endpoint`` (a fresh channel, no inherited backoff)."""
    channel = grpc.aio.insecure_channel(endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        method = channel.unary_unary(
            version.paths["Version"],
            request_serializer=pb.VersionRequest.SerializeToString,
            response_deserializer=pb.VersionResponse.FromString,
        )
        call = method(pb.VersionRequest(version="0.1.0"), timeout=2.0)
        try:
            await call
        except grpc.aio.AioRpcError:
            return False
        except asyncio.CancelledError:
            # grpc.aio hides anyio's cancellation: cancel the call, let anyio see its own
            call.cancel()
            await anyio.lowlevel.checkpoint()
            raise
        return True
    finally:
        with anyio.CancelScope(shield=True):
            await channel.close(None)
