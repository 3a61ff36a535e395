"""What to do with a failed call: one pure decision, no I/O.

The channel manager asks :func:`decide` after every failed RPC and does what it
says. A runtime that answered is believed; a connection is declared lost only
on evidence (the channel left READY, or a probe on it could not reach the
runtime); a probe that does not decide within the caller's deadline declares
nothing and the call raises its own error.
"""

from __future__ import annotations

import enum

import grpc

__all__ = ["Link", "ProbeOutcome", "Verdict", "decide", "probe_outcome"]


class Link(enum.Enum):
    """The failed call's connection, as seen right after the failure."""

    READY = "ready"  #: current generation, channel still READY
    NOT_READY = "not_ready"  #: the channel left READY: the connection broke
    GONE = "gone"  #: this generation was already replaced or declared lost


class ProbeOutcome(enum.Enum):
    """What the probe (the pinned version's check RPC on the same channel) found."""

    NONE = "none"  #: not probed
    ANSWERED = "answered"  #: the runtime answered on this connection: it is healthy
    UNREACHABLE = "unreachable"  #: nothing answered: the connection is lost
    VERSION_GONE = "version_gone"  #: the runtime answers but no longer serves the pinned version
    UNDECIDED = "undecided"  #: no verdict within the caller's deadline


class Verdict(enum.Enum):
    RAISE = "raise"  #: the runtime's own answer: raise it as it is
    PROBE = "probe"  #: ask the connection (one shared probe), then decide again
    LOST_RESEND = "lost_resend"  #: declare the generation lost; send again on the next one
    LOST_RAISE = "lost_raise"  #: declare the generation lost; raise (it may have run)


_S = grpc.StatusCode
#: Codes that may mean "the connection, not the runtime": they go through the probe.
_SUSPECT = frozenset({_S.UNAVAILABLE, _S.CANCELLED, _S.UNIMPLEMENTED})


def decide(code: grpc.StatusCode, link: Link, probe: ProbeOutcome, *, read_only: bool) -> Verdict:
    """The verdict for a call that failed with ``code``.

    ``read_only``: the RPC changes nothing, so sending it twice is harmless.
    UNIMPLEMENTED is always safe to send again: the runtime ran nothing.
    """
    if code not in _SUSPECT:
        return Verdict.RAISE
    resend = read_only or code is _S.UNIMPLEMENTED
    lost = Verdict.LOST_RESEND if resend else Verdict.LOST_RAISE
    if link is not Link.READY:
        return lost
    if probe is ProbeOutcome.NONE:
        return Verdict.PROBE
    if probe is ProbeOutcome.UNREACHABLE or probe is ProbeOutcome.VERSION_GONE:
        return lost
    # ANSWERED: the runtime said so itself. UNDECIDED: declare nothing.
    return Verdict.RAISE


#: Probe answers that mean nothing usable answered on the connection.
_UNREACHABLE = frozenset({_S.UNAVAILABLE, _S.DEADLINE_EXCEEDED})


def probe_outcome(code: grpc.StatusCode | None) -> ProbeOutcome:
    """Classify the probe's answer (None: it returned OK).

    UNIMPLEMENTED on the pinned version's check means the version is gone;
    CANCELLED proves nothing either way; any other answer is a runtime that is
    there (containerd answers UNKNOWN while it restores its pods).
    """
    if code is None:
        return ProbeOutcome.ANSWERED
    if code in _UNREACHABLE:
        return ProbeOutcome.UNREACHABLE
    if code is _S.UNIMPLEMENTED:
        return ProbeOutcome.VERSION_GONE
    if code is _S.CANCELLED:
        return ProbeOutcome.UNDECIDED
    return ProbeOutcome.ANSWERED
