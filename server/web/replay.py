"""A session's replay page: the transcript of what the engineer was shown, and the asciicast.

The recordings are the gateway's (`DATA/sessions/<session>/<part>.cast`, see
recording/asciicast.py), in the blob store once each part is finished
(server/storage/recordings.py): read from this disk when they are still here, else from the store.
The page shows each part's output as text lines with the moment
each line began, every terminal escape sequence and control character removed and the
rest escaped by the template (output came from the customer's host: it is customer
input), what was typed, and whether the part's hash chain verifies against the head the
audit log kept. `recording.cast?part=N` downloads a part as it was recorded. A session of
another ticket answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import datetime
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from recording import asciicast
from server.gateway import records as sessions
from server.storage import audit, recordings
from server.storage.blobs import StoreUnavailable
from server.storage.db import Tx
from server.storage.state import State
from server.support import tickets
from server.web import access, render, urls
from server.web.settings import WebSettings

#: What one page shows of a part at most; the download has everything.
MAX_OUTPUT_CHARS = 2_000_000
MAX_LINES = 20_000
MAX_LINE_CHARS = 4_000
#: An escape sequence longer than this is not one: it ends there.
_MAX_ESCAPE = 4096

CAST_TYPE = "application/x-asciicast"


def recording_url(ticket_id: str, session_id: str, part: Optional[int] = None) -> str:
    path = f"/tickets/{urllib.parse.quote(ticket_id, safe='')}/sessions/" \
           f"{urllib.parse.quote(session_id, safe='')}/recording.cast"
    return path if part is None else f"{path}?part={int(part)}"


@dataclass
class Line:
    moment: float
    text: str

    @property
    def clock(self) -> str:
        return asciicast.clock(self.moment)


@dataclass
class Transcript:
    """Terminal output turned into plain lines: escape sequences (CSI, OSC, DCS, charset
    selection, 8-bit CSI) and control characters dropped, `\\r` starting the line over,
    backspace deleting, each line stamped with the moment its first character came."""

    lines: List[Line] = field(default_factory=list)
    truncated: bool = False
    _current: List[str] = field(default_factory=list)
    _start: Optional[float] = None
    _mode: str = ""
    _escape_length: int = 0
    _carriage: bool = False
    _chars: int = 0

    def feed(self, moment: float, text: str) -> None:
        if self.truncated:
            return
        if self._chars + len(text) > MAX_OUTPUT_CHARS:
            text = text[:max(0, MAX_OUTPUT_CHARS - self._chars)]
            self.truncated = True
        self._chars += len(text)
        for char in text:
            if self._mode:
                self._escape(char)
            else:
                self._plain(moment, char)
            if len(self.lines) >= MAX_LINES:
                self.truncated = True
                return

    def _escape(self, char: str) -> None:
        self._escape_length += 1
        mode = self._mode
        if self._escape_length > _MAX_ESCAPE:
            self._mode = ""
        elif mode == "esc":
            self._mode = {"[": "csi", "]": "string", "P": "string", "X": "string", "^": "string",
                          "_": "string"}.get(char, "one" if char in "()*+-./#%" else "")
        elif mode == "one":
            self._mode = ""
        elif mode == "csi":
            if "@" <= char <= "~":
                self._mode = ""
        elif mode == "string":
            if char == "\x07":
                self._mode = ""
            elif char == "\x1b":
                self._mode = "string-esc"
        elif mode == "string-esc":
            self._mode = "" if char == "\\" else "string"

    def _plain(self, moment: float, char: str) -> None:
        if char == "\x1b":
            self._mode, self._escape_length = "esc", 0
        elif char == "\x9b":
            self._mode, self._escape_length = "csi", 0
        elif char == "\n":
            self._carriage = False
            self._end_line(moment)
        elif char == "\r":
            self._carriage = True
        elif char in "\x08\x7f":
            if self._current:
                self._current.pop()
        elif char == "\t" or (char >= " " and not "\x80" <= char <= "\x9f"):
            if self._carriage:
                self._current, self._carriage = [], False
            if self._start is None:
                self._start = moment
            if len(self._current) < MAX_LINE_CHARS:
                self._current.append(char)

    def _end_line(self, moment: float) -> None:
        self.lines.append(Line(self._start if self._start is not None else moment, "".join(self._current)))
        self._current, self._start = [], None

    def finish(self, moment: float) -> List[Line]:
        if self._current:
            self._end_line(moment)
        # Trailing blank lines (a prompt's newline, the end of a command) carry nothing.
        while self.lines and not self.lines[-1].text.strip():
            self.lines.pop()
        return self.lines


def transcript(cast: Path) -> Tuple[List[Line], bool]:
    """(the lines of what was shown, whether the page cut them short)."""
    reader = Transcript()
    last = 0.0
    for moment, kind, text in asciicast.events(cast):
        last = moment
        if kind == "o":
            reader.feed(moment, text)
            if reader.truncated:
                break
    return reader.finish(last), reader.truncated


def _anchors(tx: Tx, ticket_id: str, session_id: str) -> Dict[str, str]:
    """Each part's final chain head as the append-only audit log kept it, by file name."""
    return {e["detail"].get("file"): e["detail"].get("chain_head")
            for e in audit.entries(tx, ticket_id, limit=100000)
            if e["subject"] == session_id and e["action"] == "session.part" and e["detail"].get("file")}


