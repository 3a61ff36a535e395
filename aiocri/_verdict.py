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

from aiocri._probe import ProbeOutcome

__all__ = ["Link", "ProbeOutcome", "Verdict", "decide"]


class Link(enum.Enum):
    """The failed call's connection, as seen right after the failure."""

    READY = "ready"  #: current generation, channel still READY
    NOT_READY = "not_ready"  #: the channel left READY: the connection broke
    GONE = "gone"  #: this generation was already replaced or declared lost


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
    if probe.evidence_of_loss:
        return lost
    # ANSWERED: the runtime said so itself. SLOW, UNDECIDED: no evidence, declare nothing.
    return Verdict.RAISE
