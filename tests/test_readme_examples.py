"""Every Python example of the README: checked by ``mypy --strict`` and run as a user runs it.

Whole programs are checked as files; fragments (top-level ``await``) are checked inside an
``async def`` that gives them ``client``, ``cid`` and ``pod_id``. The controller example
runs as ``python example.py`` against ``aiocri fake-runtime`` in its own process: its
happy path, a change, Ctrl-C, and the upgrade that drops the pinned version.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import pytest

import aiocri
from aiocri.testing import FakeRuntime, FakeRuntimeProcess, wait_for
from tests.cli_process import scrape

ROOT = Path(__file__).resolve().parent.parent
CONTROLLER = "Use it in an async controller"
DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"


@dataclass(frozen=True)
class Block:
    heading: str  # the section the block sits in
    number: int  # its place among the README's Python blocks
    source: str

    @property
    def fragment(self) -> bool:
        """Code meant for the inside of an async function (a top-level await)."""
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        code = compile(self.source, f"README block {self.number}", "exec", flags=flags)
        return bool(code.co_flags & inspect.CO_COROUTINE)

    def module(self) -> str:
        """The block as a file mypy can check."""
        if not self.fragment:
            return self.source
        body = "".join(f"    {line}\n" if line else "\n" for line in self.source.splitlines())
        return ("import aiocri\n\n\n"
                "async def example(client: aiocri.CRIClient, cid: str, pod_id: str) -> None:\n"
                + body)


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines: list[str] = []
    heading, inside = "", False
    for line in (ROOT / "README.md").read_text().splitlines():
        if inside and line.startswith("```"):
            blocks.append(Block(heading, len(blocks), "\n".join(lines) + "\n"))
            inside = False
        elif inside:
            lines.append(line)
        elif line.startswith("```python"):
            inside, lines = True, []
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return blocks


BLOCKS = readme_blocks()


def block(heading: str) -> Block:
    return next(b for b in BLOCKS if b.heading == heading)


def child_env(**extra: str) -> dict[str, str]:
    """What a user's shell gives: this tree's aiocri, output as it is printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


# -- mypy --strict ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[str]]:
    """One mypy --strict run over every block; its errors by block number."""
    folder = tmp_path_factory.mktemp("readme")
    paths = {}
    for b in BLOCKS:
        paths[b.number] = path = folder / f"readme_block_{b.number}.py"
        path.write_text(b.module())
    # run from ROOT: mypy finds this tree's aiocri there (not through the editable install)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         *map(str, paths.values())],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy did not run
    return {n: [line for line in result.stdout.splitlines()
                if line.startswith(f"{path}:") and ": error:" in line]
            for n, path in paths.items()}


def test_readme_has_the_examples_this_file_runs() -> None:
    headings = [b.heading for b in BLOCKS]
    assert headings[0] == CONTROLLER
    assert not BLOCKS[0].fragment  # the first example is checked as a whole file
    for heading in (CONTROLLER, "Lifetime", "Testing your controller"):
        assert heading in headings, heading


@pytest.mark.parametrize("b", BLOCKS, ids=[b.heading for b in BLOCKS])
def test_readme_example_passes_mypy_strict(b: Block, mypy_errors: dict[int, list[str]]) -> None:
    assert mypy_errors[b.number] == [], "\n".join(mypy_errors[b.number])


# -- the controller example, run as a program --------------------------------------------------


@contextlib.contextmanager
def ctrl_c_as_at_a_terminal() -> Iterator[None]:
    """A child inherits an ignored SIGINT (a suite started in a shell's background):
    let the example's process get Ctrl-C as it does at a terminal."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Program:
    """A Python program in its own process, and what it printed so far."""

    def __init__(self, process: anyio.abc.Process, out: Path, err: Path) -> None:
        self.process = process
        self._out, self._err = out, err

    @property
    def stdout(self) -> str:
        return self._out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(errors="replace")

    async def printed(self, pattern: str, what: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            return re.search(pattern, self.stdout, re.MULTILINE) is not None

        await wait_for(lambda: seen() or self.process.returncode is not None,
                       timeout=timeout, what=what)
        assert seen(), f"{what}: {self.report()}"

    async def exit_code(self, timeout: float = 20.0) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()

    def report(self) -> str:
        return f"exit {self.process.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@contextlib.asynccontextmanager
async def run_program(path: Path, **env: str) -> AsyncIterator[Program]:
    """``python path`` with this tree's aiocri; killed on the way out if still running."""
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr, ctrl_c_as_at_a_terminal():
        process = await anyio.open_process(
            [sys.executable, str(path)], stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=stderr, env=child_env(**env), cwd=path.parent)
    try:
        yield Program(process, out, err)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


