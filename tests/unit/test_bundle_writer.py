"""The writer never replaces a bundle: names are per second, collections can be faster."""

from __future__ import annotations

import json

from bundle import age
from bundle.manifest import Manifest
from bundle.reader import members
from bundle.writer import BundleWriter

NAME = "mydiag-db1-20260101T000005Z.tar.zst"


def _write(folder, marker: str, recipients=None):
    writer = BundleWriter(folder)
    writer.add("mysql/identity.json", json.dumps({"marker": marker}).encode())
    manifest = Manifest(host="db1", profile="quick", started="2026-01-01T00:00:00Z",
                        finished="2026-01-01T00:00:05Z")
    return writer.finish(manifest, NAME, recipients=recipients)


def _marker(path) -> str:
    files = {info.name: handle.read() for info, handle in members(path) if handle is not None}
    return json.loads(files["mysql/identity.json"])["marker"]


def test_bundles_of_the_same_second_get_their_own_names(tmp_path):
    first, second, third = (_write(tmp_path, m) for m in ("one", "two", "three"))
    assert [first.name, second.name, third.name] == [
        NAME, NAME.replace("Z.tar", "Z-2.tar"), NAME.replace("Z.tar", "Z-3.tar")]
    assert [_marker(p) for p in (first, second, third)] == ["one", "two", "three"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name, third.name])


def test_a_sealed_bundle_does_not_take_the_name_of_a_plain_one(tmp_path):
    _, recipient = age.generate_identity()
    plain = _write(tmp_path, "plain")
    sealed = _write(tmp_path, "sealed", [recipient])
    assert plain.name == NAME
    assert sealed.name == NAME.replace("Z.tar", "Z-2.tar") + ".age"
    again = _write(tmp_path, "again")
    assert again.name == NAME.replace("Z.tar", "Z-3.tar")
