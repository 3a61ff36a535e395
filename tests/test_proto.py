"""The generated code matches proto/ and covers the whole CRI surface."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiocri._proto.runtime.v1 import api_pb2
from aiocri._rpc import RPCS, snake_case

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh() -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_has_both_services_and_all_43_rpcs() -> None:
    services = api_pb2.DESCRIPTOR.services_by_name
    assert set(services) == {"RuntimeService", "ImageService"}
    assert len(services["RuntimeService"].methods) == 37
    assert len(services["ImageService"].methods) == 6
    assert len(RPCS) == 43
    streaming = {name for name, rpc in RPCS.items() if rpc.server_streaming}
    assert streaming == {
        "StreamPodSandboxes", "StreamContainers", "StreamContainerStats",
        "StreamPodSandboxStats", "StreamPodSandboxMetrics", "StreamImages", "GetContainerEvents",
    }


def test_wire_names_match_the_cri() -> None:
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    status = api_pb2.ContainerStatus.DESCRIPTOR.fields_by_name
    assert (status["exit_code"].number, status["state"].number) == (7, 3)
    assert api_pb2.ContainerState.Value("CONTAINER_EXITED") == 2
    assert RPCS["GetContainerEvents"].request_type is api_pb2.GetEventsRequest


def test_snake_case_names() -> None:
    assert snake_case("ImageFsInfo") == "image_fs_info"
    assert snake_case("UpdatePodSandboxResources") == "update_pod_sandbox_resources"
