"""The API reference builds strictly from the docstrings (as `make docs` in CI), and
documents every public name under a public path.

Public names are ``aiocri.__all__`` and the ``__all__`` of each public module (below);
``aiocri.api`` has no ``__all__``: its public names are the messages and enums of the
CRI schema, listed in a table generated at build time (``docs/hooks.py``). A name is
documented when the site's objects inventory (``objects.inv``, written by mkdocstrings)
has it, and the heading it points to is a public path (``aiocri.errors.NotFound``, not
``aiocri._proto...``). mkdocstrings leaves out an object without a docstring while the
strict build passes: these tests are what fails then.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiocri
from aiocri import api
from aiocri.testing import FakeRuntime

ROOT = Path(__file__).resolve().parent.parent

#: The modules whose ``__all__`` is public API, each with a page headed by its name.
PUBLIC_MODULES = (
    "aiocri",
    "aiocri.api",
    "aiocri.channel",
    "aiocri.client",
    "aiocri.convert",
    "aiocri.endpoint",
    "aiocri.errors",
    "aiocri.instrument",
    "aiocri.logs",
    "aiocri.metrics",
    "aiocri.poller",
    "aiocri.services",
    "aiocri.streaming",
    "aiocri.testing",
    "aiocri.testing.pytest_plugin",
    "aiocri.tracing",
    "aiocri.versions",
)

#: Modules without a leading underscore that are not library API, and why.
NOT_LIBRARY_API = {
    "aiocri.cli": "the console script's entry point: its interface is the `aiocri` "
                  "command line, described in the README and by --help",
    "aiocri.demo": "the `aiocri demo` command's script",
    "aiocri.testing.fake_runtime": "the implementation of names aiocri.testing re-exports",
    "aiocri.testing.containerd": "aiocri's own harness for its containerd tests (needs "
                                 "Debian's containerd and busybox-static)",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module's tests (``make docs`` builds it and passes
    its folder in AIOCRI_SITE_DIR: the completeness checks are part of the docs build)."""
    pytest.importorskip("mkdocstrings")
    built = os.environ.get("AIOCRI_SITE_DIR")
    if built:
        if not (Path(built) / "objects.inv").exists():
            pytest.fail(f"AIOCRI_SITE_DIR={built} holds no built site (no objects.inv)")
        return Path(built).resolve()
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{done.stderr[-3000:]}")
    return out


def _inventory(site: Path) -> dict[str, tuple[int, str]]:
    """name -> (priority, the heading's id) from the objects inventory."""
    from mkdocstrings import Inventory

    with (site / "objects.inv").open("rb") as file:
        inventory = Inventory.parse_sphinx(file)
    entries = {}
    for item in inventory.values():
        anchor = item.uri.partition("#")[2]
        entries[item.name] = (item.priority, item.name if anchor == "$" else anchor)
    return entries


def _private(path: str) -> bool:
    return any(part.startswith("_") for part in path.split("."))


def api_names() -> set[str]:
    """The public names of aiocri.api: the schema's messages, enums and enum values."""
    from aiocri import api

    names = set(api.DESCRIPTOR.message_types_by_name) | set(api.DESCRIPTOR.enum_types_by_name)
    for enum in api.DESCRIPTOR.enum_types_by_name.values():
        names.update(enum.values_by_name)
    return names


def test_reference_builds_strictly(site: Path) -> None:
    page = (site / "api" / "services" / "index.html").read_text()
    assert "container_status" in page and "Call RuntimeService.ContainerStatus" in page
    assert "exec_stream" in (site / "api" / "client" / "index.html").read_text()


def test_every_module_is_classified() -> None:
    """A new module without a leading underscore is either public API (and so checked
    below) or listed with its reason in NOT_LIBRARY_API."""
    found = {"aiocri"}
    for info in pkgutil.walk_packages(aiocri.__path__, "aiocri."):
        if not _private(info.name) and not info.name.endswith("__main__"):
            found.add(info.name)
    unclassified = found - set(PUBLIC_MODULES) - set(NOT_LIBRARY_API)
    assert not unclassified, f"public or not? add to PUBLIC_MODULES or NOT_LIBRARY_API: {unclassified}"
    assert not (set(PUBLIC_MODULES) | set(NOT_LIBRARY_API)) - found, "listed but gone"


def test_aiocri_api_holds_the_schema_and_nothing_else() -> None:
    from aiocri import api

    # (pytest rewrites the modules of a plugin's package, adding "@py_builtins"...)
    exposed = {name for name in dir(api)
               if name.isidentifier() and not name.startswith("_")} - {"DESCRIPTOR"}
    assert exposed == api_names()


def _undocumented(inventory: dict[str, tuple[int, str]]) -> list[str]:
    problems = []
    for module_name in PUBLIC_MODULES:
        if module_name == "aiocri.api":
            continue
        module = importlib.import_module(module_name)
        if module_name != "aiocri" and module_name not in inventory:
            problems.append(f"{module_name}: the module has no page of its own")
        for name in module.__all__:
            path = f"{module_name}.{name}"
            entry = inventory.get(path)
            if entry is None:
                problems.append(f"{path}: not in the reference")
            elif _private(entry[1]):
                problems.append(f"{path}: documented under the private path {entry[1]}")
    return problems


