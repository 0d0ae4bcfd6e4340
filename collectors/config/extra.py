"""Files the user names with `mydiag collect --config-file PATH`, copied as text.

Option files (a `[group]` or `!include` inside) are read like the server's own,
following includes; anything else is copied as it is, within the same bounds.
"""

from __future__ import annotations

import re
from typing import Iterator

from collectors.config.option_files import add_parser_notes, copy_path
from collectors.mysql import optionfile
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

COPY_ROOT = "config/extra"
_LIMIT = 1 << 20
_OPTION_FILE = re.compile(rb"^\s*(\[[^\]\n]+\]|!include)", re.M)


@collector("config.extra_files", profiles=PROFILES, timeout=10)
def extra_files(ctx: Context) -> Iterator[Artifact]:
    """Files added with --config-file (option files with their includes)."""
    if not ctx.config_files:
        raise Skip("no --config-file given")
    copied = set()
    for path in ctx.config_files:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_LIMIT + 1)
        except IsADirectoryError:
            ctx.notes.add(f"--config-file {path}: a directory, not a file", partial=True)
            continue
        except OSError as exc:
            denied = isinstance(exc, PermissionError)
            ctx.notes.add(f"--config-file {path}: cannot read ({exc.strerror})"
                          + ("; run as root to include it" if denied else ""), partial=True)
            continue
        if _OPTION_FILE.search(raw[:_LIMIT]) and not optionfile.looks_binary(raw):
            parsed = optionfile.read([path])
            add_parser_notes(ctx, parsed.notes)
            texts = parsed.texts
        else:
            texts = {path: _plain(path, raw, ctx)} if not optionfile.looks_binary(raw) else {}
            if not texts:
                ctx.notes.add(f"--config-file {path}: binary content, not included")
        for name, text in texts.items():
            target = copy_path(COPY_ROOT, name)
            if target.startswith(f"{COPY_ROOT}/by-hash/") and target not in copied:
                shown = ascii(name)[1:-1]
                ctx.notes.add(f"{shown} is copied as {target}: its path cannot name a bundle member")
            if target not in copied and text is not None:
                copied.add(target)
                yield Artifact.text(target, text)


def _plain(path: str, raw: bytes, ctx: Context) -> str:
    if len(raw) > _LIMIT:
        ctx.notes.add(f"--config-file {path}: larger than 1 MiB, only the first MiB included")
        raw = raw[:_LIMIT]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        ctx.notes.add(f"--config-file {path}: not UTF-8, read as Latin-1")
        return raw.decode("latin-1")
