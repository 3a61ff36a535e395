"""The command at its edges (issue 19): bad settings print one line, -t takes any
deadline from a few milliseconds to inf, the fake runtime refuses a socket path it
cannot bind. Every case runs the command as a real process."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from aiocri._cli.settings import LONGEST_DEADLINE, SettingsError, parse_duration, resolve_settings
from aiocri.testing import FakeRuntime
from tests.cli_process import aiocri, cli_env, run_module

pytest.importorskip("yaml")
pytestmark = pytest.mark.anyio


def one_line(result: tuple[int, bytes, bytes], code: int, *needles: str) -> None:
    """Exit ``code``, nothing on stdout, one line on stderr naming ``needles``."""
    got, out, err = result
    text = err.decode(errors="replace")
    assert (got, out) == (code, b""), text
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert text.startswith("aiocri: "), text
    for needle in needles:
        assert needle in text, text


async def test_item_8_bad_config_files_and_socket_paths_are_one_line(tmp_path: Path) -> None:
    nowhere = f"unix://{tmp_path}/nothing.sock"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"# r\xe9glages\nruntime-endpoint: unix:///run/x.sock\n")
    listed = tmp_path / "listed.yaml"
    listed.write_text("timeout: [1, 2]\n")
    mapped = tmp_path / "mapped.yaml"
    mapped.write_text("timeout: {seconds: 2}\n")

    async def with_config(path: Path, *args: str) -> tuple[int, bytes, bytes]:
        return await run_module("aiocri.cli", "-r", nowhere, *args,
                                env=cli_env(CRI_CONFIG_FILE=str(path)))

    one_line(await with_config(latin1, "version"), 1, str(latin1), "not UTF-8", "--config")
    one_line(await with_config(latin1, "config", "--list"), 1, str(latin1), "not UTF-8")
    one_line(await with_config(listed, "version"), 1, str(listed), "[1, 2]", "2s")
    one_line(await with_config(mapped, "ps"), 1, str(mapped), "'seconds'", "2s")
    # a pod config for runp that is not UTF-8: refused before any connection
    one_line(await aiocri(nowhere, "runp", str(latin1)), 1, str(latin1), "not UTF-8")

    missing = tmp_path / "no" / "such" / "folder" / "rt.sock"
    one_line(await run_module("aiocri.cli", "fake-runtime", "--socket", str(missing)), 2,
             f"{tmp_path}/no/such/folder does not exist", "create it")
    too_long = "/tmp/" + "x" * 120 + ".sock"
    one_line(await run_module("aiocri.cli", "fake-runtime", "--socket", too_long), 2,
             "107 bytes", "shorter")
    taken = tmp_path / "a-folder"
    taken.mkdir()
    one_line(await run_module("aiocri.cli", "fake-runtime", "--socket", str(taken)), 2,
             "not a socket", "another path")
    assert taken.is_dir()


async def test_item_4_timeout_flag_is_checked_and_huge_deadlines_answer(
        fake: tuple[FakeRuntime, str]) -> None:
    rt, cid = fake
    for bad in ("-1", "-5s", "nan", "abc", "2x"):
        one_line(await aiocri(rt.endpoint, "-t", bad, "version"), 2,
                 f"bad -t/--timeout {bad!r}", "2s")
    assert rt.calls["Version"] == 0  # refused before connecting
    # deadlines beyond what grpc can hold are no deadline (grpc overflows past ~5e9 s)
    for huge in ("1e10", "inf"):
        code, out, err = await aiocri(rt.endpoint, "-t", huge, "version")
        assert (code, err) == (0, b"") and b"RuntimeName:  aiocri-fake" in out, (huge, err)
        code, out, err = await aiocri(rt.endpoint, "-t", huge, "exec", cid, "--", "echo", "hi")
        assert (code, out, err) == (0, b"hi\n", b""), huge
    assert (await aiocri(rt.endpoint, "-t", "0", "version"))[0] == 0  # crictl: the default


def test_item_4_the_connect_attempt_stays_bounded_whatever_t_says() -> None:
    """-t is how long the command waits for the runtime; one attempt's version check is
    never longer than the dialer's longest (a check that hangs is tried again)."""
    from aiocri._cli.runner import redial_policy
    from aiocri._dialer import SLOW_CHECK_CAP

    for huge in (1e10, math.inf):
        policy = redial_policy(huge)
        assert policy.attempt_timeout == SLOW_CHECK_CAP
        assert policy.connect_timeout == LONGEST_DEADLINE
    policy = redial_policy(5.0)
    assert (policy.attempt_timeout, policy.connect_timeout) == (5.0, 5.0)


def test_durations_and_deadlines() -> None:
    assert [parse_duration(v) for v in ("inf", "1e10", "1m30s", 0, 2.5)] == [
        math.inf, 1e10, 90.0, 2.0, 2.5]
    for bad in ("-1", "-5s", "nan", "", [1], {"a": 1}, True, None):
        with pytest.raises(SettingsError, match="bad timeout"):
            parse_duration(bad)
    # what the command gives grpc: no deadline beyond what it can hold
    env = {"CRI_CONFIG_FILE": os.devnull}
    assert resolve_settings(timeout="inf", environ=env).deadline() is None
    assert resolve_settings(timeout="1e10", environ=env).deadline() is None
    assert resolve_settings(timeout="2", environ=env).deadline(5) == 7.0
