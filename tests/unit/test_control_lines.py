"""A tunnel's control channel (recording/sessionwire.py): whatever way the bytes arrive,
the same messages come out; what is not a JSON object is passed over; a line that never
ends stops the reader once past its limit; and each read that brought bytes is heard."""

from __future__ import annotations

from typing import Iterator, List

from hypothesis import given, settings
from hypothesis import strategies as st

from recording import sessionwire

messages = st.lists(st.dictionaries(st.sampled_from(["op", "reason", "state"]),
                                    st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=3),
                    max_size=6)
noise = st.sampled_from([b"not json", b"[1, 2]", b"\"text\"", b"42", b"null", b"{", b""])


def source(data: bytes, cuts: List[int]) -> Iterator[bytes]:
    edges = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in zip(edges, edges[1:]):
        yield data[start:end]


def read(chunks: Iterator[bytes], limit=None):
    heard: List[int] = []
    recv = lambda n: next(chunks, b"")  # noqa: E731 - a recv that ends with b""
    got = list(sessionwire.control_messages(recv, heard=lambda: heard.append(1), limit=limit))
    return got, len(heard)


@given(messages, st.lists(noise, max_size=4), st.lists(st.integers(min_value=0), max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_same_messages_however_the_bytes_are_cut(sent, junk, cuts):
    lines = [sessionwire.control_line(m) for m in sent] + [j + b"\n" for j in junk]
    data = b"".join(lines)
    chunks = list(source(data, cuts))
    got, heard = read(iter(chunks))
    assert got == sent
    assert heard == len([c for c in chunks if c])


def test_a_line_that_never_ends_stops_the_reader_past_its_limit():
    endless = iter([b"x" * 4096] * 20 + [sessionwire.control_line({"op": "ping"})])
    got, heard = read(endless, limit=65536)
    assert got == [] and heard == 17  # 17 x 4096 is the first total past 65,536
    unbounded, _ = read(iter([b"x" * 4096] * 20 + [b"\n", sessionwire.control_line({"op": "ping"})]))
    assert unbounded == [{"op": "ping"}]
