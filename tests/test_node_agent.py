"""The node agent example (``examples/node_agent``).

Its manifest is checked offline against Kubernetes' own schemas and for the security
properties the README promises; the README's alerting rules by promtool. The agent
runs as a program against ``aiocri fake-runtime`` in its own process, scraped by a real
Prometheus (``.ci/system-deps`` installs it), across a restart of the runtime and an
upgrade that drops the CRI version the agent pinned; its exit codes are checked (3
after the linger, 0 on SIGTERM, 1 when it cannot serve its metrics).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import aiocri
from aiocri.testing import FakeRuntimeProcess, wait_for
from tests.cli_process import ROOT, cli_env
from tests.prometheus_fixture import Prometheus, free_port, require_prometheus, run_prometheus

EXAMPLE = ROOT / "examples" / "node_agent"
MANIFEST = EXAMPLE / "daemonset.yaml"
AGENT = EXAMPLE / "agent.py"
#: A recent Kubernetes whose schemas kubernetes_validate ships.
KUBERNETES = "1.33"


# -- the manifest ---------------------------------------------------------------------------


def documents() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)
    return docs


def daemonset(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "DaemonSet"]
    return found


def agent_module() -> ModuleType:
    """agent.py imported as a module (its import has no side effects)."""
    spec = importlib.util.spec_from_file_location("node_agent_example", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_manifest_validates_against_the_kubernetes_schemas(doc: dict[str, Any]) -> None:
    # strict: a misspelt field is an error, not ignored
    assert kubernetes_validate.validate(doc, KUBERNETES, strict=True) == KUBERNETES


def test_the_schema_check_would_catch_a_misspelt_field() -> None:
    broken = copy.deepcopy(daemonset(documents()))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFileSystem"] = True  # the real one ends in "Filesystem"
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_manifest_runs_the_agent_locked_down_on_every_node() -> None:
    docs = documents()
    ds = daemonset(docs)
    pod = ds["spec"]["template"]["spec"]
    assert ds["apiVersion"] == "apps/v1"
    assert ds["spec"]["selector"]["matchLabels"].items() <= \
        ds["spec"]["template"]["metadata"]["labels"].items()
    # the host's namespaces stay the host's; no API credentials
    assert pod["hostNetwork"] is False
    assert not pod.get("hostPID") and not pod.get("hostIPC")
    assert pod["automountServiceAccountToken"] is False
    # every node: a toleration of every taint
    assert {"operator": "Exists"} in pod["tolerations"]
    # its namespace admits a hostPath volume (Pod Security Baseline would refuse the pod)
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == ds["metadata"]["namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # its priority class is defined beside it
    classes = {d["metadata"]["name"] for d in docs if d["kind"] == "PriorityClass"}
    assert pod["priorityClassName"] in classes
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged") is not True
    assert context["capabilities"] == {"drop": ["ALL"]}
    for name in ("cpu", "memory"):
        assert name in container["resources"]["requests"], name
        assert name in container["resources"]["limits"], name
    assert container["image"] == f"ghcr.io/aiocri/node-agent:{aiocri.__version__}"


def test_manifest_mounts_the_socket_folder_read_only_at_the_same_path() -> None:
    pod = daemonset(documents())["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    # the folder and nothing else of the host: containerd makes a new socket file on
    # each start, which a mount of the file itself would not see
    assert list(host_paths.values()) == [{"path": "/run/containerd", "type": "Directory"}]
    (name,) = host_paths
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == name]
    assert mount == {"name": name, "mountPath": "/run/containerd", "readOnly": True}
    # the agent's own flags agree with the mount and the port
    options = agent_module().parse_args(container["args"])
    assert options.endpoint.startswith("unix:///run/containerd/")
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": options.metrics_port, "protocol": "TCP"}
    assert options.metrics_host == "0.0.0.0"  # scraped on the pod's IP


def test_manifest_probes_and_scrape_annotations_point_at_the_metrics() -> None:
    template = daemonset(documents())["spec"]["template"]
    (container,) = template["spec"]["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_containerfile_installs_the_version_the_manifest_runs() -> None:
    text = (EXAMPLE / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert f"aiocri[prometheus]=={aiocri.__version__}" in text
    assert re.search(r"^COPY agent\.py ", text, re.MULTILINE)


def test_readme_alert_rules_pass_promtool(tmp_path: Path) -> None:
    """The README's alerting rules, checked by Prometheus's own tool (PromQL included)."""
    promtool = require_prometheus().with_name("promtool")
    text = (EXAMPLE / "README.md").read_text()
    (rules,) = [b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
                if b.startswith("groups:")]
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    result = subprocess.run([str(promtool), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout), result.stdout


# -- the agent as a program ------------------------------------------------------------------


class Agent:
    """agent.py in its own process, and what it logged so far."""

    def __init__(self, process: anyio.abc.Process, log: Path, port: int) -> None:
        self.process = process
        self.port = port
        self._log = log

    @property
    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def report(self) -> str:
        return f"agent exit {self.process.returncode}, its log:\n{self.log[-4000:]}"

    async def logged(self, pattern: str, what: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            return re.search(pattern, self.log, re.MULTILINE) is not None

        await wait_for(lambda: seen() or self.process.returncode is not None,
                       timeout=timeout, what=what)
        assert seen(), f"{what}: {self.report()}"

    async def exit_code(self, timeout: float = 20.0) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """One scrape of /metrics, by itself: (sample name, labels) -> value; {} while
        nothing answers."""
        def get() -> str:
            url = f"http://127.0.0.1:{self.port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return str(answer.read().decode())
            except OSError:
                return ""

        text = await anyio.to_thread.run_sync(get)
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


@contextlib.asynccontextmanager
async def run_agent(folder: Path, endpoint: str, port: int, *args: str
                    ) -> AsyncIterator[Agent]:
    """``python agent.py`` against ``endpoint``, serving on 127.0.0.1:``port``; killed
    on the way out if still running."""
    log = folder / f"agent-{port}.log"
    with log.open("wb") as out:
        process = await anyio.open_process(
            [sys.executable, str(AGENT), "--endpoint", endpoint, "--metrics-host", "127.0.0.1",
             "--metrics-port", str(port), *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=cli_env(PYTHONUNBUFFERED="1", GRPC_VERBOSITY="ERROR"))
    try:
        yield Agent(process, log, port)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def first_value(prom: Prometheus, promql: str) -> float:
    (sample,) = await prom.wait_for_query(promql, lambda s: len(s) == 1)
    return sample.value


@pytest.mark.anyio
@pytest.mark.timeout(90)  # about 10 s here, 5 of them Prometheus applying its targets
async def test_prometheus_scrapes_the_agent_across_a_restart_and_an_upgrade(
    sock_dir: Path, tmp_path: Path,
) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    # Prometheus first: it takes seconds to apply its targets, time the rest overlaps
    async with run_prometheus(tmp_path / "prometheus", [target]) as prom, \
            FakeRuntimeProcess(sock_dir / "rt.sock", versions=["v1alpha2"], pods=2,
                               containers_per_pod=1) as rt, \
            run_agent(tmp_path, rt.endpoint, port, "--period", "0.2", "--linger", "60"
                      ) as agent:
        ep = f'endpoint="{rt.endpoint}"'
        await agent.logged(r"pinned CRI v1alpha2 on aiocri-fake", "the agent's connect")
        await prom.wait_for_query(f'up{{instance="{target}"}} == 1', timeout=20,
                                  what="Prometheus scraping the agent")
        await prom.wait_for_query(
            f'aiocri_connection_info{{{ep},version="v1alpha2",runtime_name="aiocri-fake"}} == 1',
            what="the pinned version, as scraped")
        await prom.wait_for_query(
            'node_agent_lifecycle_events_total{kind="container_started"} == 2',
            what="the replay of the two running containers")

        # (a) the runtime restarts with the same versions: the agent redials and stays
        await rt.restart()
        await prom.wait_for_query(f"aiocri_connection_redials_total{{{ep}}} >= 1",
                                  what="the redial, as scraped")
        relists = f"aiocri_pleg_relist_duration_seconds_count{{{ep}}}"
        done = await first_value(prom, relists)
        await prom.wait_for_query(f"{relists} > {done + 2}", what="relists after the redial")
        # the same containers on the restarted runtime are not new to the agent
        assert await first_value(
            prom, 'node_agent_lifecycle_events_total{kind="container_started"}') == 2
        assert await first_value(prom, f"aiocri_restart_required{{{ep}}}") == 0
        assert agent.process.returncode is None, agent.report()

        # (b) the upgraded runtime serves v1 only: the pinned v1alpha2 is gone
        await rt.restart(versions=["v1"])
        await prom.wait_for_query(f"aiocri_restart_required{{{ep}}} == 1",
                                  what="aiocri_restart_required 1, as scraped")
        await agent.logged(r"the runtime dropped our CRI version .*v1alpha2",
                           "the agent saying why it will exit")
        await prom.wait_for_query(
            f'aiocri_connection_state{{{ep},state="restart_required"}} == 1')
        await prom.wait_for_query(
            f'aiocri_runtime_operations_total{{{ep},operation_type="list_containers"}} > 0')
        await prom.wait_for_query(f"aiocri_pleg_relist_duration_seconds_count{{{ep}}} > 0")
        assert agent.process.returncode is None, "exited before its linger: " + agent.report()

        # the kubelet stopping the pod while it lingers: a clean stop
        agent.process.send_signal(signal.SIGTERM)
        code = await agent.exit_code()
    assert code == 0, agent.report()
    assert "Traceback" not in agent.log, agent.report()


@pytest.mark.anyio
async def test_agent_exits_3_after_its_linger_when_the_runtime_drops_its_version(
    sock_dir: Path, tmp_path: Path,
) -> None:
    linger = 2.0
    async with FakeRuntimeProcess(sock_dir / "rt.sock", versions=["v1alpha2"]) as rt, \
            run_agent(tmp_path, rt.endpoint, free_port(), "--period", "0.2",
                      "--linger", str(linger)) as agent:
        await agent.logged(r"pinned CRI v1alpha2", "the agent's connect")
        await rt.restart(versions=["v1"])
        await agent.logged(r"the runtime dropped our CRI version", "the restart notice")
        # while it lingers it still serves, and says why
        restart_required = 0.0

        async def scraped_restart() -> bool:
            nonlocal restart_required
            restart_required = value(await agent.metrics(), "aiocri_restart_required",
                                     endpoint=rt.endpoint) or 0.0
            return restart_required == 1 or agent.process.returncode is not None

        await wait_for(scraped_restart, timeout=10, interval=0.05,
                       what="aiocri_restart_required 1 on /metrics")
        assert restart_required == 1, "gone before a scrape saw it: " + agent.report()
        code = await agent.exit_code(timeout=linger + 10)
    assert code == 3, agent.report()
    assert "Traceback" not in agent.log, agent.report()


@pytest.mark.anyio
async def test_agent_ends_cleanly_on_sigterm(sock_dir: Path, tmp_path: Path) -> None:
    async with FakeRuntimeProcess(sock_dir / "rt.sock", pods=1, containers_per_pod=0) as rt, \
            run_agent(tmp_path, rt.endpoint, free_port(), "--period", "0.2") as agent:

        async def counted_the_pod() -> bool:
            scraped = await agent.metrics()
            return value(scraped, "node_agent_lifecycle_events_total", kind="pod_ready") == 1

        await wait_for(counted_the_pod, timeout=20, what="the pod counted on /metrics")
        agent.process.send_signal(signal.SIGTERM)
        code = await agent.exit_code(timeout=10)
    assert code == 0, agent.report()
    assert re.search(r"SIGTERM: stopping", agent.log), agent.report()
    assert "Traceback" not in agent.log, agent.report()


@pytest.mark.anyio
async def test_agent_exits_1_when_its_metrics_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # the runtime is never reached: the metrics server starts first
        async with run_agent(tmp_path, "unix:///nonexistent/cri.sock", port) as agent:
            code = await agent.exit_code()
    assert code == 1, agent.report()
    assert f"127.0.0.1:{port}" in agent.log, agent.report()
    assert "Traceback" not in agent.log, agent.report()
