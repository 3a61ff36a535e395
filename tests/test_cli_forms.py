"""crictl's forms, as crictl users type them (issue 22): each test runs a form a crictl
user would type, and checks what crictl (or kubectl, where the issue asks for better)
does. Most run the command as a real process against the fake runtime; the table of bad
arguments runs in this process (no runtime is reached: a bad argument is refused first)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from aiocri.testing import FakeRuntime
from tests.cli_process import aiocri, cli_env, run_module

pytest.importorskip("yaml")
yaml = pytest.importorskip("yaml")

from tests.test_cli import run_cli  # noqa: E402


def one_line(result: tuple[int, bytes, bytes], code: int, *needles: str) -> str:
    """Exit ``code``, one line on stderr (no box, no traceback) naming ``needles``."""
    got, _, err = result
    text = err.decode(errors="replace")
    assert got == code, text
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("aiocri: "), text
    for needle in needles:
        assert needle in text, text
    return text


# -- 1. stats ID, statsp ID -------------------------------------------------------------------


@pytest.mark.anyio
async def test_stats_and_statsp_take_the_id_as_an_argument(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    pod = rt.state.containers[cid].pod.id
    other = rt.state.add_container(pod, "other")
    code, out, err = await aiocri(rt.endpoint, "stats", cid[:8], "-o", "json")
    assert code == 0, err
    assert [s["attributes"]["id"] for s in json.loads(out)["stats"]] == [cid]
    code, out, err = await aiocri(rt.endpoint, "stats", other, "-o", "json")
    assert [s["attributes"]["id"] for s in json.loads(out)["stats"]] == [other]
    code, out, err = await aiocri(rt.endpoint, "statsp", pod[:8], "-o", "json")
    assert code == 0, err
    assert [s["attributes"]["id"] for s in json.loads(out)["stats"]] == [pod]


# -- 2. runp -r ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_runp_takes_a_runtime_handler(fake: tuple[FakeRuntime, str], tmp_path: Path
                                            ) -> None:
    rt, _ = fake
    config = tmp_path / "pod.yaml"
    config.write_text("metadata: {name: handled, namespace: default}\n")
    code, out, err = await aiocri(rt.endpoint, "runp", "-r", "runc", str(config))
    assert code == 0, err
    assert rt.state.pods[out.decode().strip()].runtime_handler == "runc"
    code, out, err = await aiocri(rt.endpoint, "runp", "--runtime", "kata", str(config))
    assert code == 1 and b"kata" in err


# -- 3. -o go-template, ps --image, config --list ------------------------------------------


@pytest.mark.anyio
async def test_go_template_on_the_commands_that_print_json(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    pod = rt.state.containers[cid].pod.id

    async def template(*args: str) -> str:
        code, out, err = await aiocri(rt.endpoint, *args)
        assert code == 0, err
        return out.decode()

    assert await template("inspect", cid, "-o", "go-template", "--template",
                          "{{.status.id}} {{.status.metadata.name}}") == f"{cid} app\n"
    assert await template("inspectp", pod[:6], "-o", "go-template", "--template",
                          '{{printf "%s/%s" .status.metadata.namespace '
                          '.status.metadata.name}}') == "default/web\n"
    images = await template("inspecti", "busybox:1.36", "-o", "go-template", "--template",
                            "{{range .status.repoTags}}{{.}};{{end}}")
    assert images == "docker.io/library/busybox:1.36;\n"
    assert await template("info", "-o", "go-template", "--template",
                          "{{range .status.conditions}}{{if .status}}{{.type}} {{end}}{{end}}"
                          ) == "RuntimeReady NetworkReady \n"
    assert await template("ps", "-o", "go-template", "--template",
                          '{{range .containers}}{{.id}}{{"\\n"}}{{end}}') == f"{cid}\n\n"
    labels = await template("pods", "-o", "go-template", "--template",
                            '{{range .items}}{{index .labels "io.kubernetes.pod.name"}}'
                            "{{end}}")
    assert labels == "web\n"
    # a template that reads a field the JSON does not have: crictl's missingkey=error
    code, _, err = await aiocri(rt.endpoint, "inspect", cid, "-o", "go-template",
                                "--template", "{{.status.nosuch}}")
    one_line((code, b"", err), 1, 'no entry for key "nosuch"')


def test_go_template_subset() -> None:
    from aiocri._cli.gotemplate import Template, TemplateError

    data = {"id": "abc", "n": 3, "ok": True, "none": None, "list": ["a", "b"],
            "map": {"b": 2, "a": 1}, "empty": [], "s": "Hello world"}

    def run(text: str) -> str:
        return Template(text).execute(data)

    assert run("{{.id}}-{{.n}}-{{.ok}}") == "abc-3-true"
    assert run("{{range $i, $v := .list}}{{$i}}={{$v}} {{end}}") == "0=a 1=b "
    assert run("{{range $k, $v := .map}}{{$k}}:{{$v}},{{end}}") == "a:1,b:2,"
    assert run("{{range .empty}}x{{else}}none{{end}}") == "none"
    assert run("{{if .none}}yes{{else if .ok}}ok{{else}}no{{end}}") == "ok"
    assert run("{{with .map}}{{.a}}{{end}}") == "1"
    assert run("{{.list}} {{.map}} {{.none}}") == "[a b] map[a:1 b:2] <no value>"
    assert run('{{printf "%-4s|%3d|%q" .id .n .id}}') == 'abc |  3|"abc"'
    assert run('{{.s | upper}} {{lower .s}} {{title "the id"}}') == (
        "HELLO WORLD hello world The Id")
    assert run("{{json .map}}") == '{"a":1,"b":2}\n'
    assert run("{{len .list}} {{index .list 1}} {{index .map \"b\"}}") == "2 b 2"
    assert run("{{if and .ok (eq .n 3) (ne .id \"x\") (not .none)}}y{{end}}") == "y"
    assert run("{{if or .none (gt .n 2)}}y{{end}} {{lt 1 2}}") == "y true"
    assert run("a  {{- .id -}}  b {{/* a comment */}}") == "aabcb "
    assert run('{{$x := .id}}{{$x}}{{$x = "new"}}{{$x}}') == "abcnew"
    for bad, words in (("{{.id", "unclosed action"), ("{{if .ok}}x", "missing {{end}}"),
                       ("{{end}}", "unexpected {{end}}"), ("{{nosuch .id}}", "not defined"),
                       ('{{template "x"}}', "not supported"), ("{{.id 3}}", "argument")):
        with pytest.raises(TemplateError, match=words):
            run(bad)
    with pytest.raises(TemplateError, match='no entry for key "nope"'):
        run("{{.map.nope}}")


@pytest.mark.anyio
async def test_ps_filters_by_image(fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    pod = rt.state.containers[cid].pod.id
    web = rt.state.add_container(pod, "nginx", image="docker.io/library/nginx:1.25")
    code, out, err = await aiocri(rt.endpoint, "ps", "-q", "--image", "nginx:1.25")
    assert (code, out.decode().split()) == (0, [web]), err
    code, out, _ = await aiocri(rt.endpoint, "ps", "-q", "--image",
                                "docker.io/library/busybox:1.36")
    assert out.decode().split() == [cid]
    code, out, _ = await aiocri(rt.endpoint, "ps", "-q", "--image", "alpine:3")
    assert (code, out) == (0, b"")  # an image that is not there: no container uses it


@pytest.mark.anyio
async def test_config_list_shows_every_key(tmp_path: Path) -> None:
    path = tmp_path / "crictl.yaml"
    path.write_text("runtime-endpoint: unix:///run/x.sock\ntimeout: 5\n")
    code, out, err = await run_module("aiocri.cli", "--config", str(path), "config", "--list")
    assert code == 0, err
    rows = [line.split() for line in out.decode().splitlines()]
    assert rows == [["KEY", "VALUE"], ["runtime-endpoint", "unix:///run/x.sock"],
                    ["image-endpoint"], ["timeout", "5"], ["debug", "false"],
                    ["pull-image-on-create", "false"], ["disable-pull-on-run", "false"]]


# -- 4. every bad argument: exit 2, one line -------------------------------------------------

_NOWHERE = "unix:///nonexistent/aiocri-forms.sock"
BAD_ARGUMENTS = [
    (("ps", "--state", "bogus"), ("--state", "created, running, exited or unknown", "bogus")),
    (("pods", "--state", "gone"), ("--state", "ready or notready", "gone")),
    (("-t", "abc", "ps"), ("-t/--timeout", "abc")),
    (("-r", "ftp://x", "ps"), ("-r/--runtime-endpoint", "ftp", "-r unix://")),
    (("-i", "relative.sock", "images"), ("-i/--image-endpoint", "relative.sock")),
    (("ps", "--label", "tier"), ("label", "key=value")),
    (("ps", "--name", "("), ("--name", "regular expression")),
    (("pull", "--creds", ":secret", "busybox"), ("--creds", "user name")),
    (("rm",), ("container ids", "--all")),
    (("logs", "--since", "yesterday", "id"), ("--since", "yesterday")),
    (("events", "--metrics-port", "70000"), ("--metrics-port", "65535")),
    (("ps", "-o", "wide"), ("-o/--output", "table, json, yaml", "wide")),
    (("inspect", "-o", "xml", "x"), ("-o/--output", "go-template", "xml")),
    (("ps", "-n", "abc"), ("-n/--last", "whole number", "abc")),
    (("pods", "--last", "1.5"), ("-n/--last", "whole number", "1.5")),
    (("stats", "-s", "soon"), ("-s/--seconds", "number", "soon")),
    (("stop", "-t", "x", "id"), ("-t/--timeout", "whole number")),
    (("update", "--memory", "lots", "id"), ("--memory", "whole number", "lots")),
    (("pull", "--pull-timeout", "1m", "busybox"), ("--pull-timeout", "number")),
    (("events", "-n", "all"), ("-n/--count", "whole number")),
    (("events", "--poll-period", "0"), ("--poll-period",)),
    (("watch", "--mode", "x"), ("--mode", "auto, relist or events")),
    (("watch", "--period", "0"), ("--period",)),
    (("logs", "--stream", "both", "id"), ("--stream", "stdout or stderr")),
    (("logs", "--tail", "-5", "id"), ("--tail",)),
    (("exec", "-r", "http3", "id", "--", "true"), ("spdy or websocket",)),
    (("port-forward", "pod", "99999"), ("1..65535",)),
    (("completion", "tcsh"), ("bash, zsh or fish", "tcsh")),
    (("config", "--get", "colour"), ("colour", "runtime-endpoint")),
    (("config", "--set", "timeout=soon"), ("timeout", "soon")),
    (("ps", "--bogus"), ("--bogus", "aiocri ps -h")),
    (("inspect",), ("CONTAINER", "aiocri inspect -h")),
    (("stats", "a", "b"), ("unexpected extra argument", "aiocri stats -h")),
    (("inspect", "-o", "go-template", "x"), ("--template",)),
    (("inspect", "--template", "{{.status}}", "x"), ("-o go-template",)),
    (("inspect", "-o", "go-template", "--template", "{{.status", "x"), ("--template",
                                                                         "unclosed")),
    (("fake-runtime", "--socket", "/tmp/aiocri-forms.sock", "--pull", "always"),
     ("--pull", "any or registry", "always")),
    (("fake-runtime", "--socket", "/tmp/aiocri-forms.sock", "--versions", "v9"),
     ("--versions", "v9")),
    (("fake-runtime", "--socket", "/tmp/aiocri-forms.sock", "--pods", "many"),
     ("--pods", "whole number")),
]


@pytest.mark.parametrize(("args", "needles"), BAD_ARGUMENTS,
                         ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_every_bad_argument_exits_2_with_one_line(args: tuple[str, ...],
                                                  needles: tuple[str, ...]) -> None:
    result = run_cli("-r", _NOWHERE, *args)
    text = one_line((result.code, b"", result.stderr.encode()), 2, *needles)
    assert "Value error" not in text and "Input should be" not in text, text


# -- 5. port-forward says what it does --------------------------------------------------------


def _refusing_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_port_forward_reports_connections_and_refusals(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, _ = fake
    pod = next(iter(rt.state.pods))
    remote = _refusing_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "-r", rt.endpoint, "port-forward", pod, f":{remote}",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"Forwarding from 127.0.0.1:"), line
        local = int(line.split(b":")[1].split()[0])
        for _ in range(2):  # a line for each connection, and the pod's refusal of each
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            writer.write(b"hello")
            assert await asyncio.wait_for(reader.read(), 60) == b""  # refused in the pod
            writer.close()
            handling = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert handling == f"Handling connection for {local}\n".encode()
            error = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert error.startswith("aiocri: ") and f"{local} -> {remote}" in error, error
            assert "refused" in error, error
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- 6. exec -it with piped input --------------------------------------------------------------


@pytest.mark.anyio
async def test_exec_and_attach_with_a_tty_refuse_piped_input(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    one_line(await aiocri(rt.endpoint, "exec", "-it", cid, "--", "sh", stdin=b"echo hi\n"),
             2, "not a terminal", "-t")
    one_line(await aiocri(rt.endpoint, "attach", "-it", cid, stdin=b"hi\n"),
             2, "not a terminal", "-t")
    assert rt.calls["Exec"] == 0 and rt.calls["Attach"] == 0
    # -i alone takes the piped input, as before
    assert await aiocri(rt.endpoint, "exec", "-i", cid, "--", "cat", stdin=b"piped\n") == (
        0, b"piped\n", b"")


# -- 7. inspect GOOD BAD ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_inspect_prints_what_it_found_then_the_errors(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    pod = rt.state.containers[cid].pod.id
    code, out, err = await aiocri(rt.endpoint, "inspect", cid, "nosuch")
    assert code == 1
    assert json.loads(out)["status"]["id"] == cid
    one_line((code, b"", err), 1, "'nosuch'")
    code, out, err = await aiocri(rt.endpoint, "inspectp", "bad1", pod, "bad2", "-o", "yaml")
    assert code == 1 and yaml.safe_load(out)["status"]["id"] == pod
    lines = err.decode().splitlines()
    assert len(lines) == 2 and "'bad1'" in lines[0] and "'bad2'" in lines[1], lines
    code, out, err = await aiocri(rt.endpoint, "inspecti", "busybox:1.36", "alpine:0")
    assert code == 1 and "busybox:1.36" in json.loads(out)["status"]["repoTags"][0]
    one_line((code, b"", err), 1, "alpine:0")


# -- 8. create with an image that is not there ----------------------------------------------


@pytest.mark.anyio
async def test_create_with_a_missing_image_says_to_pull_it(
        fake: tuple[FakeRuntime, str], tmp_path: Path) -> None:
    rt, cid = fake
    pod = rt.state.containers[cid].pod.id
    container = tmp_path / "c.json"
    container.write_text(json.dumps({"metadata": {"name": "c"},
                                     "image": {"image": "docker.io/library/alpine:3.20"}}))
    sandbox = tmp_path / "p.json"
    sandbox.write_text(json.dumps({"metadata": {"name": "web", "namespace": "default"}}))
    text = one_line(await aiocri(rt.endpoint, "create", pod, str(container), str(sandbox)),
                    1, "aiocri pull docker.io/library/alpine:3.20", "--with-pull")
    assert "list again" not in text, text
    text = one_line(await aiocri(rt.endpoint, "run", "--no-pull", str(container), str(sandbox)),
                    1, "aiocri pull docker.io/library/alpine:3.20", "--no-pull")
    # a NOT_FOUND with the image there keeps the library's advice
    container.write_text(json.dumps({"metadata": {"name": "d"},
                                     "image": {"image": "docker.io/library/busybox:1.36"}}))
    rt.inject_errors("CreateContainer", grpc.StatusCode.NOT_FOUND, details="pod is gone",
                     count=1)
    text = one_line(await aiocri(rt.endpoint, "create", pod, str(container), str(sandbox)),
                    1, "pod is gone", "list again")
    assert "aiocri pull" not in text, text


# -- 9. fake-runtime -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fake_runtime_says_how_to_point_the_command_at_it(sock_dir: Path) -> None:
    path = sock_dir / "told.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiocri.cli", "fake-runtime", "--socket", str(path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"serving" in first, first
        second = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert f"CONTAINER_RUNTIME_ENDPOINT=unix://{path}" in second, second
        assert f"-r unix://{path}" in second, second
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    code, out, _ = await run_module("aiocri.cli", "fake-runtime", "--help",
                                    env=cli_env(COLUMNS="100"))
    text = out.decode()
    assert code == 0 and "list[str]" not in text and "--image" in text
    # the description is reflowed: no line stops after a word or two
    assert "busybox sh and its applets (sh -c" in " ".join(text.split()), text
    description = [line for line in text.split("options:")[0].splitlines()[3:]
                   if line.strip()]
    assert description and all(len(line.split()) != 1 for line in description), text
