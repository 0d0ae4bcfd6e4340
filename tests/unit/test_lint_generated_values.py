"""The final lint and generated values that spell a secret word themselves."""

from __future__ import annotations

import re

from privacy.lint import lint_line


def test_a_generated_value_that_spells_a_secret_word_itself_is_not_a_suspect():
    """MariaDB's server_uid is base64 of a hash: about one server in a thousand has one that
    spells `key`, `pwd` or `auth` somewhere, on every line that names it (global variables,
    the error log's first line). The word must be said outside the generated value."""
    import base64
    import random

    rng = random.Random(18)
    spelled = 0
    for _ in range(3000):
        uid = base64.b64encode(rng.randbytes(20)).decode()
        for line in (f'  "server_uid": "{uid}",',
                     f"2026-12-03 13:45:46 0 [Note] Starting MariaDB 10.11.19 source revision "
                     f"5843d8475120241667a7ce0f8a1abb6c9b43a273 server_uid {uid} as process 8371"):
            assert lint_line(line) == [], line
        spelled += bool(re.search(r"pass|pwd|secret|token|key|auth|private|bearer|cookie", uid, re.I))
    assert spelled >= 1, "the sample holds values that spell a word (the test can fail)"
    planted = '  "server_uid": "o8rTejCEM1YXKEYmBjk6uuwkdewo=",'
    assert lint_line(planted) == []
    # Said outside the value, or as a generated token's written head, the word still counts.
    assert lint_line("key: Xy7QpL9zRt2VbN4mKd8sWqkeY")
    assert lint_line("api_key_Xy7QpL9zRt2VbN4mKd8sWq")
    assert lint_line('  "ssl_key": "o8rTejCEM1YXHNmBjk6uuwkdewo=",')
