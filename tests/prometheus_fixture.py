"""A real Prometheus server for a test: it scrapes the targets the test names and
answers PromQL over its HTTP API.

``.ci/system-deps`` installs Debian's ``prometheus`` (the binary only; its service is
never started). Without ``/usr/bin/prometheus`` the test skips saying so, except in
CI (``CI=true``), where it fails: CI must run it.

    async with run_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prom:
        samples = await prom.wait_for_query("up == 1", what="the first scrape")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import pytest

__all__ = [
    "PROMETHEUS",
    "Prometheus",
    "PrometheusError",
    "Sample",
    "free_port",
    "require_prometheus",
    "run_prometheus",
]

PROMETHEUS = Path("/usr/bin/prometheus")


class PrometheusError(Exception):
    """Prometheus refused a query (bad PromQL), or answered something unexpected."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant query's answer."""

    labels: dict[str, str]
    value: float


def require_prometheus() -> Path:
    """The binary, or skip (fail under ``CI=true``) saying how to get it."""
    if os.access(PROMETHEUS, os.X_OK):
        return PROMETHEUS
    reason = f"no {PROMETHEUS} (run `sh .ci/system-deps` as root to install Debian's prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the Prometheus tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def config(targets: Sequence[str], scrape_interval: float, job: str) -> str:
    """prometheus.yml scraping ``targets`` (JSON is YAML, and needs no quoting rules)."""
    interval = f"{round(scrape_interval * 1000)}ms"
    # a scrape must end before the next one is due
    scrape_timeout = f"{max(1, round(scrape_interval * 800))}ms"
    return json.dumps({
        "global": {"scrape_interval": interval, "scrape_timeout": scrape_timeout},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }, indent=2)


class Prometheus:
    """A running server: ``url``, ``query()`` (blocking) and ``wait_for_query()``."""

    def __init__(self, process: anyio.abc.Process, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log

    def log(self) -> str:
        """The end of what the server logged (for failure messages)."""
        return self._log.read_text(errors="replace")[-3000:]

    def _get(self, path: str, timeout: float = 5.0) -> object:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            # a bad query is a 400 whose JSON body says what is wrong with it
            body = error.read().decode(errors="replace")
            raise PrometheusError(f"GET {path}: HTTP {error.code}: {body}") from None

    def query(self, promql: str) -> list[Sample]:
        """An instant query, now: the samples of the vector (a scalar: one, no labels).
        Blocks: from async code use :meth:`aquery`."""
        reply = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if not isinstance(reply, dict) or reply.get("status") != "success":
            raise PrometheusError(f"{promql!r}: {reply!r}")
        data = reply["data"]
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PrometheusError(f"{promql!r} is a {data['resultType']}, not an instant vector")
        return [Sample(dict(item["metric"]), float(item["value"][1]))
                for item in data["result"]]

    async def aquery(self, promql: str) -> list[Sample]:
        """:meth:`query` in a worker thread: the test's event loop keeps running."""
        return await anyio.to_thread.run_sync(self.query, promql)

    async def wait_for_query(
        self,
        promql: str,
        holds: Callable[[list[Sample]], bool] = bool,
        *,
        timeout: float = 15.0,
        interval: float = 0.2,
        what: str = "",
    ) -> list[Sample]:
        """Query until ``holds(samples)`` (default: any sample at all); return them.
        After ``timeout`` s fail with the last answer and the server's log."""
        last: list[Sample] = []
        with anyio.move_on_after(timeout):
            while True:
                last = await self.aquery(promql)
                if holds(last):
                    return last
                await anyio.sleep(interval)
        raise AssertionError(
            f"{what or promql} did not hold within {timeout} s; {promql!r} last gave {last}\n"
            f"prometheus log:\n{self.log()}")

    async def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, ConnectionError):
                return False

        with anyio.move_on_after(timeout):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n"
                                       f"{self.log()}")
                if await anyio.to_thread.run_sync(ready):
                    return
                await anyio.sleep(0.05)
        raise TimeoutError(f"prometheus did not become ready within {timeout} s:\n{self.log()}")


@contextlib.asynccontextmanager
async def run_prometheus(
    folder: Path,
    targets: Sequence[str],
    *,
    scrape_interval: float = 0.5,
    job: str = "aiocri-test",
    start_timeout: float = 30.0,
) -> AsyncIterator[Prometheus]:
    """Start Prometheus scraping ``targets`` ("host:port") every ``scrape_interval`` s,
    with its config, data and log in ``folder``; stop it on the way out (SIGTERM, then
    SIGKILL after 10 s). Skips (fails under CI) when the binary is missing."""
    if not 0 < scrape_interval <= 1:  # NaN too
        raise ValueError(f"scrape_interval must be in (0, 1] s, not {scrape_interval!r}")
    binary = require_prometheus()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(config(targets, scrape_interval, job))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = await anyio.open_process(
            [str(binary),
             f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # a Ctrl-C of the test run is ours to pass on, not its
    server = Prometheus(process, port, log)
    try:
        await server._wait_ready(start_timeout)
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with anyio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:  # it ignored SIGTERM for too long
                process.kill()
            await process.aclose()
