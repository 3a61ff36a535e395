"""More applets: yes, seq, basename, dirname, uname and cut."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator

from aiocri.testing._shell._call import Call, Usage, each_operand, getopt
from aiocri.testing._shell._registry import register

_BATCH = 4096  # about how many bytes yes and seq write at a time


@register("yes")
async def _yes(c: Call) -> int:
    """Lines without end, until the reader goes (the pipe then ends this stage)."""
    line = (" ".join(c.args) if c.args else "y") + "\n"
    batch = (line * max(1, _BATCH // len(line))).encode()
    while True:
        await c.stdout(batch)
        await asyncio.sleep(0)  # a writer that never blocks must still let others run


def _seq_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise Usage("usage: seq [-w] [-s SEP] [FIRST [INC]] LAST") from None


def _steps(first: float, step: float, last: float) -> Iterator[float]:
    """FIRST, FIRST+INC, ... up to LAST (as busybox: FIRST + i*INC, in doubles)."""
    i = 0
    while step and (first + i * step <= last if step > 0 else first + i * step >= last):
        yield first + i * step
        i += 1


@register("seq")
async def _seq(c: Call) -> int:
    opts, args = getopt(c.args, "ws:")
    if not 1 <= len(args) <= 3:
        raise Usage("usage: seq [-w] [-s SEP] [FIRST [INC]] LAST")
    numbers = [_seq_number(a) for a in args]
    first, step, last = (1.0, 1.0, numbers[0]) if len(numbers) == 1 else (
        (numbers[0], 1.0, numbers[1]) if len(numbers) == 2 else tuple(numbers))
    places = max(len(a.partition(".")[2]) for a in args)
    width = max(len(f"{first:.{places}f}"), len(f"{last:.{places}f}")) if "w" in opts else 0
    sep = opts["s"][-1] if "s" in opts else "\n"
    batch: list[str] = []
    started = False
    for value in _steps(first, step, last):
        if len(batch) >= _BATCH // 8:
            await c.out(sep * started + sep.join(batch))
            batch, started = [], True
            await asyncio.sleep(0)
        batch.append(f"{value:0{width}.{places}f}")
    if batch:
        await c.out(sep * started + sep.join(batch) + "\n")
    return 0


@register("basename")
async def _basename(c: Call) -> int:
    if not 1 <= len(c.args) <= 2:
        raise Usage("usage: basename FILE [SUFFIX]")
    name = c.args[0].rstrip("/")
    base = name.rsplit("/", 1)[-1] if name else ("/" if c.args[0] else "")
    suffix = c.args[1] if len(c.args) > 1 else ""
    if suffix and base != suffix and base.endswith(suffix):
        base = base[:-len(suffix)]
    await c.out(base + "\n")
    return 0


@register("dirname")
async def _dirname(c: Call) -> int:
    if len(c.args) != 1:
        raise Usage("usage: dirname FILENAME")
    name = c.args[0].rstrip("/")
    if not name:
        await c.out(("/" if c.args[0] else ".") + "\n")
        return 0
    head, slash, _ = name.rpartition("/")
    await c.out(((head.rstrip("/") or "/") if slash else ".") + "\n")
    return 0


@register("uname")
async def _uname(c: Call) -> int:
    opts, _ = getopt(c.args, "amnrspvio")
    host = os.uname()
    values = {"s": "Linux", "n": c.ctx.hostname, "r": host.release, "v": host.version,
              "m": host.machine, "p": "unknown", "i": "unknown", "o": "GNU/Linux"}
    wanted = "snrvmo" if "a" in opts else "".join(k for k in "snrvmpio" if k in opts) or "s"
    await c.out(" ".join(values[k] for k in wanted) + "\n")
    return 0


def _ranges(spec: str) -> list[tuple[int, int]]:
    """A cut LIST ("1,3-4,5-") as 1-based inclusive ranges."""
    out: list[tuple[int, int]] = []
    for item in spec.split(","):
        match = re.fullmatch(r"(\d*)(-?)(\d*)", item)
        if match is None or not (match.group(1) or match.group(3)):
            bad = re.search(r"[^\d-]+", item)
            raise Usage(f"invalid number '{bad.group() if bad else item}'")
        low = int(match.group(1) or 1)
        high = int(match.group(3)) if match.group(3) else (1 << 62 if match.group(2) else low)
        out.append((low, high))
    return out


def _pick(items: list[bytes], ranges: list[tuple[int, int]]) -> list[bytes]:
    return [item for n, item in enumerate(items, 1) if any(lo <= n <= hi for lo, hi in ranges)]


def _cut_line(line: bytes, opts: dict[str, list[str]], ranges: list[tuple[int, int]]
              ) -> bytes | None:
    if "f" not in opts:
        return b"".join(_pick([line[i:i + 1] for i in range(len(line))], ranges))
    delim = opts.get("d", ["\t"])[-1].encode()[:1] or b"\t"
    if delim not in line:
        return None if "s" in opts else line
    return delim.join(_pick(line.split(delim), ranges))


@register("cut")
async def _cut(c: Call) -> int:
    opts, names = getopt(c.args, "b:c:d:f:sn")
    spec = next((opts[k][-1] for k in "bcf" if k in opts), None)
    if spec is None:
        raise Usage("expected a list of bytes, characters, or fields")
    ranges = _ranges(spec)

    async def use(data: bytes) -> None:
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        picked = [p for p in (_cut_line(line, opts, ranges) for line in lines) if p is not None]
        await c.stdout(b"".join(p + b"\n" for p in picked))

    return await each_operand(c, names, use)
