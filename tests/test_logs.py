"""aiocri.logs: the CRI log format, filters, and following across rotation."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aiocri
from aiocri.logs import LogEntry, format_time, parse_line, parse_time, read_log
from aiocri.testing import FakeRuntime
from aiocri.testing._logfile import MAX_LINE, CRILogFile

pytestmark = pytest.mark.anyio


async def collect(it: AsyncIterator[LogEntry]) -> list[LogEntry]:
    return [entry async for entry in it]


def write(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


async def until(condition: Callable[[], object], what: str, within: float = 30) -> None:
    """Poll ``condition()`` until it holds; fail loudly (naming ``what``) after ``within``
    seconds, a bound no machine, however busy, should reach."""
    try:
        with anyio.fail_after(within):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


def held_open(path: Path) -> bool:
    """Whether this process has ``path`` open: a follower opened it. The follower opens
    the file, seeks and reads what it holds in one step (no await in between), so once
    this is true it has also reached the file's end as it was then."""
    target = str(path)
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed while we look
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                return True
    return False


def test_parse_line() -> None:
    piece = parse_line(b"2026-12-01T00:51:25.123456789Z stdout F out 1")
    assert (piece.stream, piece.full, piece.text) == ("stdout", True, b"out 1")
    assert piece.time_ns == parse_time("2026-12-01T00:51:25.123456789Z")
    assert parse_line(b"2026-12-01T00:51:25Z stderr P ").text == b""
    assert parse_line(b"2026-12-01T00:51:25Z stderr F").text == b""
    for bad in (b"", b"garbage", b"2026-12-01T00:51:25Z stdin F x", b"now stdout F x",
                b"2026-12-01T00:51:25Z stdout X x"):
        with pytest.raises(ValueError, match="not a CRI log line|not an RFC 3339 time"):
            parse_line(bad)


def test_times() -> None:
    assert parse_time("1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_time("1970-01-01T01:00:01.000000001+01:00") == 1_000_000_001
    assert format_time(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_time(1_000_000_000) == "1970-01-01T00:00:01Z"


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_time_round_trip(ns: int) -> None:
    assert parse_time(format_time(ns)) == ns


async def test_partial_lines_are_joined_per_stream(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path,
          "2026-12-01T00:00:01Z stdout P hel",
          "2026-12-01T00:00:02Z stderr F warning",
          "2026-12-01T00:00:03Z stdout P lo ",
          "not a log line at all",
          "2026-12-01T00:00:04Z stdout F world")
    entries = await collect(read_log(path))
    assert [(e.stream, e.data) for e in entries] == [
        ("stderr", b"warning\n"), ("stdout", b"hello world\n")]
    assert entries[1].timestamp == "2026-12-01T00:00:01Z"  # the line's first piece
    assert entries[1].time == datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)


async def test_filters(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, *(f"2026-12-01T00:00:0{i}Z {'stdout' if i % 2 else 'stderr'} F line {i}"
                  for i in range(1, 8)))
    assert [e.data for e in await collect(read_log(path, tail=2))] == [b"line 6\n", b"line 7\n"]
    assert await collect(read_log(path, tail=0)) == []
    since = datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC)
    assert [e.data for e in await collect(read_log(path, since=since))] == [
        b"line 5\n", b"line 6\n", b"line 7\n"]
    odd = await collect(read_log(path, streams=["stdout"]))
    assert [e.data for e in odd] == [b"line 1\n", b"line 3\n", b"line 5\n", b"line 7\n"]
    limited = await collect(read_log(path, limit_bytes=10))
    assert b"".join(e.data for e in limited) == b"line 1\nlin"
    # tail counts lines before the stream filter, as crictl does
    assert [e.data for e in await collect(read_log(path, tail=3, streams=["stderr"]))] == [
        b"line 6\n"]


async def test_wrong_arguments_fail_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01Z stdout F x")
    for kwargs in ({"tail": -1}, {"tail": True}, {"limit_bytes": 0}, {"streams": ["stdin"]},
                   {"streams": []}, {"since": datetime(2026, 1, 1)}, {"poll_interval": 0}):
        with pytest.raises(ValueError, match="must"):
            read_log(path, **kwargs)  # type: ignore[arg-type]  # at the call, not at iteration
    for kwargs in ({"streams": "stdout"}, {"since": "1h"}):
        with pytest.raises(TypeError, match="must be"):
            read_log(path, **kwargs)  # type: ignore[arg-type]


