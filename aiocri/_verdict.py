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
    RESEND = "resend"  #: declare nothing; send once more on the same connection


_S = grpc.StatusCode
#: Codes that may mean "the connection, not the runtime": they go through the probe.
_SUSPECT = frozenset({_S.UNAVAILABLE, _S.CANCELLED, _S.UNIMPLEMENTED})


def decide(code: grpc.StatusCode, link: Link, probe: ProbeOutcome, *, read_only: bool,
           resent: bool = False) -> Verdict:
    """The verdict for a call that failed with ``code``.

    ``read_only``: the RPC changes nothing, so sending it twice is harmless.
    UNIMPLEMENTED is always safe to send again: the runtime ran nothing.
    ``resent``: this call was already sent again once.

    A read-only call that got UNAVAILABLE while the probe found the runtime there
    (or only slow) is sent once more: UNAVAILABLE is gRPC's code for "try again",
    and a transport that broke under the call may already be back before anyone
    saw it go (grpc reconnects on its own, the channel watch runs later). A
    runtime that answers UNAVAILABLE itself gets the same answer twice: raised.
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
    if (code is _S.UNAVAILABLE and read_only and not resent
            and probe in (ProbeOutcome.ANSWERED, ProbeOutcome.SLOW)):
        return Verdict.RESEND
    # ANSWERED: the runtime said so itself. SLOW, UNDECIDED: no evidence, declare nothing.
    return Verdict.RAISE
