"""SPDY/3.1 framing, frame by frame, and the parser against any split of the bytes."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiocri.streaming import _spdy as spdy


def test_dictionary_shape() -> None:
    # SPDY/3's dictionary: 1423 bytes, length-prefixed words first, raw text last
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_control_frame_bytes() -> None:
    assert spdy.encode(spdy.Ping(1)) == bytes.fromhex("80030006" "00000004" "00000001")
    assert spdy.encode(spdy.RstStream(3, spdy.CANCEL)) == bytes.fromhex(
        "80030003" "00000008" "00000003" "00000005")
    assert spdy.encode(spdy.WindowUpdate(0, 65536)) == bytes.fromhex(
        "80030009" "00000008" "00000000" "00010000")
    assert spdy.encode(spdy.GoAway(7, 0)) == bytes.fromhex("80030007" "00000008" "00000007"
                                                           "00000000")
    assert spdy.encode(spdy.Settings({7: 1 << 20})) == bytes.fromhex(
        "80030004" "0000000c" "00000001" "00000007" "00100000")


def test_data_frame_bytes() -> None:
    assert spdy.encode(spdy.Data(5, b"hi")) == bytes.fromhex("00000005" "00000002") + b"hi"
    assert spdy.encode(spdy.Data(5, b"", fin=True)) == bytes.fromhex("00000005" "01000000")


def test_syn_stream_header_block_is_deflated_with_the_dictionary() -> None:
    raw = spdy.encode(spdy.SynStream(1, {"streamtype": "error"}))
    first, flags_length = struct.unpack("!II", raw[:8])
    assert first == 0x80030001 and flags_length == len(raw) - 8
    stream_id, associated, priority, slot = struct.unpack("!IIBB", raw[8:18])
    assert (stream_id, associated, priority, slot) == (1, 0, 0, 0)
    inflater = zlib.decompressobj(zdict=spdy.DICTIONARY)
    block = inflater.decompress(raw[18:])
    assert block == struct.pack("!I", 1) + struct.pack("!I", 10) + b"streamtype" + struct.pack(
        "!I", 5) + b"error"
    # without the dictionary the block does not inflate: it really is primed with it
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(raw[18:])


def test_header_compression_is_one_stream_per_direction() -> None:
    encoder, parser = spdy.FrameEncoder(), spdy.FrameParser()
    first = encoder.encode(spdy.SynStream(1, {"streamtype": "stdout", "port": "80"}))
    second = encoder.encode(spdy.SynStream(3, {"streamtype": "stdout", "port": "80"}))
    assert len(second) < len(first)  # the second block refers back to the first
    assert parser.feed(first + second) == [
        spdy.SynStream(1, {"streamtype": "stdout", "port": "80"}),
        spdy.SynStream(3, {"streamtype": "stdout", "port": "80"}),
    ]
    # a parser that missed the first block cannot read the second
    lost = spdy.FrameParser()
    assert lost.feed(second) == [] and isinstance(lost.error, spdy.ProtocolError)


def test_flags_round_trip() -> None:
    frames = [spdy.SynStream(9, {"a": "b"}, fin=True, unidirectional=True, associated_id=3,
                             priority=5),
              spdy.SynReply(9, {"x": "1\x002"}, fin=True), spdy.Headers(9, {}, fin=False)]
    encoder, parser = spdy.FrameEncoder(), spdy.FrameParser()
    assert parser.feed(b"".join(encoder.encode(f) for f in frames)) == frames


def test_bad_input_sets_the_error_after_the_good_frames() -> None:
    good = spdy.encode(spdy.Data(1, b"status", fin=True))
    for bad, words in (
        (bytes.fromhex("80020006" "00000004" "00000001"), "version 2"),
        (bytes.fromhex("80030003" "00000004" "00000001"), "truncated"),
        (bytes.fromhex("80030002" "00000008" "00000001") + b"junk", "inflate"),
    ):
        parser = spdy.FrameParser()
        assert parser.feed(good + bad + good) == [spdy.Data(1, b"status", fin=True)]
        assert parser.error is not None and words in str(parser.error)
        assert parser.feed(good) == []  # nothing after the error


def test_unknown_control_frames_are_skipped() -> None:
    parser = spdy.FrameParser()
    unknown = bytes.fromhex("80030063" "00000002") + b"??"
    assert parser.feed(unknown + spdy.encode(spdy.Ping(2))) == [spdy.Ping(2)]
    assert parser.error is None


def test_partial_frames_wait_for_their_bytes() -> None:
    raw = spdy.encode(spdy.Data(1, b"x" * 100, fin=True))
    parser = spdy.FrameParser()
    assert parser.feed(raw[:7]) == []
    assert parser.feed(raw[7:50]) == []
    assert parser.feed(raw[50:]) == [spdy.Data(1, b"x" * 100, fin=True)]


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        spdy.encode(spdy.Data(1, bytes(spdy.MAX_LENGTH + 1)))


stream_ids = st.integers(min_value=1, max_value=0x7FFFFFFF)
header_blocks = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
    st.text(max_size=20).filter(lambda v: "\x00" not in v), max_size=4)
frames = st.one_of(
    st.builds(spdy.Data, stream_ids, st.binary(max_size=300), st.booleans()),
    st.builds(spdy.SynStream, stream_ids, header_blocks, st.booleans(), st.booleans(),
              stream_ids, st.integers(0, 7)),
    st.builds(spdy.SynReply, stream_ids, header_blocks, st.booleans()),
    st.builds(spdy.Headers, stream_ids, header_blocks, st.booleans()),
    st.builds(spdy.RstStream, stream_ids, st.integers(1, 11)),
    st.builds(spdy.Settings, st.dictionaries(st.integers(1, 8), st.integers(0, 2**32 - 1),
                                             max_size=3)),
    st.builds(spdy.Ping, st.integers(0, 2**32 - 1)),
    st.builds(spdy.GoAway, stream_ids, st.integers(0, 2)),
    st.builds(spdy.WindowUpdate, st.integers(0, 0x7FFFFFFF), st.integers(1, 0x7FFFFFFF)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(frames, max_size=12), st.lists(st.integers(0, 4000), max_size=8))
def test_any_frames_any_split_parse_back(sent: list[spdy.Frame], cuts: list[int]) -> None:
    encoder = spdy.FrameEncoder()
    wire = b"".join(encoder.encode(frame) for frame in sent)
    points = sorted({min(c, len(wire)) for c in cuts})
    parser, got = spdy.FrameParser(), []
    start = 0
    for point in [*points, len(wire)]:
        got += parser.feed(wire[start:point])
        start = point
    assert got == sent
