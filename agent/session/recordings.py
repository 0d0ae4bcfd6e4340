"""A session's recordings on this host: one asciicast per engineer channel, and its anchors.

Each part's chain head, as the holder wrote it to session.json when the channel closed, is
the anchor `recording.asciicast.replay` checks the part's hash chain against.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from agent.session import state as session_state


def parts(session_id: str, part: Optional[int] = None) -> Tuple[List[Any], Dict[str, Any]]:
    """(the session's casts, or only the N-th; each file's anchor); ValueError for a bad id."""
    from recording import asciicast

    folder = session_state.folder(session_id)
    data = session_state.load(session_id) or {}
    anchors = {p.get("file"): p.get("chain_head") for p in data.get("parts") or [] if p.get("file")}
    casts: List[Any] = asciicast.parts(folder) if folder.is_dir() else []
    if part is not None:
        casts = [c for c in casts if c.stem == str(part)]
    return casts, anchors
