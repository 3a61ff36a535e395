from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

import aiocri
import aiocri.testing
from aiocri._classify import PeerAnswer
from aiocri.endpoint import check_socket, discover, greet, parse_endpoint
from aiocri.errors import CRIError, EndpointError


def test_parse_forms() -> None:
    assert parse_endpoint("unix:///run/x.sock").target == "unix:///run/x.sock"
    assert parse_endpoint("/run/../run/x.sock").address == "/run/x.sock"
    assert str(parse_endpoint(" unix:///a/b.sock ")) == "unix:///a/b.sock"
    tcp = parse_endpoint("tcp://127.0.0.1:1234", allow_tcp=True)
    assert (tcp.scheme, tcp.target, tcp.path) == ("tcp", "127.0.0.1:1234", None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("run/containerd.sock", "relative"),
        ("unix://run/containerd.sock", "relative socket path"),
        ("http://localhost:80", "unknown endpoint scheme 'http'"),
        ("tcp://127.0.0.1:1234", "refused"),
    ],
)
def test_bad_endpoints_fail_before_any_dial(value: str, message: str) -> None:
    with pytest.raises(EndpointError, match=message) as info:
        parse_endpoint(value)
    assert isinstance(info.value, CRIError)
    assert info.value.hint in str(info.value)  # says what to do


def test_tcp_needs_host_and_port() -> None:
    with pytest.raises(EndpointError, match="host:port"):
        parse_endpoint("tcp://localhost", allow_tcp=True)


def test_check_socket(sock_dir: Path) -> None:
    with pytest.raises(EndpointError, match="does not exist"):
        check_socket(parse_endpoint(str(sock_dir / "missing.sock")))
    regular = sock_dir / "file"
    regular.write_text("x")
    with pytest.raises(EndpointError, match="not a socket"):
        check_socket(parse_endpoint(str(regular)))
    with pytest.raises(EndpointError, match="is a directory"):
        check_socket(parse_endpoint(str(sock_dir)))
    path = sock_dir / "ok.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        check_socket(parse_endpoint(f"unix://{path}"))


def test_permission_denied(sock_dir: Path) -> None:
    path = sock_dir / "locked.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        os.chmod(path, 0)
        if os.geteuid() == 0:
            # root passes access(2); deny through the parent folder instead,
            # which root also passes: drop to nobody in a child to check.
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                os.setuid(65534)
                try:
                    check_socket(parse_endpoint(str(path)))
                except EndpointError as exc:
                    os._exit(0 if "permission denied" in str(exc) else 2)
                os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        else:
            with pytest.raises(EndpointError, match="permission denied"):
                check_socket(parse_endpoint(str(path)))


def test_discover_picks_first_usable(sock_dir: Path) -> None:
    good = sock_dir / "crio.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(good))
        found = discover([f"unix://{sock_dir}/containerd.sock", f"unix://{good}"])
        assert found.path == str(good)
    with pytest.raises(EndpointError, match="none of the default sockets"):
        discover([f"unix://{sock_dir}/nope.sock"])


def test_unix_scheme_without_a_path() -> None:
    with pytest.raises(aiocri.EndpointError, match="has no socket path"):
        aiocri.parse_endpoint("unix://")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to play another user")
def test_a_folder_that_cannot_be_entered_is_named(sock_dir: Path) -> None:
    sock_dir.chmod(0o755)  # open to all; the folder below it is not
    locked = sock_dir / "locked"
    locked.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(locked / "rt.sock"))
    os.seteuid(65534)  # nobody
    try:
        with pytest.raises(EndpointError) as denied:
            check_socket(parse_endpoint(f"{locked}/rt.sock"))
    finally:
        os.seteuid(0)
        sock.close()
    assert f"cannot enter {locked}" in str(denied.value)
    assert "socket's group" not in str(denied.value)


# -- greet(): what a socket does when greeted with an HTTP/2 preface ------------------------


def _serve_once(listener: socket.socket, answer: bytes | None) -> threading.Thread:
    """Accept one connection, read the greeting, answer ``answer`` (None: hang up)."""

    def run() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(64)
            if answer is not None:
                peer.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "expected"), [
    (None, PeerAnswer.FOREIGN),  # accepts, then hangs up
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", PeerAnswer.FOREIGN),
    (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", PeerAnswer.HTTP2),  # an empty SETTINGS frame
])
async def test_greet_reads_what_the_peer_answers(sock_dir: Path, answer: bytes | None,
                                                 expected: PeerAnswer) -> None:
    path = str(sock_dir / "peer.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        thread = _serve_once(listener, answer)
        assert await greet(parse_endpoint(path), 5.0) is expected
        thread.join(5)


@pytest.mark.anyio
async def test_greet_tells_missing_refused_and_silent_apart(sock_dir: Path) -> None:
    path = str(sock_dir / "x.sock")
    assert await greet(parse_endpoint(path), 1.0) is PeerAnswer.MISSING
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(path)  # a file, nobody listening
    assert await greet(parse_endpoint(path), 1.0) is PeerAnswer.REFUSED
    os.unlink(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(path)
        silent.listen()  # the kernel accepts; nobody reads (a stopped process)
        assert await greet(parse_endpoint(path), 0.3) is PeerAnswer.SILENT


@pytest.mark.anyio
async def test_greet_a_fake_runtime_speaks_http2(runtime: aiocri.testing.FakeRuntime) -> None:
    assert await greet(parse_endpoint(runtime.endpoint), 5.0) is PeerAnswer.HTTP2


@pytest.mark.anyio
async def test_greet_a_closed_tcp_port_is_refused_not_foreign() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed
    endpoint = parse_endpoint(f"tcp://127.0.0.1:{port}", allow_tcp=True)
    assert await greet(endpoint, 2.0) is PeerAnswer.REFUSED


@pytest.mark.anyio
async def test_a_closed_tcp_port_is_connect_failed_not_a_foreign_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = aiocri.RedialPolicy(connect_timeout=0.3, attempt_timeout=0.2)
    with pytest.raises(aiocri.ConnectFailed, match="nothing listens") as caught:
        await aiocri.connect(f"tcp://127.0.0.1:{port}", allow_tcp=True, redial=policy)
    assert not isinstance(caught.value, aiocri.NotACRIRuntime)
    assert "stale socket" not in str(caught.value)
