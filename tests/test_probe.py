"""The probe's pure decisions: when an answer may be reused, how long a dial's check waits."""

from __future__ import annotations

import grpc

from aiocri._probe import PROBE_REUSE, ProbeRecord, may_reuse

S = grpc.StatusCode


def test_may_reuse_every_case() -> None:
    sent, failed = 10.0, 10.2
    in_flight = ProbeRecord(sent)
    answered = ProbeRecord(sent, 10.3)
    for code in S:
        assert not may_reuse(None, code, failed, 10.3)
        if code is S.UNIMPLEMENTED:
            # only a probe sent after the failure arrived answers for it
            assert not may_reuse(in_flight, code, failed, 10.3)
            assert not may_reuse(answered, code, failed, 10.31)
            assert may_reuse(ProbeRecord(10.25), code, failed, 10.3)
            assert may_reuse(ProbeRecord(10.25, 10.3), code, failed, 10.31)
        else:
            assert may_reuse(in_flight, code, failed, 99.0)  # in flight: always shared
            assert may_reuse(answered, code, failed, 10.3 + PROBE_REUSE)
            assert not may_reuse(answered, code, failed, 10.3 + PROBE_REUSE + 0.01)
