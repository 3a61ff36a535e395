"""Running the ``aiocri`` command as a real process, from async tests (the fake runtime
serves on the test's own event loop, so nothing here may block it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

__all__ = ["ROOT", "aiocri", "cli_env", "run_module", "scrape"]

ROOT = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """This environment without the CLI's settings (and with ``extra``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONTAINER_RUNTIME_ENDPOINT", "IMAGE_SERVICE_ENDPOINT")}
    env["CRI_CONFIG_FILE"] = os.devnull
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


async def run_module(module: str, *args: str, stdin: bytes | None = None,
                     env: dict[str, str] | None = None, timeout: float = 60
                     ) -> tuple[int, bytes, bytes]:
    """``python -m MODULE ARGS``: exit code, stdout, stderr. A process still running
    after ``timeout`` is killed and fails the test (a hang, not a slow machine)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or cli_env())
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"{module} {' '.join(args)} still ran after {timeout:g} s; "
                             f"it printed {out[-500:]!r} {err[-500:]!r}") from None
    assert proc.returncode is not None
    return proc.returncode, out, err


async def aiocri(endpoint: str, *args: str, stdin: bytes | None = None, timeout: float = 60
                 ) -> tuple[int, bytes, bytes]:
    """``aiocri -r ENDPOINT ARGS``."""
    return await run_module("aiocri.cli", "-r", endpoint, *args, stdin=stdin, timeout=timeout)


async def scrape(port: int) -> str:
    """One GET of ``http://127.0.0.1:PORT/metrics`` (in a thread: the loop keeps serving)."""
    url = f"http://127.0.0.1:{port}/metrics"
    body: bytes = await asyncio.to_thread(
        lambda: urllib.request.urlopen(url, timeout=10).read())
    return body.decode()