@pytest.fixture
def controller(tmp_path: Path) -> Path:
    path = tmp_path / "controller.py"
    path.write_text(block(CONTROLLER).source)  # as it is written, byte for byte
    return path


async def listed_ids(endpoint: str) -> tuple[list[str], list[str]]:
    async with aiocri.connect(endpoint) as client:
        pods = (await client.runtime.list_pod_sandbox()).items
        containers = (await client.runtime.list_containers()).containers
    return [p.id for p in pods], [c.id for c in containers]


@pytest.mark.anyio
@pytest.mark.parametrize("down_for", [0.0, 1.5], ids=["quick", "a_relist_waits_on_the_outage"])
async def test_readme_controller_example_exits_0_when_an_upgrade_drops_its_version(
    controller: Path, sock_dir: Path, down_for: float,
) -> None:
    """The issue's scenario: v1alpha2 only, SIGTERM, back as v1 only. Down longer than the
    example's period, a relist is waiting for the redial when the runtime comes back."""
    async with FakeRuntimeProcess(sock_dir / "rt.sock", versions=["v1alpha2"], pods=1,
                                  containers_per_pod=1) as rt:
        async with run_program(controller, CONTAINER_RUNTIME_ENDPOINT=rt.endpoint) as program:
            await program.printed(r"^CONTAINER_STARTED ", "the replayed container")
            assert "pinned CRI v1alpha2 on aiocri-fake" in program.stdout
            await rt.restart(down_for, versions=["v1"])  # SIGTERM, the upgraded runtime
            code = await program.exit_code()
        assert code == 0, program.report()
        assert re.search(r"^runtime dropped our CRI version: .*v1alpha2", program.stdout,
                         re.MULTILINE), program.report()
        assert "Traceback" not in program.stderr, program.report()


@pytest.mark.anyio
async def test_readme_controller_example_replays_reports_and_ends_on_ctrl_c(
    controller: Path, sock_dir: Path,
) -> None:
    async with FakeRuntimeProcess(sock_dir / "rt.sock", pods=2, containers_per_pod=1) as rt:
        pods, containers = await listed_ids(rt.endpoint)
        async with run_program(controller, CONTAINER_RUNTIME_ENDPOINT=rt.endpoint) as program:
            # the replay: one line per pod and container, pods first
            for oid in (*pods, *containers):
                await program.printed(rf"^\w+ {oid} ", f"the replay of {oid}")
            lines = program.stdout.splitlines()
            assert lines[0] == "pinned CRI v1 on aiocri-fake", program.report()
            assert {line.split()[0] for line in lines[1:3]} == {"POD_READY"}
            # a change as it happens
            async with aiocri.connect(rt.endpoint) as client:
                await client.runtime.stop_container(container_id=containers[0])
            await program.printed(rf"^CONTAINER_EXITED {containers[0]} ", "the exit")
            assert program.process.returncode is None
            program.process.send_signal(signal.SIGINT)  # Ctrl-C
            code = await program.exit_code()
        assert code == 0, program.report()
        assert "Traceback" not in program.stderr, program.report()


# -- the other runnable examples ---------------------------------------------------------------


@pytest.mark.anyio
async def test_readme_lifetime_example_runs(tmp_path: Path, runtime: FakeRuntime) -> None:
    fragment = block("Lifetime")
    assert fragment.fragment and DEFAULT_ENDPOINT in fragment.source
    body = fragment.source.replace(DEFAULT_ENDPOINT, runtime.endpoint)
    path = tmp_path / "lifetime.py"
    path.write_text("import anyio\n\nimport aiocri\n\n\nasync def main() -> None:\n"
                    + "".join(f"    {line}\n" for line in body.splitlines())
                    + "\n\nanyio.run(main)\n")
    async with run_program(path) as program:
        code = await program.exit_code()
    assert code == 0, program.report()


def test_readme_testing_example_passes_under_pytest(tmp_path: Path) -> None:
    """Saved as a test file of the user's own project and run by pytest."""
    path = tmp_path / "test_controller.py"
    path.write_text(block("Testing your controller").source)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout, result.stdout


# -- the streaming examples, run against the fake runtime ------------------------------------


class _Ports(ast.NodeTransformer):
    """The README's port numbers (80 in the pod, 8080 on the host) replaced by free ones."""

    def __init__(self, ports: dict[int, int]) -> None:
        self.ports = ports

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        if type(node.value) is int and node.value in self.ports:
            return ast.copy_location(ast.Constant(self.ports[node.value]), node)
        return node


