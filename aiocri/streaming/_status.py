"""The exit status a session's error channel carries (a Kubernetes ``Status`` in JSON)."""

from __future__ import annotations

import json

from aiocri.errors import ExecFailed

__all__ = ["exit_code_of"]

# A command that never started: the exit code a shell gives for the same cause.
_NOT_STARTED = (
    ("executable file not found", 127),
    ("no such file or directory", 127),
    ("permission denied", 126),
)


def exit_code_of(raw: bytes) -> int:
    """The exit code in ``raw``; raises :class:`ExecFailed` when the command did not run.

    An empty error channel means success (servers before v4 wrote nothing then).
    """
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return 0
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    if not isinstance(status, dict):  # protocols before v4: plain text is an error
        raise ExecFailed(f"the command failed: {text}", exit_code=_shell_code(text))
    if status.get("status") == "Success":
        return 0
    message = str(status.get("message") or text)
    if status.get("reason") == "NonZeroExitCode":
        code = _exit_code_cause(status.get("details"))
        if code is not None:
            return code
    raise ExecFailed(f"the command failed: {message}", exit_code=_shell_code(message))


def _exit_code_cause(details: object) -> int | None:
    """The ``ExitCode`` cause of a status's details, if the shape is the expected one."""
    causes = details.get("causes") if isinstance(details, dict) else None
    for cause in causes if isinstance(causes, list) else ():
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(str(cause.get("message", "")))
            except ValueError:
                return None
    return None


def _shell_code(message: str) -> int | None:
    lowered = message.lower()
    for words, code in _NOT_STARTED:
        if words in lowered:
            return code
    return None