async def test_container_logs_checks_its_arguments_before_any_call(
        sock_dir: Path, tmp_path: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint) as c:
        pod = rt.state.add_pod("web", log_directory=str(tmp_path))
        cid = rt.state.add_container(pod, "app")
        for kwargs, error in (({"tail": -1}, ValueError), ({"since": "1h"}, TypeError),
                              ({"streams": "stdout"}, TypeError), ({"streams": []}, ValueError)):
            with pytest.raises(error):
                c.container_logs(cid, **kwargs)  # type: ignore[arg-type]
            with pytest.raises(error):  # the argument first, the missing container after
                c.container_logs("f" * 64, **kwargs)  # type: ignore[arg-type]
        assert rt.calls["ContainerStatus"] == 0
        os.makedirs(os.path.dirname(rt.state.containers[cid].log_path), exist_ok=True)
        rt.write_output(cid, "x\n")
        once = iter(["stdout"])  # an iterator of streams is read once, and kept
        entries = c.container_logs(cid, streams=once)  # type: ignore[arg-type]
        assert [e.data async for e in entries] == [b"x\n"]


async def test_tail_zero_follow_starts_at_the_end_of_an_unfinished_line(tmp_path: Path
                                                                         ) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01Z stdout F old 1")
    with open(path, "a") as f:
        f.write("2026-12-01T00:00:02Z stdout F old 2")  # its newline not written yet
    got: list[bytes] = []

    async def follow() -> None:
        async for entry in read_log(path, follow=True, tail=0, poll_interval=0.01):
            got.append(entry.data)

    task = asyncio.ensure_future(follow())
    await until(lambda: held_open(path), "the follower opened the file")
    with open(path, "a") as f:
        f.write("\n2026-12-01T00:00:03Z stdout F new\n")
    await until(lambda: got, "the new line was read")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert got == [b"new\n"]  # not the whole file again


async def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(aiocri.LogError, match="no log file at"):
        await collect(read_log(tmp_path / "nope.log"))


async def test_a_file_truncated_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"2026-12-01T00:00:01Z stdout F whole\n2026-12-01T00:00:02Z stdout F cut sh")
    entries = await collect(read_log(path))
    assert [e.data for e in entries] == [b"whole\n", b"cut sh"]
    path.write_bytes(b"2026-12-01T00:00:01Z stdout P never finished\n")
    assert [e.data for e in await collect(read_log(path))] == [b"never finished"]


def start_following(path: Path) -> tuple[list[bytes], asyncio.Task[None]]:
    """What a follower read so far, and its task (cancel it when done)."""
    got: list[bytes] = []

    async def follow() -> None:
        async for entry in read_log(path, follow=True, poll_interval=0.01):
            got.append(entry.data)

    return got, asyncio.ensure_future(follow())


async def test_follow_across_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01Z stdout F before")
    got, task = start_following(path)

    async def read(count: int) -> None:
        await until(lambda: len(got) >= count, f"{count} entries read (only {got})")

    await read(1)
    write(path, "2026-12-01T00:00:02Z stdout P gro")
    write(path, "2026-12-01T00:00:03Z stdout F wing")
    await read(2)
    os.rename(path, tmp_path / "c.log.1")  # the kubelet rotates...
    write(tmp_path / "c.log.1", "2026-12-01T00:00:04Z stdout F late in the old file")
    write(path, "2026-12-01T00:00:05Z stdout F in the new file, a longer line")  # reopened
    await read(4)
    with open(path, "r+b") as f:  # copytruncate
        f.truncate(0)
    write(path, "2026-12-01T00:00:06Z stdout F after truncation")
    await read(5)
    task.cancel()
    assert got == [b"before\n", b"growing\n", b"late in the old file\n",
                   b"in the new file, a longer line\n", b"after truncation\n"]


async def test_follow_ends_when_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01Z stdout F only")
    running = [True]

    async def still_running() -> bool:
        return running[0]

    async def stop_soon() -> None:
        await until(lambda: held_open(path), "the follower opened the file")
        write(path, "2026-12-01T00:00:02Z stdout P last words")
        running[0] = False

    stopper = asyncio.ensure_future(stop_soon())
    entries = await asyncio.wait_for(collect(read_log(
        path, follow=True, poll_interval=0.05, still_running=still_running)), 10)
    await stopper
    assert [e.data for e in entries] == [b"only\n", b"last words"]


