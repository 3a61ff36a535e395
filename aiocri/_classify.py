"""Why a connect gave up: pure, from facts, never from the wording of grpc's errors.

Two facts decide. The last dial's status code (None: no answer at all), and
what the peer did when greeted with an HTTP/2 connection preface on a fresh
socket (:func:`aiocri.endpoint.greet` does that once, when the connect gives up).
A gRPC server answers the preface with a SETTINGS frame; a stopped process
lets the kernel accept the connection and then says nothing; anything else is
not an HTTP/2 server.
"""

from __future__ import annotations

import enum

import grpc

__all__ = ["ConnectFailure", "PeerAnswer", "classify"]


class PeerAnswer(enum.Enum):
    """What the endpoint did when greeted with an HTTP/2 preface."""

    MISSING = "missing"  #: no socket file
    REFUSED = "refused"  #: the connection was refused: nothing listens
    UNREACHABLE = "unreachable"  #: no connection at all (no route, no answer to connect)
    SILENT = "silent"  #: accepted, then no answer in time: stopped, hung or swamped
    HTTP2 = "http2"  #: answered with HTTP/2 SETTINGS: a gRPC server is there
    FOREIGN = "foreign"  #: answered something else, or hung up: not an HTTP/2 server


class ConnectFailure(enum.Enum):
    """The diagnosis of a connect that gave up."""

    NO_SOCKET = "no_socket"  #: the socket file is gone
    NOT_LISTENING = "not_listening"  #: a socket file that nobody listens on (stale)
    HUNG = "hung"  #: a process accepts connections but does not answer
    NOT_CRI = "not_cri"  #: something answers that is not a gRPC server
    NOT_READY = "not_ready"  #: the runtime answered, but never OK (still starting?)
    SLOW = "slow"  #: a gRPC server that did not answer the version check in time
    UNREACHABLE = "unreachable"  #: a gRPC server whose connections kept failing


def classify(peer: PeerAnswer, code: grpc.StatusCode | None) -> ConnectFailure:
    """The diagnosis, from what the peer did and the last dial's status code."""
    if peer is PeerAnswer.MISSING:
        return ConnectFailure.NO_SOCKET
    if peer is PeerAnswer.REFUSED:
        return ConnectFailure.NOT_LISTENING
    if peer is PeerAnswer.UNREACHABLE:
        return ConnectFailure.UNREACHABLE
    if peer is PeerAnswer.SILENT:
        return ConnectFailure.HUNG
    if peer is PeerAnswer.FOREIGN:
        return ConnectFailure.NOT_CRI
    # A gRPC server answered the preface: what did it say to the version check?
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ConnectFailure.SLOW
    if code is None or code is grpc.StatusCode.UNAVAILABLE:
        return ConnectFailure.UNREACHABLE
    return ConnectFailure.NOT_READY
