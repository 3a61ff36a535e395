"""The rest of crictl's commands, as real processes against the fake runtime (and the
read-only ones against containerd)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aiocri.testing import FakeRuntime
from aiocri.testing.containerd import Containerd
from tests.cli_process import aiocri, cli_env, run_module

pytest.importorskip("yaml")
pytestmark = pytest.mark.anyio


async def test_version_aliases_and_python_m(fake: tuple[FakeRuntime, str]) -> None:
    rt, _ = fake
    code, out, _ = await aiocri(rt.endpoint, "version")
    assert code == 0 and b"RuntimeName:  aiocri-fake" in out
    assert b"ClientName:  aiocri" in out and b"ClientVersion:  0.1.0" in out
    data = json.loads((await aiocri(rt.endpoint, "version", "-o", "json"))[1])
    assert data["clientVersion"] == "0.1.0" and data["runtimeApiVersion"] == "v1"
    images = (await aiocri(rt.endpoint, "images", "-q"))[1]
    assert images and (await aiocri(rt.endpoint, "img", "-q"))[1] == images
    assert (await aiocri(rt.endpoint, "image", "-q"))[1] == images
    assert (await run_module("aiocri", "-r", rt.endpoint, "img", "-q"))[1] == images


async def test_changes(fake: tuple[FakeRuntime, str], tmp_path: Path) -> None:
    rt, cid = fake
    assert await aiocri(rt.endpoint, "stop", "-t", "1", cid[:8]) == (0, cid.encode() + b"\n",
                                                                     b"")
    # run: pull, pod, container, start
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump({"metadata": {"name": "p2", "namespace": "ns"}}))
    ctr = tmp_path / "ctr.json"
    ctr.write_text(json.dumps({"metadata": {"name": "c2"},
                               "image": {"image": "example.com/new/tool:1"}}))
    rt.state.pull_policy = "any"
    imageless = tmp_path / "imageless.json"
    imageless.write_text(json.dumps({"metadata": {"name": "c3"}}))
    code, _, err = await aiocri(rt.endpoint, "run", str(imageless), str(pod))
    assert code == 1 and b"needs image.image" in err and rt.calls["RunPodSandbox"] == 0
    code, out, err = await aiocri(rt.endpoint, "run", str(ctr), str(pod))
    assert code == 0, err
    new = out.decode().strip()
    assert rt.state.containers[new].running
    assert any("example.com/new/tool:1" in i.repo_tags for i in rt.state.images.values())
    code, out, _ = await aiocri(rt.endpoint, "update", "--memory", "268435456",
                                "--cpu-share", "512", new[:10])
    assert code == 0 and out.decode().strip() == new
    resources = rt.state.containers[new].resources
    assert resources is not None and resources.memory_limit_in_bytes == 268435456
    code, out, err = await aiocri(rt.endpoint, "checkpoint", "--export",
                                  str(tmp_path / "c.tar"), new)
    assert code == 0, err
    assert await aiocri(rt.endpoint, "update-runtime-config", "--pod-cidr",
                        "10.88.0.0/16") == (0, b"Runtime config updated\n", b"")
    assert rt.state.pod_cidr == "10.88.0.0/16"
    # rmi: the unused images only (a pinned one stays, as crictl keeps it), then all
    used = {c.image.id for c in rt.state.containers.values()}
    pinned = {i.id for i in rt.state.images.values() if i.pinned}
    assert pinned and not pinned & used
    code, out, err = await aiocri(rt.endpoint, "rmi", "--prune")
    assert code == 0, err
    assert {i.id for i in rt.state.images.values()} == used | pinned
    for c in list(rt.state.containers):
        rt.state.remove_container(c)
    assert (await aiocri(rt.endpoint, "rmi", "-a"))[0] == 0
    assert not rt.state.images
    code, _, err = await aiocri(rt.endpoint, "rmi")
    assert code == 2 and b"--all" in err


async def test_read_only_commands(fake: tuple[FakeRuntime, str]) -> None:
    rt, _ = fake
    code, out, _ = await aiocri(rt.endpoint, "runtime-config")
    assert code == 0 and "linux" in json.loads(out)
    code, out, _ = await aiocri(rt.endpoint, "metricdescs")
    assert code == 0 and "descriptors" in json.loads(out)
    code, out, _ = await aiocri(rt.endpoint, "metricsp", "-o", "yaml")
    assert code == 0 and "podMetrics" in yaml.safe_load(out)


async def test_config_and_completion(tmp_path: Path, fake: tuple[FakeRuntime, str]) -> None:
    rt, _ = fake
    path = tmp_path / "crictl.yaml"
    env = cli_env(CRI_CONFIG_FILE=str(path))

    async def cli(*args: str) -> tuple[int, str, str]:
        code, out, err = await run_module("aiocri.cli", *args, env=env)
        return code, out.decode(), err.decode()

    assert (await cli("config", "--set", f"runtime-endpoint={rt.endpoint}", "--set",
                      "timeout=5", "--set", "debug=false"))[0] == 0
    assert yaml.safe_load(path.read_text()) == {"runtime-endpoint": rt.endpoint,
                                                "timeout": 5, "debug": False}
    assert (await cli("config", "--get", "timeout"))[1] == "5\n"
    assert [line.split() for line in (await cli("config", "--list"))[1].splitlines()] == [
        ["KEY", "VALUE"], ["runtime-endpoint", rt.endpoint], ["image-endpoint"],
        ["timeout", "5"], ["debug", "false"], ["pull-image-on-create", "false"],
        ["disable-pull-on-run", "false"]]  # crictl's table: every setting, set or not
    assert (await cli("ps", "-q"))[0] == 0  # the endpoint now comes from the file
    code, _, err = await cli("config", "--set", "colour=red")
    assert code == 2 and "KEY one of" in err  # a bad argument: a usage error
    code, _, err = await cli("config", "--get", "timeout", "--set", "timeout=9")
    assert code == 2 and "separate commands" in err
    assert yaml.safe_load(path.read_text())["timeout"] == 5  # untouched
    assert not list(tmp_path.glob(".crictl-*"))  # no temporary left behind
    for shell in ("bash", "zsh"):
        script = (await cli("completion", shell))[1]
        assert "complete -F _aiocri aiocri" in script and "port-forward" in script
        body = script if shell == "bash" else script.split("\n", 1)[1]
        checked = await asyncio.create_subprocess_exec(
            "bash", "-n", stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        _, problems = await checked.communicate(body.encode())
        assert checked.returncode == 0, problems
    fish = (await cli("completion", "fish"))[1]
    assert "complete -c aiocri -n '__fish_seen_subcommand_from logs' -l follow" in fish
    code, _, err = (await run_module("aiocri.cli", "ps", env=cli_env(
        CONTAINER_RUNTIME_ENDPOINT="unix://")))
    assert code == 1 and b"(from CONTAINER_RUNTIME_ENDPOINT)" in err


def test_read_only_commands_against_containerd(containerd: Containerd) -> None:
    env = cli_env()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiocri.cli", "-r", containerd.endpoint,
                               *args], capture_output=True, text=True, env=env, timeout=60,
                              check=False)

    version = cli("version")
    assert version.returncode == 0 and "RuntimeName:  containerd" in version.stdout
    assert "ClientVersion:  0.1.0" in version.stdout
    images = cli("img", "-q")
    assert images.returncode == 0 and images.stdout.strip()
    assert cli("image", "-q").stdout == images.stdout
    # RuntimeConfig and the metrics RPCs came after containerd 1.6: one clear line each
    for command in (["runtime-config"], ["metricdescs"], ["metricsp"]):
        done = cli(*command)
        if done.returncode != 0:
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "does not implement" in done.stderr or "needs runtime.v1" in done.stderr
        else:
            assert done.stdout.strip().startswith("{")
    for command in (["ps", "-v", "-a"], ["stats", "-a", "--seconds", "0.2"], ["info"]):
        done = cli(*command)
        assert done.returncode == 0, (command, done.stderr)
    assert os.path.exists(containerd.endpoint.removeprefix("unix://"))


async def test_readable_outputs(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    code, out, _ = await aiocri(rt.endpoint, "ps", "-v")
    text = out.decode()
    assert code == 0 and f"ID: {cid}" in text and "State: CONTAINER_RUNNING" in text
    code, out, _ = await aiocri(rt.endpoint, "inspect", "-o", "table", cid)
    text = out.decode()
    assert code == 0 and "Info:" in text and "{'" not in text  # not a Python dict
    assert "\n  info:\n    {" in text or "\n  info: " in text
    def relists() -> int:
        return rt.calls["ListContainers"] + rt.calls["StreamContainers"]

    listed = relists()
    pod = rt.state.containers[cid].pod_sandbox_id
    events = asyncio.ensure_future(aiocri(rt.endpoint, "events", "-o", "table", "-n", "2",
                                          "--poll-period", "0.2"))
    await rt.wait_for_event_streams(1, timeout=60)
    # its first relist is done once it started a second one: changes are events from then
    deadline = time.monotonic() + 60
    while relists() < listed + 2:
        assert time.monotonic() < deadline, "the command did not relist"
        await asyncio.sleep(0.02)
    rt.state.stop_container(cid)
    rt.state.remove_container(cid)
    code, out, _ = await events
    lines = out.decode().splitlines()
    assert code == 0 and lines[0].split() == ["TIME", "CONTAINER", "EVENT", "POD", "NAME"]
    assert lines[1].split()[2] == "STOPPED_EVENT" and lines[2].split()[2] == "DELETED_EVENT"
    assert cid[:13] in lines[1]
    # both lines name the pod and the container (the removed one by its last status)
    for line in lines[1:]:
        assert line.split()[3:] == [pod[:13], "default/web", "app"], line


async def test_stats_watch_until_interrupted(fake: tuple[FakeRuntime, str]) -> None:
    import signal

    rt, _ = fake
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "stats", "-w", "--seconds",
        "0.2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    # A table takes two samples and is printed before the next one: once the fifth
    # sample is asked for, two tables are out.
    deadline = time.monotonic() + 60
    while rt.calls["ListContainerStats"] < 5 and proc.returncode is None:
        assert time.monotonic() < deadline, "stats -w printed fewer than two tables"
        await asyncio.sleep(0.02)
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert out.decode().count("CONTAINER") >= 2  # printed again and again


async def test_flags_show_no_type() -> None:
    code, out, _ = await run_module("aiocri.cli", "ps", "--help", env=cli_env(COLUMNS="120"))
    assert code == 0 and b"--all" in out and b"<bool>" not in out


def test_hints_speak_in_flags() -> None:
    import aiocri
    from aiocri._cli.runner import cli_line

    lost = cli_line(aiocri.ConnectFailed("could not reach a CRI runtime within 2 s"))
    assert "-r/--runtime-endpoint" in lost and "connect(" not in lost
    foreign = cli_line(aiocri.NotACRIRuntime("not a CRI runtime"))
    assert aiocri.NotACRIRuntime.hint in foreign  # its own diagnosis, kept
    slow = cli_line(aiocri.DeadlineExceeded("took too long"))
    assert "-t/--timeout" in slow and "timeout=" not in slow
    assert "aiocri.connect" not in cli_line(aiocri.ClientClosed("the client is closed"))


async def test_the_command_never_sends_an_empty_reference(fake: tuple[FakeRuntime, str]
                                                          ) -> None:
    rt, _ = fake
    images = len(rt.state.images)
    before = rt.calls["RemoveImage"] + rt.calls["ImageStatus"]
    code, _, err = await aiocri(rt.endpoint, "rmi", " ")
    assert code == 1 and b"nothing was sent" in err and err.count(b"\n") == 1
    assert rt.calls["RemoveImage"] + rt.calls["ImageStatus"] == before
    assert len(rt.state.images) == images
