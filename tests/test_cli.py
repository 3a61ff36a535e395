"""The ``aiocri`` command against the fake runtime (run as a separate process).

Most commands run in-process (``run_cli``: fast); a few run as a
real process (``python -m aiocri.cli``) where what matters is the process:
exit codes and stderr with no traceback, missing dependencies, event streams.

:func:`check_read_only_commands` compares every read-only subcommand's
``-o json`` output with what the API returns for the same objects; it takes
an endpoint so it can be pointed at containerd too.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiocri
from aiocri import api
from aiocri.testing import FakeRuntime
from tests.cli_process import cli_env

yaml = pytest.importorskip("yaml")

import aiocri.cli  # noqa: E402
from aiocri._cli.render import human_duration, human_size, rfc3339  # noqa: E402
from aiocri._cli.settings import (  # noqa: E402
    SettingsError,
    parse_duration,
    resolve_settings,
)

ROOT = Path(__file__).resolve().parents[1]


# -- running the command ---------------------------------------------------------------------


@dataclass
class CLIResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


_EMPTY_CONFIG: list[str] = []


def _empty_config() -> str:
    """An empty crictl config file, so that no /etc/crictl.yaml on the machine interferes."""
    if not _EMPTY_CONFIG:
        fd, path = tempfile.mkstemp(prefix="aiocri-crictl-", suffix=".yaml")
        os.close(fd)
        atexit.register(os.unlink, path)
        _EMPTY_CONFIG.append(path)
    return _EMPTY_CONFIG[0]


def _isolated_env(env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    return {
        "CONTAINER_RUNTIME_ENDPOINT": None,
        "IMAGE_SERVICE_ENDPOINT": None,
        "CRI_CONFIG_FILE": _empty_config(),
        **(env or {}),
    }


class _Output(io.TextIOWrapper):
    """A text stream over bytes (``.buffer``), as a terminal-less stdout is."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def text(self) -> str:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().decode("utf-8", "replace")


def run_cli(*args: str, env: Mapping[str, str | None] | None = None) -> CLIResult:
    """``aiocri ARGS`` in this process (stdin empty, stdout and stderr captured); the
    environment is isolated."""
    logger = logging.getLogger("aiocri")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    saved_env = dict(os.environ)
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    out, err = _Output(), _Output()
    code: Any = 0
    try:
        for key, value in _isolated_env(env).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
        try:
            aiocri.cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
    finally:  # the command configures the aiocri logger; other tests expect it untouched
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_env)
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    if code is None:
        code = 0
    elif not isinstance(code, int):
        err.write(f"{code}\n")
        code = 1
    return CLIResult(code, out.text(), err.text())


def run_cli_process(*args: str, env: Mapping[str, str | None] | None = None,
                    timeout: float = 60) -> CLIResult:
    """``aiocri ARGS`` as a real process (``python -m aiocri.cli``)."""
    child_env = dict(os.environ)
    for key, value in _isolated_env(env).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    child_env["PYTHONPATH"] = str(ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "aiocri.cli", *args], capture_output=True,
                          text=True, env=child_env, timeout=timeout, check=False)
    return CLIResult(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: CLIResult, *needles: str) -> None:
    """Failed, with exactly one line on stderr, no traceback, mentioning ``needles``."""
    assert result.code != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the fake runtime, as a process -------------------------------------------------------------


@dataclass
class FakeProcess:
    endpoint: str
    socket: str
    process: subprocess.Popen[bytes]


