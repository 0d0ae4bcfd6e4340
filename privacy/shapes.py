"""What a secret looks like when no name says so: password-hash families and token formats.

One table, read twice. `privacy.rules` turns it into the `password_hash` and
`known_token` rules that mask every match, and `privacy.lint` searches the finished
bundle for every family again, on its own, so a family the rules miss (a new context,
a rule that stopped too early) still stops the bundle. A family is added here once and
both sides know it.

Each shape has the lowercase needles every match holds (the pipeline runs the pattern
only on lines holding one; `probe` for a shape with no fixed word) and a pattern whose
group `v` is the secret. `context` shapes need the words around the value (a
`temporary password … :`), so their value alone is not distinctive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Pattern, Tuple

#: The characters of crypt(3)'s own base64 and of standard base64.
_C = r"[./0-9A-Za-z]"
_B64 = r"[A-Za-z0-9+/.=_-]"
#: A hash starts where no word or `$` continues into it.
_START = r"(?<![\w$])"


@dataclass(frozen=True)
class Shape:
    family: str
    #: What the lint says it found.
    what: str
    needles: Tuple[str, ...]
    pattern: Pattern[str]
    probe: Optional[Pattern[str]] = None


def _shape(family: str, what: str, needles: Tuple[str, ...], pattern: str, flags: int = 0,
           probe: Optional[str] = None) -> Shape:
    return Shape(family, what, needles, re.compile(pattern, flags),
                 re.compile(probe) if probe else None)


#: Password hashes, by family (crypt(3) families as glibc/libxcrypt, passlib, Django,
#: LDAP/Dovecot and MySQL/MariaDB write them).
PASSWORD_HASHES: Tuple[Shape, ...] = (
    _shape("mysql_native", "MySQL password hash", (),
           r"(?P<v>(?<![0-9A-Za-z*])\*[0-9A-Fa-f]{40}(?![0-9A-Za-z]))",
           probe=r"\*[0-9A-Fa-f]{40}"),
    # caching_sha2_password: `$A$005$`, a 20-byte salt of any bytes, 43 hash characters;
    # as SHOW CREATE USER prints it (hex) too.
    _shape("caching_sha2", "MySQL caching_sha2 hash", ("$a$",),
           r"(?P<v>\$A\$[0-9]{3}\$(?:.{20}" + _C + r"{43}|\S+))"),
    _shape("caching_sha2_hex", "MySQL caching_sha2 hash (hex)", ("0x2441",),
           r"(?P<v>0x244124303[0-9A-Fa-f]{40,})"),
    _shape("md5crypt", "md5-crypt password hash", ("$1$", "$apr1$"),
           _START + r"(?P<v>\$(?:1|apr1)\$" + _C + r"{0,8}\$" + _C + r"{22})"),
    _shape("bcrypt", "bcrypt password hash", ("$2$", "$2a$", "$2b$", "$2x$", "$2y$"),
           _START + r"(?P<v>\$2[abxy]?\$[0-9]{2}\$" + _C + r"{53})"),
    _shape("bcrypt_sha256", "bcrypt-sha256 password hash", ("$bcrypt-sha256$",),
           _START + r"(?P<v>\$bcrypt-sha256\$[\w=,]+\$" + _C + r"{22}\$" + _C + r"{31})"),
    _shape("sha_crypt", "sha256/sha512-crypt password hash", ("$5$", "$6$"),
           _START + r"(?P<v>\$[56]\$(?:rounds=[0-9]+\$)?[^\s$]{0,20}\$" + _C + r"{43,86})"),
    _shape("sha1crypt", "sha1-crypt password hash", ("$sha1$",),
           _START + r"(?P<v>\$sha1\$[0-9]+\$" + _C + r"{0,64}\$" + _C + r"{28})"),
    _shape("sunmd5", "SunMD5 password hash", ("$md5",),
           _START + r"(?P<v>\$md5(?:,rounds=[0-9]+)?\$" + _C + r"{0,8}\$\$?" + _C + r"{22})"),
    _shape("yescrypt", "yescrypt password hash", ("$y$", "$gy$"),
           _START + r"(?P<v>\$g?y\$" + _C + r"+\$" + _C + r"*\$" + _C + r"{43})"),
    _shape("scrypt", "scrypt password hash", ("$7$", "$scrypt$", "scrypt$"),
           _START + r"(?P<v>\$7\$" + _C + r"{11}[^\s$]*\$" + _C + r"{43}"
           r"|\$scrypt\$[\w=,]+\$[^\s$]+\$" + _B64 + r"{16,}"
           r"|scrypt\$[0-9]+\$[^\s$]+\$[0-9]+\$[0-9]+\$" + _B64 + r"{16,})"),
    _shape("argon2", "argon2 password hash", ("$argon2",),
           r"(?P<v>\$argon2(?:id|i|d)\$(?:v=[0-9]+\$)?m=[0-9]+,t=[0-9]+,p=[0-9]+[^\s$]*\$"
           + _B64 + r"+\$" + _B64 + r"{16,})"),
    _shape("pbkdf2", "PBKDF2 password hash", ("$pbkdf2", "pbkdf2_sha"),
           _START + r"(?P<v>\$pbkdf2(?:-sha(?:1|256|512))?\$[0-9]+\$[^\s$]+\$" + _B64 + r"{16,}"
           r"|pbkdf2_sha(?:1|256|512)\$[0-9]+\$[^\s$]+\$" + _B64 + r"{16,})"),
    _shape("django_digest", "Django salted digest", ("sha1$", "md5$"),
           _START + r"(?P<v>(?:sha1|md5)\$[A-Za-z0-9]*\$[0-9a-f]{32,40})(?![0-9a-f])"),
    _shape("ldap_scheme", "LDAP/Dovecot password hash", ("{ssha", "{sha", "{smd5", "{md5",
                                                          "{crypt", "{pbkdf2", "{argon2",
                                                          "{blf-crypt", "{bcrypt"),
           r"(?P<v>\{(?:S?SHA(?:256|384|512)?|S?MD5|CRYPT|PBKDF2[\w-]*|ARGON2[\w-]*|BLF-CRYPT"
           r"|BCRYPT|SHA(?:256|512)-CRYPT)\}[A-Za-z0-9+/=$.,-]{8,})", re.I),
    # MariaDB's ed25519 plugin keeps a 43-character base64 string; it is distinctive only
    # next to the plugin's name (`IDENTIFIED VIA ed25519 USING '…'`).
    _shape("ed25519_auth", "ed25519 authentication string", ("ed25519",),
           r"ed25519['\"`]?\s+(?:USING|AS|BY)\s+(?:PASSWORD\s*\(\s*)?['\"]"
           r"(?P<v>[A-Za-z0-9+/]{43})['\"]", re.I),
)

#: Token formats with a fixed prefix: the project's own, age identities, cloud and
#: code-hosting providers.
TOKENS: Tuple[Shape, ...] = (
    # server/auth.py: "mda_", "mde_", "mdu_" + token_urlsafe(32).
    _shape("mydiag_token", "mydiag API token", ("mda_", "mde_", "mdu_"),
           r"(?<![A-Za-z0-9_-])(?P<v>md[aeu]_[A-Za-z0-9_-]{20,100})(?![A-Za-z0-9_-])"),
    _shape("age_identity", "age secret key", ("age-secret-key-1",),
           r"(?P<v>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})", re.I),
    _shape("google_api_key", "Google API key", ("aiza",), r"(?P<v>\bAIza[0-9A-Za-z_-]{35})"),
    _shape("google_oauth", "Google OAuth token", ("ya29.",), r"(?P<v>\bya29\.[0-9A-Za-z_-]{20,})"),
    _shape("github_token", "GitHub token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
           r"(?P<v>\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,})"),
    _shape("slack_token", "Slack token", ("xox",), r"(?P<v>\bxox[abposr]-[A-Za-z0-9-]{10,})"),
    _shape("stripe_key", "Stripe key", ("_live_",), r"(?P<v>\b[rs]k_live_[0-9A-Za-z]{20,})"),
    _shape("gitlab_token", "GitLab token", ("glpat-",), r"(?P<v>\bglpat-[0-9A-Za-z_-]{20,})"),
    _shape("npm_token", "npm token", ("npm_",), r"(?P<v>\bnpm_[0-9A-Za-z]{36})"),
    _shape("jwt", "JSON web token", ("eyj",),
           r"(?P<v>\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"),
)

#: Secrets known by the words before them, which a name-based rule cannot see.
CONTEXTS: Tuple[Shape, ...] = (
    # MySQL 5.7+ `--initialize`: "A temporary password is generated for root@localhost: …".
    _shape("temporary_password", "generated temporary password", ("temporary password",),
           r"temporary password is generated for \S+?:[ \t]+(?P<v>\S+)", re.I),
)

ALL: Tuple[Shape, ...] = PASSWORD_HASHES + TOKENS + CONTEXTS


@dataclass(frozen=True)
class Family:
    """Shapes searched as one pattern (one pass over a line instead of one per shape): the
    value of `shapes[i]` is group `v{i}`."""

    shapes: Tuple[Shape, ...]
    needles: Tuple[str, ...]
    pattern: Pattern[str]
    probe: Optional[Pattern[str]]

    def found(self, match: re.Match[str]) -> Tuple[Shape, str]:
        """(the shape that matched, its value)."""
        group, value = next((g, v) for g, v in match.groupdict().items() if v is not None)
        return self.shapes[int(group[1:])], value


def _family(group: Tuple[Shape, ...]) -> Family:
    parts = []
    for i, shape in enumerate(group):
        body = shape.pattern.pattern.replace("(?P<v>", f"(?P<v{i}>")
        parts.append(f"(?i:{body})" if shape.pattern.flags & re.I else f"(?:{body})")
    probes = [shape.probe.pattern for shape in group if shape.probe is not None]
    return Family(group, tuple(sorted({n for shape in group for n in shape.needles})),
                  re.compile("|".join(parts)), re.compile("|".join(probes)) if probes else None)


HASH_FAMILY = _family(PASSWORD_HASHES)
TOKEN_FAMILY = _family(TOKENS)
CONTEXT_FAMILY = _family(CONTEXTS)
FAMILIES: Tuple[Family, ...] = (HASH_FAMILY, TOKEN_FAMILY, CONTEXT_FAMILY)


def masked(value: str) -> bool:
    """Already removed: what a rule leaves in a secret's place."""
    return "<redacted" in value or value.strip("\"'") in ("", "?") or set(value) <= {"*"}
