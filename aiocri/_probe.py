"""What a probe of the connection means, and when its answer may be reused: pure.

A probe is the pinned version's check RPC (``Version``, or ``ImageFsInfo`` on an
image endpoint) sent on the channel of a call that failed suspiciously. Its
answer is evidence about that channel at the moment the probe was sent, nothing
more: a probe that ran out of time proves only that the runtime is slow, and an
answer to a question asked before a failure says nothing about that failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc

__all__ = ["PROBE_REUSE", "ProbeOutcome", "ProbeRecord", "may_reuse", "probe_outcome"]

#: How long (s) a finished probe answers for other calls failing on the same generation.
PROBE_REUSE = 0.5

_S = grpc.StatusCode


class ProbeOutcome(enum.Enum):
    """What the probe found on the failed call's channel."""

    NONE = "none"  #: not probed
    ANSWERED = "answered"  #: the runtime answered on this connection: it is there
    SLOW = "slow"  #: the probe's own deadline passed: the runtime may be busy; no evidence
    UNREACHABLE = "unreachable"  #: nothing answered: the connection is lost
    VERSION_GONE = "version_gone"  #: the runtime answers but no longer serves the pinned version
    UNDECIDED = "undecided"  #: no verdict within the caller's deadline (or cancelled)

    @property
    def evidence_of_loss(self) -> bool:
        return self is ProbeOutcome.UNREACHABLE or self is ProbeOutcome.VERSION_GONE


def probe_outcome(code: grpc.StatusCode | None) -> ProbeOutcome:
    """Classify the probe's answer (None: it returned OK).

    UNAVAILABLE: nothing usable answered. DEADLINE_EXCEEDED: the runtime did
    not answer within the probe's deadline, which a runtime busy restoring its
    pods does; that is not a lost connection. UNIMPLEMENTED on the pinned
    version's check: the version is gone. CANCELLED proves nothing. Any other
    answer comes from a runtime that is there (containerd answers UNKNOWN while
    it starts).
    """
    if code is None:
        return ProbeOutcome.ANSWERED
    if code is _S.UNAVAILABLE:
        return ProbeOutcome.UNREACHABLE
    if code is _S.DEADLINE_EXCEEDED:
        return ProbeOutcome.SLOW
    if code is _S.UNIMPLEMENTED:
        return ProbeOutcome.VERSION_GONE
    if code is _S.CANCELLED:
        return ProbeOutcome.UNDECIDED
    return ProbeOutcome.ANSWERED


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """When the last probe of a generation was sent and (if it has) answered."""

    sent_at: float
    done_at: float | None = None  #: None while in flight


def may_reuse(probe: ProbeRecord | None, code: grpc.StatusCode, failed_at: float,
              now: float) -> bool:
    """May a call that failed with ``code`` at ``failed_at`` take ``probe``'s answer?

    An UNIMPLEMENTED failure asks whether the pinned version is still served:
    only a probe sent after that failure arrived can answer it (a version can be
    dropped a moment after an older probe found it). Other failures ask whether
    the connection works: a probe in flight, or one that answered within
    :data:`PROBE_REUSE`, serves every caller (one probe, not one per caller).
    """
    if probe is None:
        return False
    if code is _S.UNIMPLEMENTED:
        return probe.sent_at >= failed_at
    return probe.done_at is None or now - probe.done_at <= PROBE_REUSE
