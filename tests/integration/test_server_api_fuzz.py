"""The API fuzzed from its own OpenAPI document (schemathesis): no request gets a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

HOOKS = '''
import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def _offset_stream(ctx, value):
    return value if isinstance(value, bytes) else str(value).encode()
'''


def test_fuzzing_the_openapi_document_never_gets_a_server_error(support, tmp_path):
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.fail("schemathesis is part of the dev extra: pip install -e '.[dev,server]'")
    ticket = support.ticket()
    (tmp_path / "fuzz_hooks.py").write_text(HOOKS)
    # A real ticket id, so the fuzzer reaches past "no such ticket" into uploads and bundles.
    (tmp_path / "schemathesis.toml").write_text(f'[parameters]\n"path.ticket_id" = "{ticket["id"]}"\n')
    done = subprocess.run(
        [str(st), "run", f"{support.url}/api/v1/openapi.json", "--checks", "not_a_server_error",
         "--header", f"Authorization: Bearer {support.admin_token}", "--max-examples", "20",
         "--max-time", "25", "--seed", "5"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout
    assert '" 500' not in support.logs()
