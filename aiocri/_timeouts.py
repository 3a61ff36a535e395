"""Deadlines and sizes given by users: checked at the call, made safe for grpc."""

from __future__ import annotations

import math

__all__ = ["MAX_TIMEOUT", "OPEN_TIMEOUT", "check_id", "check_positive_int", "check_timeout"]

#: Default bound on starting a streaming session (asking for its URL, upgrading it).
OPEN_TIMEOUT = 30.0

#: Deadlines longer than this (s, about 31 years) mean "no deadline": grpc adds a
#: deadline to its clock in nanoseconds, which overflows a little above 9e9 s
#: (measured here: 5e9 s works, 9e9 s fails at once with DEADLINE_EXCEEDED).
MAX_TIMEOUT = 1e9


def check_timeout(name: str, value: object, *, zero: bool = True) -> float | None:
    """``value`` as a deadline in seconds, or None for none.

    Refuses what is not a number (TypeError; a bool too), NaN and negative numbers
    (ValueError; zero only where ``zero``: an expired deadline a call may be given,
    not a default). Beyond :data:`MAX_TIMEOUT`, infinity included, is no deadline.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    # isnan only on a float: an int too large for one (10**400) is no NaN, only huge
    if (isinstance(value, float) and math.isnan(value)) or value < 0 or (value == 0 and not zero):
        least = "zero or more" if zero else "more than zero"
        raise ValueError(f"{name} must be {least} seconds (or None: no deadline), "
                         f"not {value!r}")
    return None if value > MAX_TIMEOUT else float(value)


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int of at least 1 (TypeError / ValueError naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return value


def check_id(kind: str, value: object) -> str:
    """``value`` as an object id: a str (TypeError) that is not empty (InvalidArgument,
    as the services refuse it: an empty reference is never sent)."""
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    if not value.strip():
        import grpc

        from aiocri.errors import InvalidArgument

        raise InvalidArgument(f"{kind} is empty; nothing was sent",
                              code=grpc.StatusCode.INVALID_ARGUMENT,
                              hint=f"pass the {kind.replace('_', ' ')} to act on")
    return value