async def test_the_fake_writes_cri_logs_and_reopens(sock_dir: Path, tmp_path: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint) as c:
        pod = rt.state.add_pod("web", log_directory=str(tmp_path))
        cid = rt.state.add_container(pod, "app")
        status = (await c.runtime.container_status(
            aiocri.api.ContainerStatusRequest(container_id=cid))).status
        assert status.log_path == f"{tmp_path}/app/0.log" or status.log_path.startswith(
            str(tmp_path))
        os.makedirs(os.path.dirname(status.log_path), exist_ok=True)
        rt.write_output(cid, "one\ntw")
        rt.write_output(cid, "o\n")
        rt.write_output(cid, "warn\n", stream="stderr")
        os.rename(status.log_path, status.log_path + ".1")
        rt.write_output(cid, "still old\n")
        await c.runtime.reopen_container_log(
            aiocri.api.ReopenContainerLogRequest(container_id=cid))
        rt.write_output(cid, "new\n")
        old = await collect(read_log(status.log_path + ".1"))
        new = await collect(read_log(status.log_path))
        assert [(e.stream, e.data) for e in old] == [
            ("stdout", b"one\n"), ("stdout", b"two\n"), ("stderr", b"warn\n"),
            ("stdout", b"still old\n")]
        assert [e.data for e in new] == [b"new\n"]
        assert all(e.time_ns <= datetime.now(UTC).timestamp() * 1e9 for e in old)
        assert old[0].time > datetime.now(UTC) - timedelta(minutes=1)


@pytest.mark.parametrize("ending", [b"\n", b""])
async def test_tail_reads_from_the_end_of_a_big_file(tmp_path: Path, ending: bytes) -> None:
    path = tmp_path / "big.log"
    body = b"".join(b"2026-12-01T00:00:01Z stdout F %08d %s\n" % (i, b"x" * 100)
                    for i in range(40_000))  # 4.6 MB: several chunks and blocks
    path.write_bytes(body + b"2026-12-01T00:00:02Z stdout F the end" + ending)
    got = await collect(read_log(path, tail=3))
    assert [e.data[:8] for e in got] == [b"00039998", b"00039999", b"the end" + (
        b"\n" if ending else b"")]
    assert len(await collect(read_log(path, tail=100_000))) == 40_001
    everything = await collect(read_log(path))
    assert len(everything) == 40_001 and everything[12_345].data.startswith(b"00012345")


async def test_a_line_split_by_rotation_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01Z stdout P first half, ")
    got, task = start_following(path)
    await until(lambda: held_open(path), "the follower opened the file (before rotation)")
    os.rename(path, tmp_path / "c.log.1")
    write(path, "2026-12-01T00:00:02Z stdout F second half")
    await until(lambda: got, "the joined line was read")
    task.cancel()
    assert got == [b"first half, second half\n"]


