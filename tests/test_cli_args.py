"""The command's argument layer (issue 22): argparse from the generated table of commands.

The table must say what the signatures say; parsing argv, printing help and refusing a
bad flag load no command module (so neither grpc nor protobuf); the console script
keeps its exit codes and its output whole although it skips the interpreter's teardown;
one-shot commands run without the cyclic garbage collector, lasting ones with it.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiocri._cli import _commands, spec
from aiocri._cli.parse import _argv, _arranged
from aiocri._cli.render import format_table
from tests.cli_process import cli_env
from tests.test_cli import FakeProcess, fake_dir, ro_runtime, run_cli  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("aiocri")


def test_the_table_is_what_the_signatures_say() -> None:
    assert spec.main(["--check"]) == 0, "aiocri/_cli/_commands.py is stale: run make cli"
    assert spec.render_table(spec.build_table()) == spec.TABLE_PATH.read_text()


def test_every_command_is_listed_with_its_help() -> None:
    table = spec.build_table()
    assert set(table["COMMANDS"]) == set(_commands.COMMANDS)
    for name, entry in table["COMMANDS"].items():
        assert entry["summary"], f"{name} has no help"
        assert entry["panel"] in table["PANELS"], name
    assert _commands.ALIASES == {"img": "images", "image": "images"}


_NO_GRPC = """
import io, sys
from aiocri._cli import _commands
from aiocri._cli.parse import main
out = io.StringIO()
codes = {}
for argv in [["--help"], ["--version"], ["ps", "--bogus"], ["-t", "x"],
             *([name, "--help"] for name in _commands.COMMANDS)]:
    sys.stdout, sys.stderr = out, out
    try:
        main(argv)
    except SystemExit as exc:
        codes[" ".join(argv)] = exc.code
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("grpc", "google", "yaml", "rich", "anyio")
               or m.startswith("aiocri._cli.cmd_"))