Found = Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], Dict[str, str]]


def _find(tx: Tx, ticket_id: str, session_id: str) -> Found:
    """(the ticket, its session `session_id`, the session's chain anchors)."""
    ticket = tickets.get_ticket(tx, ticket_id)
    session = sessions.get(tx, session_id) if ticket else None
    if session is not None and session["ticket"] != ticket_id:
        session = None
    return ticket, session, (_anchors(tx, ticket_id, session_id) if session else {})


def _started(cast: Path) -> str:
    stamp = asciicast.header(cast).get("timestamp")
    if not isinstance(stamp, (int, float)):
        return "–"
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _part(cast: Path, anchors: Dict[str, str], ticket_id: str, session_id: str) -> Dict[str, Any]:
    lines, truncated = transcript(cast)
    verdict = asciicast.verify(cast, anchors.get(cast.name))
    head = asciicast.header(cast).get("mydiag") or {}
    return {"number": cast.stem, "lines": lines, "truncated": truncated, "verified": verdict.ok,
            "verdict": verdict.describe(), "started": _started(cast),
            "engineer": str(head.get("engineer") or ""), "command": str(head.get("command") or ""),
            "commands": [(asciicast.clock(m), text) for m, text in asciicast.commands(cast)][:MAX_LINES],
            "download": recording_url(ticket_id, session_id, int(cast.stem))}


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    def folder(session_id: str) -> Path:
        return state.data.path / "sessions" / session_id

    def read_parts(session_id: str, anchors: Dict[str, str], ticket_id: str) -> List[Dict[str, Any]]:
        # Each part from this disk, else from the blob store (server/storage/recordings.py).
        with recordings.local_parts(state.db, state.store, state.data.path / "sessions", state.data.tmp,
                                    session_id) as casts:
            return [_part(c, anchors, ticket_id, session_id) for c in casts]

    async def lookup(request: Request, ticket_id: str, session_id: str) -> Any:
        engineer = await access.signed_in(request, state, settings)
        if isinstance(engineer, Response):
            return engineer
        ticket, session, anchors = await access.db(state, False, _find, ticket_id, session_id)
        if ticket is None:
            return render.message(request, 404, "No such ticket", "There is no ticket with this id.")
        if session is None:
            return render.message(request, 404, "No such session",
                                  "This ticket has no remote session with this id.")
        return ticket, session, anchors

    @router.get("/tickets/{ticket_id}/sessions/{session_id}/replay")
    async def replay_page(request: Request, ticket_id: str, session_id: str) -> Response:
        found = await lookup(request, ticket_id, session_id)
        if isinstance(found, Response):
            return found
        ticket, session, anchors = found
        try:
            parts = await run_in_threadpool(read_parts, session_id, anchors, ticket_id)
        except StoreUnavailable:
            return render.message(request, 503, "Recording unavailable",
                                  "Part of this recording is in the blob store, which cannot be reached "
                                  "right now. Try again in a moment.")
        return render.page(request, "replay.html", title=f"Replay of session {session_id}", ticket=ticket,
                           session=session, parts=parts, ticket_url=urls.ticket(ticket_id))

    @router.get("/tickets/{ticket_id}/sessions/{session_id}/recording.cast")
    async def recording(request: Request, ticket_id: str, session_id: str, part: Optional[str] = None,
                        ) -> Response:
        found = await lookup(request, ticket_id, session_id)
        if isinstance(found, Response):
            return found
        casts = asciicast.parts(folder(session_id))
        stored = await access.db(state, False, recordings.rows, session_id)
        names = sorted({c.name for c in casts} | {r.file for r in stored if Path(r.file).stem.isdigit()},
                       key=lambda name: int(Path(name).stem))
        if part is not None:
            names = [n for n in names if Path(n).stem == part.strip()]
        if not names:
            which = f" part {part[:20]}" if part else ""
            return render.message(request, 404, "No recording", f"This session has no recording{which}.")
        name = names[0]
        filename = f"{session_id}-{Path(name).stem}.cast"
        local = folder(session_id) / name
        if local.is_file():
            response: Response = FileResponse(local, media_type=CAST_TYPE, filename=filename,
                                              content_disposition_type="attachment")
            return render.secure(response)
        row = next(r for r in stored if r.file == name)
        try:
            source = await run_in_threadpool(_opened, state, row.cast_sha256)
        except StoreUnavailable:
            return render.message(request, 503, "Recording unavailable",
                                  "This recording is in the blob store, which cannot be reached right now.")
        response = StreamingResponse(_chunks(source), media_type=CAST_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(row.bytes)})
        return render.secure(response)


def _opened(state: State, sha256: str) -> Any:
    """The stored cast, its first megabyte read already (a store that is down fails here, not mid-way)."""
    source = state.store.open(sha256)
    first = source.read(1 << 20)
    return source, first


async def _chunks(opened: Any) -> AsyncIterator[bytes]:
    source, first = opened
    try:
        chunk = first
        while chunk:
            yield chunk
            chunk = await run_in_threadpool(source.read, 1 << 20)
    finally:
        source.close()
