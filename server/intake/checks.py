"""What the server makes of one sealed bundle: accepted, or quarantined with the reason.

The checks themselves are the bundle package's (`bundle.verify`: the age envelope to
its authenticated end, the format's rules and limits, the manifest's shape, signature,
every member's sha256), in one streaming pass; this module
adds the server's view: whose key signed it (enrolled for this customer or not), and
the manifest to index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from bundle import age, sign
from bundle.limits import Limits
from bundle.manifest_schema import printable
from bundle.verify import verify_bundle


@dataclass
class Verdict:
    status: str
    reason: Optional[str] = None
    signer: str = "unsigned"
    host: Optional[str] = None
    manifest: Dict[str, Any] = field(default_factory=dict)


#: Given a public key text, the host name it was enrolled under (or None).
EnrolledHost = Callable[[str], Optional[str]]


def _quarantine(reason: str) -> Verdict:
    return Verdict("quarantined", one_line(reason))


def one_line(reason: str, most: int = 500) -> str:
    """A reason fit for a header, a log line and a terminal: no control or invisible
    character (each is shown escaped), at most `most` characters."""
    text = printable(reason)
    return text if len(text) <= most else text[: most - 1] + "…"


def check(sealed: Path, identities: List[str], enrolled: EnrolledHost, limits: Limits) -> Verdict:
    if not age.is_age_file(sealed):
        return _quarantine("not an age file: bundles must be sealed to the ticket's recipient "
                           "(`mydiag upload` does it)")
    try:
        found = verify_bundle(sealed, identities, limits=limits)
    except age.AgeError as exc:
        if exc.kind == age.AgeError.NO_MATCH:
            return _quarantine("not sealed to this ticket's recipient (cannot unseal)")
        return _quarantine(f"cannot unseal: {exc}")
    if found.unreadable:
        what = ("cannot unseal" if found.unreadable_kind else
                "over a limit" if found.over_limit else "not a readable bundle")
        return _quarantine(f"{what}: {found.unreadable}")
    problems = []
    for label, paths in (("sha256 differs from the manifest", found.changed),
                         ("listed but missing", found.missing), ("not in the manifest", found.extra)):
        if paths:
            problems.append(f"{label}: {', '.join(paths)}")
    if problems:
        return _quarantine("; ".join(problems))
    if found.signed and not found.signature_valid:
        return _quarantine(f"manifest signature: {found.signature_problem}")
    signer = "unsigned"
    if found.signed and found.signer:
        host = enrolled(found.signer)
        signer = f"{host} {sign.fingerprint(found.signer)}" if host else \
            f"unknown signer {sign.fingerprint(found.signer)}"
    return Verdict("accepted", None, signer, found.host, found.manifest or {})
