"""`mydiag session grant --json` prints one event a line even when the tunnel and its channels
log at the same moment from their own threads (two events once came out as `{…}{…}`)."""

from __future__ import annotations

import importlib
import json
import threading


def test_events_logged_at_once_from_many_threads_are_whole_lines(capfd):
    session = importlib.import_module("agent.commands.session")
    log = session._printer(True)
    start = threading.Barrier(8)

    def burst(n: int) -> None:
        start.wait()
        for i in range(300):
            log(f"thread {n} event {i} " + "x" * 200)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capfd.readouterr().out.split("\n")
    assert lines[-1] == ""
    events = [json.loads(line)["event"] for line in lines[:-1]]
    assert len(events) == 8 * 300 and len(set(events)) == 8 * 300
