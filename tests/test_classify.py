"""Why a connect gave up, over every peer answer and status code."""

from __future__ import annotations

import itertools

import grpc
import pytest

from aiocri._classify import ConnectFailure, PeerAnswer, classify

S = grpc.StatusCode


def _diagnosis(peer: PeerAnswer, code: S | None) -> ConnectFailure:
    """The rules spelled out case by case (not the implementation's shape)."""
    by_peer = {PeerAnswer.MISSING: ConnectFailure.NO_SOCKET,
               PeerAnswer.REFUSED: ConnectFailure.NOT_LISTENING,
               PeerAnswer.UNREACHABLE: ConnectFailure.UNREACHABLE,
               PeerAnswer.SILENT: ConnectFailure.HUNG,
               PeerAnswer.FOREIGN: ConnectFailure.NOT_CRI}
    if peer in by_peer:
        return by_peer[peer]
    if code is S.DEADLINE_EXCEEDED:
        return ConnectFailure.SLOW
    if code in (None, S.UNAVAILABLE):
        return ConnectFailure.UNREACHABLE
    return ConnectFailure.NOT_READY  # a gRPC server that answered, but not OK


@pytest.mark.parametrize(("peer", "code"), list(itertools.product(PeerAnswer, [None, *S])))
def test_every_case(peer: PeerAnswer, code: S | None) -> None:
    assert classify(peer, code) is _diagnosis(peer, code)
