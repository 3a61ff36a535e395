"""aiocri.to_dict / to_json / from_dict: crictl's JSON, and back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiocri
from aiocri import api


def container_config(name: str, env: dict[str, str], labels: dict[str, str],
                     cmd: list[str]) -> api.ContainerConfig:
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=1),
        image=api.ImageSpec(image="busybox:1.36"),
        command=cmd,
        envs=[api.KeyValue(key=k, value=v.encode()) for k, v in env.items()],
        labels=labels,
    )


def test_crictl_field_names_and_values() -> None:
    status = api.ContainerStatus(id="abc", state=api.CONTAINER_RUNNING, created_at=10**18,
                                 log_path="/var/log/x.log")
    data = aiocri.to_dict(status)
    assert data["id"] == "abc" and data["state"] == "CONTAINER_RUNNING"
    assert data["createdAt"] == str(10**18) and data["logPath"] == "/var/log/x.log"
    assert data["exitCode"] == 0  # every field shown, as crictl does
    assert json.loads(aiocri.to_json(status)) == data
    config = container_config("web", {"GREETING": "hello"}, {}, ["sh"])
    assert aiocri.to_dict(config)["envs"] == [{"key": "GREETING", "value": "hello"}]


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@given(text.filter(bool), st.dictionaries(text.filter(bool), text, max_size=3),
       st.dictionaries(text, text, max_size=3), st.lists(text, max_size=3))
def test_round_trip(name: str, env: dict[str, str], labels: dict[str, str],
                    cmd: list[str]) -> None:
    config = container_config(name, env, labels, cmd)
    data = aiocri.to_dict(config)
    assert aiocri.from_dict(data, api.ContainerConfig) == config
    assert aiocri.from_dict(json.loads(aiocri.to_json(config)), api.ContainerConfig) == config
    assert aiocri.to_dict(config) == data  # from_dict left its input alone


def test_snake_case_keys_and_errors() -> None:
    request = aiocri.from_dict({"container_id": "x", "verbose": True},
                               api.ContainerStatusRequest)
    assert request == api.ContainerStatusRequest(container_id="x", verbose=True)
    with pytest.raises(ValueError, match="not a valid ContainerStatusRequest.*colour"):
        aiocri.from_dict({"colour": "red"}, api.ContainerStatusRequest)
    with pytest.raises(ValueError, match="mapping of fields"):
        aiocri.from_dict(["x"], api.ContainerStatusRequest)