def _start_fake(socket: str, versions: str, pods: int, per_pod: int, *,
                via_cli: bool = False) -> FakeProcess:
    """``python -m aiocri.testing`` (or ``aiocri fake-runtime``: the same server) serving."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    entry = ["aiocri.cli", "fake-runtime"] if via_cli else ["aiocri.testing"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *entry, "--socket", socket, "--versions", versions,
         "--pods", str(pods), "--containers-per-pod", str(per_pod)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once it serves
    if b"serving" not in line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"fake runtime did not start: {line!r} {err.decode()[-2000:]}")
    return FakeProcess(f"unix://{socket}", socket, proc)


def _stop_fake(fake: FakeProcess) -> None:
    fake.process.send_signal(signal.SIGTERM)
    try:
        fake.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fake.process.kill()
        fake.process.wait(timeout=10)
    for stream in (fake.process.stdout, fake.process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def fake_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cri-cli-", dir="/tmp"))
    yield path
    for item in path.iterdir():
        item.unlink()
    path.rmdir()


@pytest.fixture(scope="module")
def ro_runtime(fake_dir: Path) -> Iterator[FakeProcess]:
    """Read-only tests share this one: v1 and v1alpha2, 3 pods of 2 containers."""
    fake = _start_fake(str(fake_dir / "ro.sock"), "v1,v1alpha2", 3, 2)
    yield fake
    _stop_fake(fake)


@pytest.fixture
def rw_runtime(fake_dir: Path) -> Iterator[FakeProcess]:
    fake = _start_fake(str(fake_dir / "rw.sock"), "v1", 3, 3)
    yield fake
    _stop_fake(fake)


# -- what the API says ------------------------------------------------------------------------------


async def _api_truth(endpoint: str, image_endpoint: str | None) -> dict[str, Any]:
    async with aiocri.connect(endpoint, image_endpoint) as client:
        rt = client.runtime
        truth: dict[str, Any] = {
            "version": await rt.version(api.VersionRequest(version="v1")),
            "pinned": client.version.name,
            "pods": list((await rt.list_pod_sandbox()).items),
            "containers": list((await rt.list_containers()).containers),
            "images": list((await client.image.list_images()).images),
            "status": await rt.status(api.StatusRequest()),
            "fs": await client.image.image_fs_info(),
            "stats": {s.attributes.id for s in (await rt.list_container_stats()).stats},
            "pod_stats": {s.attributes.id for s in (await rt.list_pod_sandbox_stats()).stats},
        }
        if truth["containers"]:
            cid = truth["containers"][0].id
            truth["container_status"] = (await rt.container_status(
                api.ContainerStatusRequest(container_id=cid))).status
        if truth["pods"]:
            pid = truth["pods"][0].id
            truth["pod_status"] = (await rt.pod_sandbox_status(
                api.PodSandboxStatusRequest(pod_sandbox_id=pid))).status
        if truth["images"]:
            ref = truth["images"][0].id
            truth["image_status"] = (await client.image.image_status(
                api.ImageStatusRequest(image=api.ImageSpec(image=ref)))).image
        return truth


def api_truth(endpoint: str, image_endpoint: str | None = None) -> dict[str, Any]:
    return anyio.run(_api_truth, endpoint, image_endpoint, backend="asyncio")


def _seconds_of(rfc: str) -> str:
    return rfc[:19]  # YYYY-MM-DDTHH:MM:SS


def _utc(nanos: int) -> str:
    return dt.datetime.fromtimestamp(nanos // 1_000_000_000, tz=dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S")


def check_read_only_commands(
    endpoint: str,
    *,
    image_endpoint: str | None = None,
    cli: Callable[..., CLIResult] = run_cli,
) -> None:
    """Every read-only subcommand's ``-o json`` against the API's answers for the same objects.

    Usable against any runtime whose pods, containers and images do not change
    while it runs (the fake runtime here, containerd in the integration tests).
    """
    truth = api_truth(endpoint, image_endpoint)
    base = ["-r", endpoint] + (["-i", image_endpoint] if image_endpoint else [])

    def run(*args: str) -> Any:
        return cli(*base, *args).json()

    # version: crictl's field names, the runtime's values.
    version = run("version", "-o", "json")
    v = truth["version"]
    assert version["runtimeName"] == v.runtime_name
    assert version["runtimeVersion"] == v.runtime_version
    assert version["runtimeApiVersion"] == v.runtime_api_version
    text = cli(*base, "version")
    assert f"RuntimeName:  {v.runtime_name}" in text.stdout
    assert f"PinnedCRIVersion:  {truth['pinned']}" in text.stdout

    # pods: same ids, names, namespaces, states; ListPodSandboxResponse's "items".
    pods = run("pods", "-o", "json")["items"]
    assert {p["id"]: (p["metadata"]["name"], p["metadata"]["namespace"], p["state"])
            for p in pods} == {
        p.id: (p.metadata.name, p.metadata.namespace, api.PodSandboxState.Name(p.state))
        for p in truth["pods"]}
    assert all(int(p["createdAt"]) == q.created_at for p in pods for q in truth["pods"]
               if p["id"] == q.id)

    # ps -a: every container; plain ps: the running ones (crictl's default).
    containers = run("ps", "-a", "-o", "json")["containers"]
    assert {c["id"]: (c["podSandboxId"], c["metadata"]["name"], c["state"], c["image"]["image"],
                      int(c["createdAt"])) for c in containers} == {
        c.id: (c.pod_sandbox_id, c.metadata.name, api.ContainerState.Name(c.state),
               c.image.image, c.created_at) for c in truth["containers"]}
    running = {c.id for c in truth["containers"] if c.state == api.CONTAINER_RUNNING}
    assert {c["id"] for c in run("ps", "-o", "json")["containers"]} == running
    assert set(cli(*base, "ps", "-q").stdout.split()) == running
    created = [c["createdAt"] for c in containers]
    assert created == sorted(created, key=int, reverse=True)  # newest first, as crictl

    # images: ids, tags, sizes (uint64 as a string, like protojson).
    images = run("images", "-o", "json")["images"]
    assert {i["id"]: (sorted(i["repoTags"]), i["size"]) for i in images} == {
        i.id: (sorted(i.repo_tags), str(i.size)) for i in truth["images"]}
    assert set(cli(*base, "images", "-q").stdout.split()) == {i.id for i in truth["images"]}

    # inspect / inspectp / inspecti: {"status": ..., plus the verbose info's keys}.
    if "container_status" in truth:
        s = truth["container_status"]
        got = run("inspect", s.id)
        assert got["status"]["id"] == s.id
        assert got["status"]["state"] == api.ContainerState.Name(s.state)
        assert got["status"]["metadata"]["name"] == s.metadata.name
        assert _seconds_of(got["status"]["createdAt"]) == _utc(s.created_at)
        assert run("inspect", s.id[:12])["status"]["id"] == s.id  # an id prefix
    if "pod_status" in truth:
        s = truth["pod_status"]
        got = run("inspectp", s.id)
        assert got["status"]["id"] == s.id
        assert got["status"]["state"] == api.PodSandboxState.Name(s.state)
        assert got["status"]["metadata"]["namespace"] == s.metadata.namespace
        assert _seconds_of(got["status"]["createdAt"]) == _utc(s.created_at)
    if "image_status" in truth:
        s = truth["image_status"]
        got = run("inspecti", s.id)
        assert got["status"]["id"] == s.id
        assert sorted(got["status"]["repoTags"]) == sorted(s.repo_tags)

    # info: the runtime's conditions.
    info = run("info")
    assert {(c["type"], c["status"]) for c in info["status"]["conditions"]} == {
        (c.type, c.status) for c in truth["status"].status.conditions}

    # imagefsinfo: the filesystems' mount points.
    fs = run("imagefsinfo")["status"]
    assert [f["fsId"]["mountpoint"] for f in fs.get("imageFilesystems", [])] == [
        f.fs_id.mountpoint for f in truth["fs"].image_filesystems]

    # stats / statsp: one entry per object the runtime has stats for.
    stats = run("stats", "-o", "json")
    assert {s["attributes"]["id"] for s in stats.get("stats", [])} == truth["stats"]
    pod_stats = run("statsp", "-o", "json")
    assert {s["attributes"]["id"] for s in pod_stats.get("stats", [])} == truth["pod_stats"]


# -- read-only commands ----------------------------------------------------------------------------


def test_read_only_commands_match_the_api(ro_runtime: FakeProcess) -> None:
    check_read_only_commands(ro_runtime.endpoint)


def test_tables_filters_and_yaml(ro_runtime: FakeProcess) -> None:
    ep = ["-r", ro_runtime.endpoint]
    truth = api_truth(ro_runtime.endpoint)

    ps = run_cli(*ep, "ps")
    assert ps.code == 0, ps.stderr
    header, *rows = ps.stdout.splitlines()
    assert header.split() == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT",
                              "POD", "ID", "POD", "NAMESPACE"]
    assert len(rows) == len(truth["containers"])
    assert {r.split()[0] for r in rows} == {c.id[:13] for c in truth["containers"]}
    assert all(line == line.rstrip() for line in ps.stdout.splitlines())  # no trailing blanks

    pods = run_cli(*ep, "pods")
    assert pods.stdout.splitlines()[0].split() == ["POD", "ID", "CREATED", "STATE", "NAME",
                                                   "NAMESPACE", "ATTEMPT", "RUNTIME"]

    pod1 = [p for p in truth["pods"] if p.metadata.name == "pod-1"]
    assert run_cli(*ep, "pods", "-q", "--name", "^pod-1$").stdout.split() == [p.id for p in pod1]
    ns0 = {p.id for p in truth["pods"] if p.metadata.namespace == "ns-0"}
    assert set(run_cli(*ep, "pods", "-q", "--namespace", "ns-0").stdout.split()) == ns0
    mains = {c.id for c in truth["containers"] if c.labels.get("tier") == "main"}
    assert set(run_cli(*ep, "ps", "-q", "--label", "tier=main").stdout.split()) == mains
    first_pod = truth["pods"][0]
    in_pod = {c.id for c in truth["containers"] if c.pod_sandbox_id == first_pod.id}
    assert set(run_cli(*ep, "ps", "-q", "--pod", first_pod.id[:8]).stdout.split()) == in_pod
    assert run_cli(*ep, "ps", "-q", "--state", "exited").stdout == ""

    as_yaml = yaml.safe_load(run_cli(*ep, "ps", "-o", "yaml").stdout)
    assert {c["id"] for c in as_yaml["containers"]} == {c.id for c in truth["containers"]}
    assert list(as_yaml["containers"][0]) == sorted(as_yaml["containers"][0])  # sorted keys

    images = run_cli(*ep, "images")
    assert images.stdout.splitlines()[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]

    # Text forms.
    cid = truth["containers"][0].id
    assert f"ID: {cid}" in run_cli(*ep, "inspect", "-o", "table", cid).stdout
    assert "Image Filesystem" in run_cli(*ep, "imagefsinfo", "-o", "table").stdout
    stats = run_cli(*ep, "stats", "-s", "0")
    assert stats.stdout.split()[:7] == ["CONTAINER", "NAME", "CPU", "%", "MEM", "DISK", "INODES"]
    assert yaml.safe_load(run_cli(*ep, "info", "-o", "yaml").stdout)["status"]["conditions"]

    assert_one_line_error(run_cli(*ep, "pods", "--state", "bogus"), "ready or notready")
    assert_one_line_error(run_cli(*ep, "ps", "--label", "novalue"), "key=value")


def test_id_prefixes(ro_runtime: FakeProcess) -> None:
    ep = ["-r", ro_runtime.endpoint]
    ids = [c.id for c in api_truth(ro_runtime.endpoint)["containers"]]
    assert run_cli(*ep, "inspect", ids[0][:5]).json()["status"]["id"] == ids[0]
    # A prefix shared by several containers is refused, naming the problem.
    for n in range(1, 4):
        shared = [i for i in ids if sum(j.startswith(i[:n]) for j in ids) > 1]
        if shared:
            assert_one_line_error(run_cli(*ep, "inspect", shared[0][:n]), "ambiguous")
            break
    both = run_cli(*ep, "inspect", ids[0], ids[1][:8]).json()  # several: a list, as crictl
    assert [entry["status"]["id"] for entry in both] == ids[:2]
    missing = run_cli(*ep, "inspect", "zzzz")
    assert_one_line_error(missing, "zzzz", ro_runtime.endpoint, "aiocri ps -a")


def test_watch_prints_the_snapshot(ro_runtime: FakeProcess) -> None:
    result = run_cli("-r", ro_runtime.endpoint, "watch", "-a", "--duration", "0.5",
                     "--period", "0.2")
    assert result.code == 0, result.stderr
    truth = api_truth(ro_runtime.endpoint)
    assert "CRI v1" in result.stdout
    for c in truth["containers"]:
        assert c.id[:13] in result.stdout


@pytest.mark.anyio
async def test_watch_reconnects_when_the_runtime_drops_its_version(sock_dir: Path) -> None:
    rt = FakeRuntime(str(sock_dir / "upgrade.sock"), versions=["v1alpha2"])
    rt.populate(1, 2)
    async with rt:
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "watch", "--mode", "relist",
            "--period", "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
        try:
            # Its table is up once the poller relists after the pass it synced on.
            await until(lambda: relists(rt, "v1alpha2") >= 3 or watch.returncode is not None,
                        "the watch on CRI v1alpha2")
            await rt.stop()  # the "upgrade": the same pods and containers, v1 only
            await rt.start(versions=["v1"])
            await until(lambda: relists(rt, "v1") >= 3 or watch.returncode is not None,
                        "the watch on CRI v1")
            if watch.returncode is None:
                watch.send_signal(signal.SIGINT)  # how a user ends it
            out, err = (b.decode() for b in await asyncio.wait_for(watch.communicate(), 60))
        finally:
            if watch.returncode is None:
                watch.kill()
                await watch.wait()
    assert watch.returncode == 0, err
    assert "no longer serves CRI v1alpha2 (it serves v1); reconnecting" in out
    assert out.index("CRI v1alpha2") < out.index("reconnecting") < out.rindex("CRI v1 ")


def relists(rt: FakeRuntime, version: str) -> int:
    """Container relists ``rt`` served over CRI ``version``."""
    return sum(rt.calls_by_path[f"/runtime.{version}.RuntimeService/{rpc}"]
               for rpc in ("ListContainers", "StreamContainers"))


async def until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until true; the bound is only there to end a broken test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.02)


# -- commands that change things ---------------------------------------------------------------------


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


async def _state_of(endpoint: str, container_id: str) -> str:
    async with aiocri.connect(endpoint) as client:
        r = await client.runtime.container_status(
            api.ContainerStatusRequest(container_id=container_id))
        return api.ContainerState.Name(r.status.state)


def test_lifecycle(rw_runtime: FakeProcess, tmp_path: Path) -> None:
    ep = ["-r", rw_runtime.endpoint]
    state = lambda cid: anyio.run(_state_of, rw_runtime.endpoint, cid, backend="asyncio")  # noqa: E731
    pod_yaml = _write(tmp_path / "pod.yaml", "metadata:\n  name: web\n  namespace: demo\n"
                      "log_directory: /tmp/web\nlabels:\n  app: web\n")
    ctr_json = _write(tmp_path / "ctr.json", json.dumps({
        "metadata": {"name": "nginx"}, "image": {"image": "busybox:1.36"},
        "command": ["sleep", "infinity"], "envs": [{"key": "GREETING", "value": "hello"}],
        "log_path": "nginx.log"}))

    runp = run_cli(*ep, "runp", pod_yaml)
    assert runp.code == 0, runp.stderr
    pod_id = runp.stdout.strip()
    assert run_cli(*ep, "pods", "-q", "--label", "app=web").stdout.split() == [pod_id]

    create = run_cli(*ep, "create", pod_id[:10], ctr_json, pod_yaml)
    assert create.code == 0, create.stderr
    cid = create.stdout.strip()
    assert state(cid) == "CONTAINER_CREATED"
    assert run_cli(*ep, "start", cid[:10]).stdout.strip() == cid
    assert state(cid) == "CONTAINER_RUNNING"
    assert run_cli(*ep, "ps", "-q", "--pod", pod_id).stdout.split() == [cid]

    # exec: output passed through, the command's exit code is the command's.
    env = run_cli(*ep, "exec", cid[:10], "--", "env")
    assert env.code == 0 and "GREETING=hello" in env.stdout
    failing = run_cli(*ep, "exec", cid, "sh", "-c", "echo out; exit 7")
    assert failing.code == 7 and failing.stdout == "out\n"

    assert_one_line_error(run_cli(*ep, "rm", cid), "is running", "--force")
    assert run_cli(*ep, "stop", cid).stdout.strip() == cid
    assert state(cid) == "CONTAINER_EXITED"
    exited = run_cli(*ep, "inspect", cid).json()["status"]
    assert exited["state"] == "CONTAINER_EXITED" and exited["finishedAt"] != rfc3339(None)
    assert run_cli(*ep, "rm", cid).stdout.strip() == cid
    assert cid not in run_cli(*ep, "ps", "-a", "-q").stdout

    assert_one_line_error(run_cli(*ep, "rmp", pod_id), "is ready", "--force")
    assert run_cli(*ep, "stopp", pod_id).stdout.strip() == f"Stopped sandbox {pod_id}"
    assert run_cli(*ep, "rmp", pod_id).stdout.strip() == f"Removed sandbox {pod_id}"
    assert pod_id not in run_cli(*ep, "pods", "-q").stdout

    # A running pod with -f: stopped, then removed.
    other = run_cli(*ep, "pods", "-q").stdout.split()[0]
    assert run_cli(*ep, "rmp", "-f", other[:8]).code == 0
    assert other not in run_cli(*ep, "pods", "-q").stdout

    # Images: pull one the registry has, remove it again; unknown ones fail in one line.
    pull = run_cli(*ep, "pull", "nginx:1.25")
    assert pull.code == 0 and pull.stdout.startswith("Image is up to date for sha256:")
    image_id = pull.stdout.split()[-1]
    assert image_id in run_cli(*ep, "images", "-q").stdout
    assert run_cli(*ep, "rmi", "nginx:1.25").stdout.strip() == \
        "Deleted: docker.io/library/nginx:1.25"
    assert image_id not in run_cli(*ep, "images", "-q").stdout
    assert_one_line_error(run_cli(*ep, "rmi", "nosuch:image"), "no such image")
    # the fake process pulls any reference (--pull any, its default), as a registry would
    pulled = run_cli(*ep, "pull", "example.com/some/tool:3")
    assert pulled.code == 0 and pulled.stdout.startswith("Image is up to date for sha256:")


def test_config_files_errors(ro_runtime: FakeProcess, tmp_path: Path) -> None:
    ep = ["-r", ro_runtime.endpoint]
    assert_one_line_error(run_cli(*ep, "runp", str(tmp_path / "missing.yaml")),
                          "does not exist")
    bad = _write(tmp_path / "bad.yaml", "metadata: [unclosed\n")
    assert_one_line_error(run_cli(*ep, "runp", bad), "not valid JSON/YAML", "fix the file")
    unknown = _write(tmp_path / "unknown.json", '{"metadata": {"name": "a"}, "nosuch": 1}')
    assert_one_line_error(run_cli(*ep, "runp", unknown), "nosuch")
    nameless = _write(tmp_path / "nameless.yaml", "hostname: x\n")
    assert_one_line_error(run_cli(*ep, "runp", nameless), "metadata")


# -- events ------------------------------------------------------------------------------------------


async def _events_until_one(rt: FakeRuntime, subscribed: Callable[[], Awaitable[object]]
                            ) -> tuple[CLIResult, list[dict[str, Any]]]:
    """Run ``events -n 1`` as a process; once ``subscribed()``, stop a container."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "events", "-n", "1",
        "--poll-period", "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        await subscribed()
        rt.state.stop_container(next(c.id for c in rt.state.containers.values() if c.running))
        raw_out, raw_err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = raw_out.decode()
    decoder, events, pos = json.JSONDecoder(), [], 0
    while pos < len(out.strip()):
        obj, end = decoder.raw_decode(out, pos)
        events.append(obj)
        pos = end
        while pos < len(out) and out[pos].isspace():
            pos += 1
    assert proc.returncode is not None
    return CLIResult(proc.returncode, out, raw_err.decode()), events