def test_every_public_name_is_documented_under_its_public_path(site: Path) -> None:
    problems = _undocumented(_inventory(site))
    assert not problems, "\n".join(problems)


def test_no_heading_is_a_private_path(site: Path) -> None:
    headings = [name for name, (priority, _) in _inventory(site).items() if priority == 1]
    assert headings
    private = sorted(name for name in headings if _private(name))
    assert not private, private


def test_every_rpc_method_is_documented_on_its_public_service(site: Path) -> None:
    from aiocri._rpc import snake_case
    from aiocri.services import ImageService, RuntimeService

    inventory = _inventory(site)
    missing = []
    for service in (RuntimeService, ImageService):
        for rpc in service._rpcs:
            path = f"aiocri.services.{service.__name__}.{snake_case(rpc)}"
            if path not in inventory or _private(inventory[path][1]):
                missing.append(path)
    assert not missing, missing


def test_every_api_name_has_an_anchor_on_the_aiocri_api_page(site: Path) -> None:
    page = site / "api" / "api" / "index.html"
    assert page.exists(), "no page for aiocri.api"
    ids = set(re.findall(r'id="aiocri\.api\.([A-Za-z0-9_]+)"', page.read_text()))
    assert api_names() - ids == set()


def test_the_errors_page_shows_the_tree_and_hint(site: Path) -> None:
    from aiocri import errors

    text = (site / "api" / "errors" / "index.html").read_text()
    tree = [name for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, errors.CRIError)]
    assert len(tree) >= 20
    assert "<pre><code>CRIError\n├── " in text
    for name in {*tree, *errors.__all__}:
        assert f'id="aiocri.errors.{name}"' in text, name
        if name in tree:  # the tree in the module's docstring names it, on the page
            assert re.search(rf"(<code>|── ){name}\b", text), name
    for attribute in ("hint", "code", "details", "method", "endpoint"):
        assert f"<code>{attribute}</code>" in text, attribute


def test_the_completeness_check_reports_a_missing_name() -> None:
    """The check itself: an inventory without a name, or with it under a private
    path, is reported."""
    whole = {}
    for module_name in PUBLIC_MODULES:
        if module_name == "aiocri.api":
            continue
        whole[module_name] = (1, module_name)
        for name in importlib.import_module(module_name).__all__:
            whole[f"{module_name}.{name}"] = (1, f"{module_name}.{name}")
    assert _undocumented(whole) == []
    del whole["aiocri.errors.NotFound"]
    whole["aiocri.RuntimeService"] = (2, "aiocri._proto.signatures.RuntimeServiceMethods")
    assert _undocumented(whole) == [
        "aiocri.RuntimeService: documented under the private path "
        "aiocri._proto.signatures.RuntimeServiceMethods",
        "aiocri.errors.NotFound: not in the reference",
    ]


def _examples(page: str) -> dict[str, object]:
    """The Python blocks of a page, run in one namespace (they define functions)."""
    text = (ROOT / "docs" / "api" / page).read_text()
    namespace: dict[str, object] = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, page, "exec"), namespace)
    return namespace


@pytest.mark.anyio
async def test_the_services_examples_run(runtime: FakeRuntime,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    examples = _examples("services.md")
    async with aiocri.connect(runtime.endpoint) as client:
        cid = await examples["run_sleeper"](client)  # type: ignore[operator]
        assert runtime.state.containers[cid].state == api.CONTAINER_RUNNING
        image_id = await examples["ensure_image"](client)  # type: ignore[operator]
        assert image_id.startswith("sha256:")
        # an image the runtime does not have yet: pulled (from any name, on the fake)
        runtime.state.pull_policy = "any"
        image_id = await examples["ensure_image"](client, "docker.io/library/alpine:3.20")  # type: ignore[operator]
        assert image_id.startswith("sha256:")
        assert runtime.calls["PullImage"] == 1  # busybox was there, alpine was pulled
    printed = capsys.readouterr().out
    assert "CONTAINER_RUNNING" in printed and "['sleeper']" in printed


def test_log_entry_data_is_described(site: Path) -> None:
    from aiocri.logs import LogEntry

    doc = LogEntry.__doc__ or ""
    assert "``data`` is bytes" in doc and 'b"\\n"' in doc and "never finished" in doc
    page = (site / "api" / "logs" / "index.html").read_text()
    assert 'id="aiocri.logs.LogEntry.data"' in page
    assert "trailing newline" in page


def test_every_error_class_says_when_it_is_raised_and_has_a_hint() -> None:
    from aiocri import errors

    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, errors.CRIError):
            assert vars(obj).get("__doc__"), f"{name} has no docstring of its own"
            assert obj.hint, name
