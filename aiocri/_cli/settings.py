"""Where the command's connection settings come from, following crictl.

Precedence, for each setting separately: the flag, then the environment
(``CONTAINER_RUNTIME_ENDPOINT``, ``IMAGE_SERVICE_ENDPOINT``), then the config
file (``/etc/crictl.yaml``, or the file named by ``--config`` or
``CRI_CONFIG_FILE``, with crictl's keys ``runtime-endpoint``,
``image-endpoint``, ``timeout``, ``debug``), then the default: crictl's
sockets tried in crictl's order (:func:`aiocri.endpoint.discover`), a 2 s
timeout, no debug.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiocri._timeouts import MAX_TIMEOUT
from aiocri.endpoint import DEFAULT_ENDPOINTS

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_TIMEOUT",
    "IMAGE_ENV",
    "LONGEST_DEADLINE",
    "RUNTIME_ENV",
    "Settings",
    "SettingsError",
    "load_config_file",
    "parse_duration",
    "resolve_settings",
]

RUNTIME_ENV = "CONTAINER_RUNTIME_ENDPOINT"
IMAGE_ENV = "IMAGE_SERVICE_ENDPOINT"
CONFIG_ENV = "CRI_CONFIG_FILE"
DEFAULT_CONFIG_PATH = "/etc/crictl.yaml"
#: crictl's default: the deadline of the connection and of each call.
DEFAULT_TIMEOUT = 2.0
#: The library's limit (about 31 years): beyond it, no deadline.
LONGEST_DEADLINE = MAX_TIMEOUT

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class SettingsError(Exception):
    """A bad flag value or config file; the message is one line ending with the fix."""


@dataclass(frozen=True)
class Settings:
    """The resolved settings. ``runtime_endpoint`` None means: discover as crictl does."""

    runtime_endpoint: str | None
    image_endpoint: str | None
    timeout: float
    debug: bool
    config_file: str | None = None
    #: Where each setting came from: "flag", "env", "config", "default".
    sources: Mapping[str, str] = field(default_factory=dict)

    def deadline(self, extra: float = 0.0) -> float | None:
        """The timeout plus ``extra`` seconds as a call's deadline; None (no deadline)
        beyond what grpc can hold (``-t inf``, ``-t 1e10``)."""
        seconds = self.timeout + extra
        return seconds if seconds <= LONGEST_DEADLINE else None

    def describe_endpoint(self) -> str:
        if self.runtime_endpoint is not None:
            return self.runtime_endpoint
        return "the default sockets (" + ", ".join(DEFAULT_ENDPOINTS) + ")"


def parse_duration(value: object, *, what: str = "timeout", where: str = "") -> float:
    """Seconds from ``2``, ``2.5``, ``2s``, ``500ms``, ``1m30s`` (crictl takes Go durations)
    or ``inf`` (no deadline).

    Zero means "the default", as in crictl; a negative, NaN or non-number value is a
    :class:`SettingsError` naming ``what`` (and ``where`` it came from).
    """
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = _parse_go_duration(value.strip())
    if not seconds >= 0:  # NaN, negative, or not a duration at all
        raise SettingsError(
            f"bad {what} {reprlib.repr(value)}{where}: give a positive duration such as "
            "2, 2s or 500ms, or inf for no deadline")
    return seconds if seconds > 0 else DEFAULT_TIMEOUT


def _parse_go_duration(text: str) -> float:
    """Seconds of a Go duration (``1m30s``, ``-5s``), NaN if ``text`` is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total if body and pos == len(body) else math.nan


def load_config_file(path: str) -> dict[str, Any]:
    """Read a crictl config file (YAML); an empty file is an empty config."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SettingsError(
            f"config file {path} does not exist; create it or point --config/"
            f"{CONFIG_ENV} at another file"
        ) from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(
            f"config file {path} is not UTF-8 text; save it as UTF-8 or point --config "
            "elsewhere"
        ) from None
    if not text.strip():
        return {}
    import yaml  # for a file with settings only: PyYAML's import is ~10 ms of a run

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(
            f"config file {path} is not valid YAML{where}; fix it or point --config elsewhere"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"config file {path} must be a mapping such as 'runtime-endpoint: unix:///...'"
        )
    return data


def _as_bool(value: Any, *, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SettingsError(f"config file {path}: debug must be true or false, not {value!r}")


def _as_str(value: Any, *, key: str, path: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"config file {path}: {key} must be a string, not {value!r}")
    return value


def resolve_settings(
    *,
    runtime_endpoint: str | None = None,
    image_endpoint: str | None = None,
    timeout: str | None = None,
    debug: bool | None = None,
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Combine flags (None when not given), the environment and the config file."""
    env = os.environ if environ is None else environ
    sources: dict[str, str] = {}

    # The config file: --config, else CRI_CONFIG_FILE, else /etc/crictl.yaml if it exists.
    explicit = config or env.get(CONFIG_ENV) or None
    path: str | None = explicit or DEFAULT_CONFIG_PATH
    file_values: dict[str, Any] = {}
    if explicit is not None or os.path.exists(DEFAULT_CONFIG_PATH):
        assert path is not None
        file_values = load_config_file(path)
    else:
        path = None

    def pick(key: str, flag: Any, env_name: str | None) -> Any:
        if flag is not None:
            sources[key] = "flag"
            return flag
        if env_name is not None and env.get(env_name):
            sources[key] = "env"
            return env[env_name]
        if key in file_values and file_values[key] not in (None, ""):
            sources[key] = "config"
            return file_values[key]
        sources[key] = "default"
        return None

    runtime = pick("runtime-endpoint", runtime_endpoint, RUNTIME_ENV)
    image = pick("image-endpoint", image_endpoint, IMAGE_ENV)
    raw_timeout = pick("timeout", timeout, None)
    raw_debug = pick("debug", debug, None)
    config_path = path or "?"
    if sources["runtime-endpoint"] == "config":
        runtime = _as_str(runtime, key="runtime-endpoint", path=config_path)
    if sources["image-endpoint"] == "config":
        image = _as_str(image, key="image-endpoint", path=config_path)
    seconds = DEFAULT_TIMEOUT
    if sources["timeout"] == "config":
        seconds = parse_duration(raw_timeout, where=f" in config file {config_path}")
    elif raw_timeout is not None:
        seconds = parse_duration(raw_timeout, what="-t/--timeout")
    if sources["debug"] == "config":
        raw_debug = _as_bool(raw_debug, path=config_path)
    return Settings(
        runtime_endpoint=runtime,
        image_endpoint=image,
        timeout=seconds,
        debug=bool(raw_debug),
        config_file=path,
        sources=sources,
    )
