"""The failure verdict, over every gRPC status code, link state and probe outcome."""

from __future__ import annotations

import itertools

import grpc
import pytest

from aiocri._probe import probe_outcome
from aiocri._verdict import Link, ProbeOutcome, Verdict, decide

S = grpc.StatusCode
SUSPECT = {S.UNAVAILABLE, S.CANCELLED, S.UNIMPLEMENTED}


def expected(code: S, link: Link, probe: ProbeOutcome, read_only: bool,
             resent: bool = False) -> Verdict:
    """The rules of the issue, spelled out case by case (not the implementation's shape)."""
    if code not in SUSPECT:
        return Verdict.RAISE  # the runtime's answer, whatever the connection looks like
    safe = read_only or code is S.UNIMPLEMENTED  # UNIMPLEMENTED ran nothing
    if link in (Link.NOT_READY, Link.GONE):
        return Verdict.LOST_RESEND if safe else Verdict.LOST_RAISE
    if probe is ProbeOutcome.NONE:
        return Verdict.PROBE
    if code is S.UNAVAILABLE and read_only and not resent and probe in (
            ProbeOutcome.ANSWERED, ProbeOutcome.SLOW):
        return Verdict.RESEND  # gRPC's "try again", once, for what changes nothing
    if probe in (ProbeOutcome.ANSWERED, ProbeOutcome.SLOW, ProbeOutcome.UNDECIDED):
        return Verdict.RAISE  # SLOW: the runtime may be busy; no evidence of a loss
    return Verdict.LOST_RESEND if safe else Verdict.LOST_RAISE


CASES = list(itertools.product(S, Link, ProbeOutcome, (False, True), (False, True)))


@pytest.mark.parametrize(("code", "link", "probe", "read_only", "resent"), CASES,
                         ids=[f"{c.name}-{lk.value}-{p.value}-{'ro' if r else 'rw'}"
                              f"{'-resent' if again else ''}"
                              for c, lk, p, r, again in CASES])
def test_every_case(code: S, link: Link, probe: ProbeOutcome, read_only: bool,
                    resent: bool) -> None:
    assert decide(code, link, probe, read_only=read_only, resent=resent) is expected(
        code, link, probe, read_only, resent)


def test_a_runtime_answer_is_never_a_loss() -> None:
    for code in set(S) - SUSPECT:
        for link, probe, ro in itertools.product(Link, ProbeOutcome, (False, True)):
            assert decide(code, link, probe, read_only=ro) is Verdict.RAISE


def test_undecided_probe_declares_nothing() -> None:
    for code, ro in itertools.product(S, (False, True)):
        assert decide(code, Link.READY, ProbeOutcome.UNDECIDED, read_only=ro) is Verdict.RAISE


@pytest.mark.parametrize("code", list(S), ids=lambda c: c.name)
def test_probe_outcome(code: S) -> None:
    outcome = probe_outcome(None if code is S.OK else code)
    if code is S.OK:
        assert outcome is ProbeOutcome.ANSWERED
    elif code is S.UNAVAILABLE:
        assert outcome is ProbeOutcome.UNREACHABLE
    elif code is S.DEADLINE_EXCEEDED:  # the probe ran out of time: slow, not gone
        assert outcome is ProbeOutcome.SLOW
    elif code is S.UNIMPLEMENTED:
        assert outcome is ProbeOutcome.VERSION_GONE
    elif code is S.CANCELLED:
        assert outcome is ProbeOutcome.UNDECIDED
    else:  # a runtime that is there, maybe starting (containerd: UNKNOWN "not initialized")
        assert outcome is ProbeOutcome.ANSWERED