async def test_since_keeps_nanoseconds(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    write(path, "2026-12-01T00:00:01.000000999Z stdout F before",
          "2026-12-01T00:00:01.000001Z stdout F at")
    since = datetime(2026, 12, 1, 0, 0, 1, 1, tzinfo=UTC)  # 1 microsecond
    assert [e.data for e in await collect(read_log(path, since=since))] == [b"at\n"]


async def test_container_logs_edge_cases(sock_dir: Path, tmp_path: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint) as c:
        pod = rt.state.add_pod("web", log_directory=str(tmp_path))
        cid = rt.state.add_container(pod, "app")
        log_path = rt.state.containers[cid].log_path
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        rt.write_output(cid, "x\n")
        with pytest.raises(aiocri.InvalidArgument, match="nothing was sent"):
            await collect(c.container_logs(""))
        with pytest.raises(aiocri.LogError, match="no previous attempt"):
            await collect(c.container_logs(cid, previous=True))
        got: list[bytes] = []
        gone = [False]
        asked_after_kill = [0]  # the follower's looks at the runtime since it went away
        status = c.runtime.container_status

        async def counted(*args: Any, **kwargs: Any) -> Any:
            if gone[0]:
                asked_after_kill[0] += 1
            return await status(*args, **kwargs)

        c.runtime.container_status = counted  # type: ignore[method-assign]

        async def follow() -> None:
            async for entry in c.container_logs(cid, follow=True):
                got.append(entry.data)

        task = asyncio.ensure_future(follow())
        await until(lambda: got, "the follower read the first line")
        await rt.kill()  # the runtime goes away; the container "runs" on: keep following
        gone[0] = True
        # a second look means the first (which failed: no runtime) let it follow on
        await until(lambda: asked_after_kill[0] >= 2 or task.done(),
                    "the follower asked the runtime twice after it went away")
        assert not task.done()
        await c.aclose()
        rt.write_output(cid, "after close\n")
        with pytest.raises(aiocri.ClientClosed):
            await asyncio.wait_for(task, 10)
        assert got == [b"x\n"]


def _pieces(path: Path) -> list[tuple[str, str, int | bytes]]:
    """(stream, P|F, text) per line; texts over 40 bytes as their length."""
    out: list[tuple[str, str, int | bytes]] = []
    for raw in path.read_bytes().splitlines():
        piece = parse_line(raw)
        text = piece.text if len(piece.text) <= 40 else len(piece.text)
        out.append((piece.stream, "F" if piece.full else "P", text))
    return out


def test_the_fake_log_waits_for_a_newline_per_stream(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    log = CRILogFile.open(str(path))
    assert log is not None
    log.write("stdout", b"out1\npart")
    log.write("stderr", b"err")
    assert _pieces(path) == [("stdout", "F", b"out1")]  # the rest waits for its newline
    log.write("stderr", b"1\n")
    log.write("stdout", b"ial\n\n")
    log.write("stdout", b"no-newline-at-exit")
    log.write("stderr", b"last")
    log.close()  # the streams end: what is left goes out as P
    assert _pieces(path) == [
        ("stdout", "F", b"out1"), ("stderr", "F", b"err1"), ("stdout", "F", b"partial"),
        ("stdout", "F", b""), ("stdout", "P", b"no-newline-at-exit"), ("stderr", "P", b"last")]


def test_the_fake_log_cuts_lines_longer_than_16_kib(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    log = CRILogFile.open(str(path))
    assert log is not None
    log.write("stdout", b"x" * 20_000 + b"\n" + b"y" * MAX_LINE + b"\n")
    log.write("stdout", b"z" * 2 * MAX_LINE + b"\n")
    assert _pieces(path) == [("stdout", "P", MAX_LINE), ("stdout", "F", 20_000 - MAX_LINE),
                             ("stdout", "F", MAX_LINE),  # exactly 16 KiB: not cut
                             ("stdout", "P", MAX_LINE), ("stdout", "F", MAX_LINE)]
    path.write_bytes(b"")
    # a long line arriving in pieces: full 16 KiB pieces go out as soon as they are
    # there, as containerd's logger reads at most that much at a time
    for _ in range(5):
        log.write("stderr", b"w" * 8000)
    assert _pieces(path) == [("stderr", "P", MAX_LINE), ("stderr", "P", MAX_LINE)]
    log.write("stderr", b"w" * (MAX_LINE - 7232) + b"\n")
    log.write("stderr", b"v" * MAX_LINE)
    log.close()
    assert _pieces(path)[2:] == [("stderr", "F", MAX_LINE), ("stderr", "P", MAX_LINE)]


async def test_the_fake_flushes_a_pending_piece_at_exit_and_reopen(sock_dir: Path,
                                                                   tmp_path: Path) -> None:
    async with FakeRuntime(str(sock_dir / "rt.sock")) as rt, aiocri.connect(rt.endpoint) as c:
        pod = rt.state.add_pod("web", log_directory=str(tmp_path))
        cid = rt.state.add_container(pod, "app")
        path = Path(rt.state.containers[cid].log_path)
        rt.write_output(cid, "before rotation, no newline")
        assert path.read_bytes() == b""  # it waits for its newline
        os.rename(path, str(path) + ".1")
        await c.runtime.reopen_container_log(
            aiocri.api.ReopenContainerLogRequest(container_id=cid))
        assert _pieces(Path(str(path) + ".1")) == [("stdout", "P", b"before rotation, no newline")]
        rt.write_output(cid, "then a line\nand a piece")
        rt.state.exit_container(cid, exit_code=0)
        assert _pieces(path) == [("stdout", "F", b"then a line"), ("stdout", "P", b"and a piece")]
