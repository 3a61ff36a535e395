"""Deadlines and sizes given by users: checked at the call, made safe for grpc."""

from __future__ import annotations

import math

__all__ = ["MAX_TIMEOUT", "check_positive_int", "check_timeout"]

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
    if math.isnan(value) or value < 0 or (value == 0 and not zero):
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
