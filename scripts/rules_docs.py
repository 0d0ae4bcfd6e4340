"""Writes docs/rules/ from the report's rules (see report/ruledocs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report.ruledocs import pages  # noqa: E402


def main() -> int:
    folder = ROOT / "docs" / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for stale in folder.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (folder / name).write_text(text, encoding="utf-8")
    print(f"docs/rules: {len(wanted) - 1} rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