@pytest.mark.anyio
async def test_readme_streaming_examples_run_on_the_fake_runtime(runtime: FakeRuntime) -> None:
    """Every statement of the README's streaming block, in order, on a fake busybox
    container (its pods share the host's network, so the pod's port 80 is a local server
    here, and the host's 8080 a free port): `cat; exit 3` echoes what was written and
    exits 3, `ls /` lists the image's top folders, the TTY session resizes, attach reads
    the main process to its end, port_forward gets the server's reply and forward_port
    listens."""
    import asyncio

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nfrom the pod")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    pod_port = server.sockets[0].getsockname()[1]
    tree = compile(block("Streaming: exec, attach, port-forward").source, "README", "exec",
                   flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert all(isinstance(node, ast.AsyncWith) for node in tree.body)
    assert len(tree.body) == 6
    # the host's 8080 becomes 0: forward_port's "any free port" (no race for a port)
    body = [_Ports({80: pod_port, 8080: 0}).visit(node) for node in tree.body]
    module = ast.Module(body=[ast.AsyncFunctionDef(
        name="examples", args=ast.arguments(
            posonlyargs=[], args=[ast.arg("client"), ast.arg("cid"), ast.arg("pod_id")],
            kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=[*body, ast.Return(ast.Tuple([ast.Name("out", ast.Load()),
                                           ast.Name("reply", ast.Load())], ast.Load()))],
        decorator_list=[], returns=None)], type_ignores=[])
    namespace: dict[str, object] = {}
    exec(compile(ast.fix_missing_locations(module), "README", "exec"), namespace)
    pod_id = runtime.state.add_pod("readme")
    cid = runtime.state.add_container(pod_id, "shell")  # sleep infinity
    container = runtime.state.containers[cid]

    async def main_process_ends_once_attached() -> None:
        # attach reads the main process until it ends: it prints, then exits
        await wait_for(lambda: bool(container.listeners), timeout=30)
        runtime.write_output(cid, "attached\n")
        runtime.state.exit_container(cid, 0)

    printed = io.StringIO()
    try:
        async with runtime.connect() as client, anyio.create_task_group() as tg:
            tg.start_soon(main_process_ends_once_attached)
            with contextlib.redirect_stdout(printed), anyio.fail_after(30):
                out, reply = await namespace["examples"](client, cid, pod_id)  # type: ignore[operator]
    finally:
        server.close()
    assert printed.getvalue().splitlines() == ["b'hello'", "3"]
    assert out.exit_code == 0 and {b"bin", b"etc", b"tmp"} <= set(out.stdout.split())
    assert reply == b"HTTP/1.0 200 OK\r\n\r\nfrom the pod"
    assert runtime.state.containers[cid].state == aiocri.api.CONTAINER_EXITED


# -- metrics and traces --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_readme_metrics_example_through_a_restart_and_an_upgrade(
    tmp_path: Path, sock_dir: Path,
) -> None:
    """The metrics example as a user runs it: /metrics served, a restart counted as a
    redial, and the upgrade that drops its version ends it cleanly."""
    path = tmp_path / "observed.py"
    path.write_text(block("Metrics and traces").source)
    async with FakeRuntimeProcess(sock_dir / "rt.sock", versions=["v1alpha2"], pods=1,
                                  containers_per_pod=1) as rt:
        async with run_program(path, CONTAINER_RUNTIME_ENDPOINT=rt.endpoint,
                               METRICS_PORT="0") as program:
            address = r"^metrics on http://127\.0\.0\.1:(\d+)/metrics$"
            await program.printed(address, "the metrics address")
            found = re.search(address, program.stdout, re.MULTILINE)
            assert found is not None
            port = int(found.group(1))
            await program.printed(r"^CONTAINER_STARTED ", "the replayed container")
            ep = rt.endpoint
            text = await scrape(port)
            assert f'aiocri_restart_required{{endpoint="{ep}"}} 0.0' in text
            assert f'aiocri_connection_info{{endpoint="{ep}",runtime_name="aiocri-fake"' in text
            await rt.restart(0.1, versions=["v1alpha2"])

            async def redialled() -> bool:
                return f'aiocri_connection_redials_total{{endpoint="{ep}"}} 1.0' in await scrape(
                    port)

            await wait_for(redialled, timeout=30, what="the redial counted")
            await rt.restart(0.0, versions=["v1"])  # the upgrade that drops v1alpha2
            code = await program.exit_code()
        assert code == 0, program.report()
        assert re.search(r"^runtime dropped our CRI version: .*v1alpha2", program.stdout,
                         re.MULTILINE), program.report()
        assert "Traceback" not in program.stderr, program.report()