print(repr(heavy))
print(repr(codes))
"""


def test_help_and_bad_flags_load_no_command_and_no_grpc() -> None:
    done = subprocess.run([sys.executable, "-c", _NO_GRPC], capture_output=True, text=True,
                          env=cli_env(), cwd=ROOT, timeout=60, check=True)
    heavy_line, codes_line = done.stdout.strip().splitlines()[-2:]
    assert heavy_line == "[]", heavy_line
    codes = eval(codes_line)  # a dict literal printed by the child
    assert codes.pop("ps --bogus") == 2
    assert codes.pop("-t x") == 2  # global flags without a command
    assert set(codes.values()) == {0}, codes


@pytest.mark.parametrize(("argv", "params", "interspersed", "expected"), [
    (["-t", "-5s", "ps"], "ROOT", False, ["-t=-5s", "--", "ps"]),
    (["-r", "unix:///x", "exec", "-t", "y"], "ROOT", False,
     ["-r=unix:///x", "--", "exec", "-t", "y"]),
    (["ID", "sh", "-c", "x"], "exec", False, ["--", "ID", "sh", "-c", "x"]),
    (["-it", "ID", "--", "sh"], "exec", False, ["-it", "--", "ID", "--", "sh"]),
    (["--tail", "-5", "ID"], "logs", True, ["--tail=-5", "--", "ID"]),
    (["--", "--tail", "1"], "logs", True, ["--", "--tail", "1"]),
    (["a", "-f", "b"], "rm", True, ["-f", "--", "a", "b"]),
    (["-f", "--", "-af"], "rm", True, ["-f", "--", "-af"]),
    (["-qn", "-1"], "ps", True, ["-qn-1"]),
    (["-a", "-o", "json"], "ps", True, ["-a", "-o=json"]),
])
def test_options_first_then_the_arguments(argv: list[str], params: str, interspersed: bool,
                                          expected: list[str]) -> None:
    """Values may start with a dash; after ``--`` (or a foreign command) all is argument."""
    table = _commands.ROOT if params == "ROOT" else _commands.COMMANDS[params]["params"]
    assert _argv(*_arranged(argv, table, interspersed)) == expected


def test_tables_are_tabwriter_columns() -> None:
    text = format_table(["A", "LONGER"], [["xyz", "1"], ["", "22"]])
    assert text == "A     LONGER\nxyz   1\n      22\n"
    assert format_table(["A", "B"], []) == "A   B\n"


def test_a_command_after_help_and_version_forms() -> None:
    assert run_cli("--version").stdout.strip().startswith("aiocri version ")
    assert "ps " in run_cli().stdout and run_cli().code == 0  # bare: the help
    listed = run_cli("--help").stdout
    for name in _commands.COMMANDS:
        assert f"  {name} " in listed, name
    assert run_cli("img", "--help").stdout.startswith("usage: aiocri images")
    unknown = run_cli("pss")
    assert unknown.code == 2 and "no command 'pss'" in unknown.stderr


def test_one_shot_commands_run_without_the_cycle_collector(ro_runtime: FakeProcess  # noqa: F811
                                                          ) -> None:
    ep = ("-r", ro_runtime.endpoint)
    gc.disable()  # as the console script starts
    try:
        assert run_cli(*ep, "ps", "-q").code == 0
        assert not gc.isenabled()  # one-shot: left off until the process ends
        assert run_cli(*ep, "stats", "-s", "0").code == 0
        assert gc.isenabled()  # lasting: turned back on before it runs
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed")
def test_the_script_keeps_its_output_and_exit_codes(ro_runtime: FakeProcess  # noqa: F811
                                                    ) -> None:
    """The script ends with os._exit (no teardown): what it printed is all there, piped,
    and its exit code is the command's."""
    ep = ["-r", ro_runtime.endpoint]

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                              env=cli_env(), timeout=60, check=False)

    listed = script(*ep, "ps", "-a", "-o", "json")
    expected = run_cli(*ep, "ps", "-a", "-o", "json").stdout
    assert listed.returncode == 0 and len(expected) > 1000
    assert json.loads(listed.stdout) == json.loads(expected)  # all of it (maps in any order)
    missing = script(*ep, "inspect", "f" * 64)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert script(*ep, "ps", "--bogus").returncode == 2
    assert script("--version").returncode == 0
    # a reader that goes away: no traceback, no hang
    with subprocess.Popen([str(SCRIPT), "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=cli_env()) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        assert proc.wait(timeout=60) in (0, 1)
        assert b"Traceback" not in proc.stderr.read()


def test_what_follows_double_dash_is_never_a_flag(ro_runtime: FakeProcess  # noqa: F811
                                                  ) -> None:
    """``rm -- -af`` names a container called -af; it must not remove them all."""
    ep = ("-r", ro_runtime.endpoint)
    before = run_cli(*ep, "ps", "-aq").stdout.split()
    assert before
    refused = run_cli(*ep, "rm", "--", "-af")
    assert refused.code == 1 and "'-af'" in refused.stderr
    assert run_cli(*ep, "ps", "-aq").stdout.split() == before
    extra = run_cli(*ep, "ps", "--", "-a")
    assert extra.code == 2 and "unexpected extra argument '-a'" in extra.stderr


@pytest.mark.parametrize(("argv", "code", "needle"), [
    (("-D",), 2, "missing a command"),
    (("--",), 2, "missing a command"),
    (("-r", "ps"), 2, "missing a command"),
    (("ps", "-qx"), 2, "unknown flag -x"),
    (("ps", "-n", "\uff15"), 2, "takes a whole number"),  # a full-width digit five
])
def test_usage_errors_in_the_commands_words(argv: tuple[str, ...], code: int,
                                           needle: str) -> None:
    argv = tuple(a.encode().decode("unicode_escape") for a in argv)
    result = run_cli(*argv)
    assert result.code == code, result
    assert needle in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_help_shows_defaults_and_plain_usage_lines() -> None:
    assert "[default: 0]" in run_cli("stop", "-h").stdout  # 0: kill at once
    assert run_cli("inspect", "-h").stdout.startswith("usage: aiocri inspect [OPTIONS] "
                                                      "CONTAINER...\n")
    assert run_cli("exec", "-h").stdout.startswith("usage: aiocri exec [OPTIONS] CONTAINER "
                                                   "-- CMD...\n")
    assert "[ID...]" in run_cli("rm", "-h").stdout.splitlines()[0]


@pytest.mark.parametrize("columns", ["1", "2", "30"])
def test_help_on_a_narrow_terminal(columns: str) -> None:
    done = subprocess.run([sys.executable, "-m", "aiocri.cli", "-h"], capture_output=True,
                          text=True, env=cli_env(COLUMNS=columns), timeout=60, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "ps" in done.stdout


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed")
def test_a_closed_stdout_is_not_an_error() -> None:
    done = subprocess.run(f"'{SCRIPT}' -h >&-", shell=True, capture_output=True, text=True,
                          env=cli_env(), timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.anyio
@pytest.mark.parametrize(("args", "sent"), [
    (("version",), {"Version": 1}),
    (("ps", "-a"), {"Version": 1, "ListContainers": 1}),
    (("pods",), {"Version": 1, "ListPodSandbox": 1}),
    (("inspect", "CID"), {"Version": 1, "ContainerStatus": 1}),  # a whole id: no list
    (("ps", "--bogus"), {}),  # refused before connecting
])
async def test_each_command_sends_only_what_it_needs(args: tuple[str, ...],
                                                     sent: dict[str, int]) -> None:
    """The RPCs a command sends, counted by the runtime: one Version (the connect's
    check, also what ``version`` prints), then the command's own call."""
    from collections import Counter

    from aiocri.testing import FakeRuntime
    from tests.cli_process import aiocri

    async with FakeRuntime() as rt:
        made = rt.populate(pods=1, containers_per_pod=2)
        args = tuple(made.container_ids[0] if a == "CID" else a for a in args)
        before = Counter(rt.calls)
        code, _, err = await aiocri(rt.endpoint, *args)
        assert code == (2 if "--bogus" in args else 0), err
        assert dict(Counter(rt.calls) - before) == sent


_BROKEN_INSTALL = """
import sys

class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "aiocri.cli":
            raise ImportError("a half-upgraded install")
        return None

sys.meta_path.insert(0, Broken())
from aiocri._command import main
sys.exit(main())
"""


def test_a_crash_before_the_command_runs_is_not_a_success() -> None:
    """The exit handler that skips the teardown must not turn a crash into exit 0."""
    done = subprocess.run([sys.executable, "-c", _BROKEN_INSTALL], capture_output=True,
                          text=True, env=cli_env(), cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1 and "half-upgraded" in done.stderr
