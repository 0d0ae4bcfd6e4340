"""Session recordings: asciicast v2 lines both sides write alike, the hash chain that
finds an edit, a removal or a cut, and the typed lines `--commands` shows."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from recording import asciicast, sessionwire


def record(folder, events, name="1", started=None):
    started = time.time() if started is None else started
    header = asciicast.header_line(80, 24, started, "t", {"TERM": "xterm"}, {"command": None})
    recorder = asciicast.Recorder(folder / name, header)
    for kind, micros, data in events:
        recorder.event(kind, micros, data)
    return recorder, recorder.close(events[-1][1] if events else 0)


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_the_fast_path_writes_exactly_what_json_would(data):
    fast = asciicast._plain_json(data)
    if fast is not None:
        assert b'"' + fast + b'"' == json.dumps(data.decode()).encode()


def test_two_recorders_fed_the_same_events_write_the_same_bytes(tmp_path):
    events = [("o", 10, b"caf\xc3"), ("o", 20, b"\xa9 ok\r\n"), ("i", 30, b"ls\r"), ("o", 1_500_000, b"\xff"),
              ("o", 2_600_000, b'quote " and \\ and \x1b[0m'), ("i", 2_700_000, b"exit\r")]
    # One start time for both: two calls of time.time() can fall in different seconds.
    started = time.time()
    a, (lines_a, head_a) = record(tmp_path / "a", events, started=started)
    b, (lines_b, head_b) = record(tmp_path / "b", events, started=started)
    assert (a.cast_path.read_bytes(), a.chain_path.read_bytes()) == (b.cast_path.read_bytes(),
                                                                      b.chain_path.read_bytes())
    assert (lines_a, head_a) == (lines_b, head_b) == (6, asciicast.verify(a.cast_path).head)
    lines = a.cast_path.read_text().splitlines()
    assert json.loads(lines[1]) == [0.00001, "o", "caf"] and json.loads(lines[2])[2] == "é ok\r\n"
    assert json.loads(lines[4])[2] == "\ufffd"
    assert asciicast.verify(a.cast_path, head_a).ok


def test_an_edit_a_removal_and_a_cut_are_each_found(tmp_path):
    events = [("o", n * 400_000, f"line {n}\r\n".encode()) for n in range(20)]
    recorder, (_lines, head) = record(tmp_path, events)
    cast = recorder.cast_path
    original = cast.read_bytes()
    lines = original.splitlines(keepends=True)

    cast.write_bytes(original.replace(b"line 7", b"line 8"))
    verdict = asciicast.verify(cast, head)
    assert not verdict.ok and "changed or removed" in verdict.describe()

    cast.write_bytes(b"".join(lines[:5] + lines[6:]))
    assert not asciicast.verify(cast, head).ok

    cast.write_bytes(b"".join(lines[:-3]))
    verdict = asciicast.verify(cast)
    assert not verdict.ok and "TAMPERED" in verdict.describe()

    cast.write_bytes(original + b'[9.0, "o", "added"]\n')
    assert not asciicast.verify(cast).ok

    cast.write_bytes(original)
    recorder.chain_path.write_text(recorder.chain_path.read_text().replace("END ", ""))
    unfinished = asciicast.verify(cast)
    assert not unfinished.ok and not unfinished.problems and "NOT VERIFIED" in unfinished.describe()


def test_the_typed_lines_come_back_with_their_edits(tmp_path):
    events = [("i", 1_000_000, b"SELEC"), ("i", 1_100_000, b"T 1\x7f2;\r"), ("i", 2_000_000, b"\x1b[Ash\x15"),
              ("i", 2_500_000, b"exit\r"), ("i", 3_000_000, b"half typed")]
    recorder, _ = record(tmp_path, events)
    assert [line for _, line in asciicast.commands(recorder.cast_path)] == [
        "SELECT 2;", "exit", "half typed  (not sent)"]


def test_frames_survive_any_split(tmp_path):
    frames = [sessionwire.json_frame(sessionwire.OPEN, {"engineer": "alice"}),
              sessionwire.timed(sessionwire.OUT, 123, b"x" * 70_000), sessionwire.frame(sessionwire.EOF)]
    stream = b"".join(frames)
    pieces = [stream[i:i + 777] for i in range(0, len(stream), 777)]
    reader = sessionwire.Reader(lambda _n: pieces.pop(0) if pieces else b"")
    kind, payload = reader.next()
    assert kind == sessionwire.OPEN and sessionwire.parse_json(payload) == {"engineer": "alice"}
    kind, payload = reader.next()
    assert kind == sessionwire.OUT and sessionwire.split_timed(payload) == (123, b"x" * 70_000)
    assert reader.next() == (sessionwire.EOF, b"") and reader.next() is None