async def following(rt: FakeRuntime) -> None:
    """Until ``aiocri events`` follows ``rt``'s event stream and has its first relist
    (what exists then is not an event): it started a second relist."""
    await rt.wait_for_event_streams(1, timeout=60)
    await until(lambda: relists(rt, "v1") >= 2, "the command's first relist")


@pytest.mark.anyio
async def test_events_from_the_runtime(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt:
        rt.populate(3, 3)
        result, events = await _events_until_one(rt, lambda: following(rt))
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert len(events) == 1
    event = events[0]
    assert event["containerEventType"] == "CONTAINER_STOPPED_EVENT"
    mine = [s for s in event["containersStatuses"] if s["id"] == event["containerId"]]
    assert mine and mine[0]["state"] == "CONTAINER_EXITED"


@pytest.mark.anyio
async def test_events_fall_back_to_the_poller_on_v1alpha2(sock_dir: Path) -> None:
    async with FakeRuntime(str(sock_dir / "old.sock"), versions=["v1alpha2"]) as rt:
        rt.populate(3, 3)
        # the poller relisted after the pass it synced on: changes are events from then
        result, events = await _events_until_one(
            rt, lambda: until(lambda: relists(rt, "v1alpha2") >= 2, "the poller's sync"))
    assert result.code == 0, result.stderr
    note = result.stderr.strip().splitlines()
    assert len(note) == 1 and "GetContainerEvents is not available" in note[0]
    assert "v1alpha2" in note[0] and "poller" in note[0]
    assert [e["containerEventType"] for e in events] == ["CONTAINER_STOPPED_EVENT"]


def test_fake_runtime_command_serves(fake_dir: Path) -> None:
    fake = _start_fake(str(fake_dir / "old.sock"), "v1alpha2", 3, 3, via_cli=True)
    try:
        assert "PinnedCRIVersion:  v1alpha2" in run_cli("-r", fake.endpoint, "version").stdout
    finally:
        _stop_fake(fake)


# -- errors ------------------------------------------------------------------------------------------


def test_bad_endpoint_is_one_line_without_traceback(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/nothing.sock"
    result = run_cli_process("-r", missing, "ps")  # a real process: what a user sees
    assert_one_line_error(result, "does not exist", missing)
    assert result.stdout == ""

    assert_one_line_error(run_cli("-r", "relative.sock", "version"), "relative")
    plain = tmp_path / "file"
    plain.write_text("")
    assert_one_line_error(run_cli("-r", str(plain), "pods"), "not a socket")

    # Bound but not listening: retried until the timeout, then one line naming -t.
    import socket as socketlib

    dead = tmp_path / "dead.sock"
    sock = socketlib.socket(socketlib.AF_UNIX)
    sock.bind(str(dead))
    try:
        t = time.monotonic()
        result = run_cli("-r", f"unix://{dead}", "-t", "300ms", "images")
        assert time.monotonic() - t < 10
    finally:
        sock.close()
    assert_one_line_error(result, "nothing listens on", "a stale socket file?")

    # --debug adds the detail: the error class, gRPC code, traceback.
    debug = run_cli("-D", "-r", missing, "ps")
    assert debug.code == 1
    assert "EndpointError" in debug.stderr and "Traceback" in debug.stderr


def test_missing_cli_dependencies_say_how_to_install() -> None:
    script = ("import sys\n"
              "for name in ('rich', 'yaml'):\n"
              "    sys.modules[name] = None  # import fails as if not installed\n"
              "from aiocri.cli import main\n"
              "main(['ps'])\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'aiocri[cli]'" in lines[0] and "rich" in lines[0]


def test_missing_one_dependency_in_process(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from aiocri import cli

    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(SystemExit) as exc:
        cli.main(["version"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "rich" in err and "pip install 'aiocri[cli]'" in err


# -- settings ------------------------------------------------------------------------------------------


def test_settings_precedence(tmp_path: Path) -> None:
    config = _write(tmp_path / "crictl.yaml",
                    "runtime-endpoint: unix:///from/config.sock\n"
                    "image-endpoint: unix:///from/config-image.sock\n"
                    "timeout: 7\ndebug: true\n")
    env = {"CRI_CONFIG_FILE": config}

    s = resolve_settings(environ=env)
    assert (s.runtime_endpoint, s.image_endpoint, s.timeout, s.debug) == (
        "unix:///from/config.sock", "unix:///from/config-image.sock", 7.0, True)
    assert s.sources["runtime-endpoint"] == "config"

    env_too = {**env, "CONTAINER_RUNTIME_ENDPOINT": "unix:///from/env.sock",
               "IMAGE_SERVICE_ENDPOINT": "unix:///from/env-image.sock"}
    s = resolve_settings(environ=env_too)
    assert (s.runtime_endpoint, s.image_endpoint) == (
        "unix:///from/env.sock", "unix:///from/env-image.sock")

    s = resolve_settings(runtime_endpoint="unix:///from/flag.sock", timeout="500ms",
                         environ=env_too)
    assert (s.runtime_endpoint, s.image_endpoint, s.timeout) == (
        "unix:///from/flag.sock", "unix:///from/env-image.sock", 0.5)
    assert s.sources == {"runtime-endpoint": "flag", "image-endpoint": "env",
                         "timeout": "flag", "debug": "config"}

    # --config beats CRI_CONFIG_FILE; nothing anywhere: discovery and crictl's 2 s.
    other = _write(tmp_path / "other.yaml", "runtime-endpoint: unix:///from/other.sock\n")
    assert resolve_settings(config=other, environ=env).runtime_endpoint == \
        "unix:///from/other.sock"
    empty = _write(tmp_path / "empty.yaml", "")
    s = resolve_settings(environ={"CRI_CONFIG_FILE": empty})
    assert (s.runtime_endpoint, s.timeout, s.debug) == (None, 2.0, False)


def test_settings_parsing(tmp_path: Path) -> None:
    assert [parse_duration(v) for v in ("2", "2.5", "2s", "500ms", "1m30s", 3, "0")] == [
        2.0, 2.5, 2.0, 0.5, 90.0, 3.0, 2.0]  # 0 or less: the default, as crictl
    for bad in ("abc", "2x", ""):
        with pytest.raises(SettingsError):
            parse_duration(bad)
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_settings(environ={"CRI_CONFIG_FILE": str(tmp_path / "nope.yaml")})
    broken = _write(tmp_path / "broken.yaml", "runtime-endpoint: [\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        resolve_settings(environ={"CRI_CONFIG_FILE": broken})
    listed = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(SettingsError, match="mapping"):
        resolve_settings(environ={"CRI_CONFIG_FILE": listed})


def test_precedence_end_to_end(ro_runtime: FakeProcess, tmp_path: Path) -> None:
    good, bogus = ro_runtime.endpoint, f"unix://{tmp_path}/bogus.sock"
    config = _write(tmp_path / "crictl.yaml", f"runtime-endpoint: {good}\n")
    # config file only: works
    assert run_cli("pods", "-q", env={"CRI_CONFIG_FILE": config}).code == 0
    # env beats the config file
    assert_one_line_error(
        run_cli("pods", env={"CRI_CONFIG_FILE": config, "CONTAINER_RUNTIME_ENDPOINT": bogus}),
        bogus)
    # the flag beats the env
    flagged = run_cli("-r", good, "pods", "-q",
                      env={"CRI_CONFIG_FILE": config, "CONTAINER_RUNTIME_ENDPOINT": bogus})
    assert flagged.code == 0, flagged.stderr
    # The image endpoint comes from the environment too (and is used by image commands).
    assert_one_line_error(
        run_cli("-r", good, "images", env={"IMAGE_SERVICE_ENDPOINT": bogus}), bogus)
    bad_config = _write(tmp_path / "bad.yaml", "timeout: [\n")
    assert_one_line_error(run_cli("pods", env={"CRI_CONFIG_FILE": bad_config}),
                          "not valid YAML")


# -- rendering -----------------------------------------------------------------------------------------


def test_rendering_matches_crictl_helpers() -> None:
    # go-units HumanSizeWithPrecision(size, 3) and HumanDuration, as crictl uses them.
    assert [human_size(s, 3) for s in (320_000, 17_123_456, 191_000_000, 999, 1_230_000_000)] \
        == ["320kB", "17.1MB", "191MB", "999B", "1.23GB"]
    assert [human_duration(s) for s in (0.5, 1, 45, 61, 150, 3600, 7200, 86400 * 3)] == [
        "Less than a second", "1 second", "45 seconds", "About a minute", "2 minutes",
        "About an hour", "2 hours", "3 days"]
    # Go's time.RFC3339Nano: trailing zeros dropped, zero time for "never".
    assert rfc3339(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert rfc3339(None) == "0001-01-01T00:00:00Z"


# -- the read-only commands against a real runtime -------------------------------------


def test_read_only_commands_against_containerd(containerd: Any) -> None:
    """The same JSON comparison as against the fake, on containerd's real answers."""
    from aiocri.testing.containerd import container_config

    async def make_pod() -> str:
        async with aiocri.connect(containerd.endpoint) as client:
            config = containerd.pod_config("cli-read-only")
            # A cgroup parent, or containerd cannot report pod stats (statsp).
            config.linux.cgroup_parent = "/aiocri-cli-test"
            pod_id = (await client.runtime.run_pod_sandbox(
                api.RunPodSandboxRequest(config=config))).pod_sandbox_id
            for name, start in (("app", True), ("sidecar", False)):
                cid = (await client.runtime.create_container(api.CreateContainerRequest(
                    pod_sandbox_id=pod_id, config=container_config(name),
                    sandbox_config=config))).container_id
                if start:
                    await client.runtime.start_container(
                        api.StartContainerRequest(container_id=cid))
            return pod_id

    async def remove_pod(pod_id: str) -> None:
        async with aiocri.connect(containerd.endpoint) as client:
            await client.runtime.stop_pod_sandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            await client.runtime.remove_pod_sandbox(
                api.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    pod_id = anyio.run(make_pod)
    try:
        check_read_only_commands(containerd.endpoint)
    finally:
        anyio.run(remove_pod, pod_id)
        for leftover in Path("/sys/fs/cgroup").glob("*/aiocri-cli-test"):
            leftover.rmdir()  # empty once the pod is gone; containerd leaves the folder
