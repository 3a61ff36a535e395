"""RedialPolicy: how a client dials and redials, validated when made."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["RedialPolicy"]


@dataclass(frozen=True, slots=True)
class RedialPolicy:
    """How to dial and redial: exponential backoff with jitter (tenacity).

    ``initial``: first wait (s); ``maximum``: the longest wait; ``multiplier``:
    growth per attempt; ``jitter``: random extra wait up to this (s);
    ``attempt_timeout``: deadline of one dial's version check;
    ``connect_timeout``: how long start-up retries a runtime that does not answer;
    ``give_up_after``: how long an outage may last (None: never give up, like the
    kubelet). The same backoff spaces redials when a runtime keeps breaking fresh
    connections, so a client never redials more than a few times a second.
    """

    initial: float = 0.02
    maximum: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.02
    attempt_timeout: float = 2.0
    connect_timeout: float = 10.0
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "give_up_after":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"RedialPolicy.{f.name} must be a number, not {value!r}")
        positive = ("initial", "maximum", "attempt_timeout", "connect_timeout")
        for name in positive:
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(
                    f"RedialPolicy.{name} must be a positive number of seconds, "
                    f"not {getattr(self, name)!r}")
        if self.maximum < self.initial:
            raise ValueError(f"RedialPolicy.maximum ({self.maximum}) must be at least "
                             f"initial ({self.initial})")
        if not 1 <= self.multiplier < math.inf:
            raise ValueError(f"RedialPolicy.multiplier must be at least 1, not {self.multiplier!r}")
        if not 0 <= self.jitter < math.inf:
            raise ValueError(f"RedialPolicy.jitter must be zero or more, not {self.jitter!r}")
        if self.give_up_after is not None and not self.give_up_after > 0:
            raise ValueError(f"RedialPolicy.give_up_after must be positive or None, "
                             f"not {self.give_up_after!r}")

    def backoff(self, step: int) -> float:
        """The wait before retry number ``step`` (1-based), without jitter."""
        return min(self.maximum, self.initial * self.multiplier ** max(0, step - 1))
