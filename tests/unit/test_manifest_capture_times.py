"""Every file of a bundle says when it was captured: the manifest's `captured_at`, checked
like every other time stamp before a reader uses it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bundle.manifest import FileEntry, Manifest, stamp
from bundle.manifest_schema import ManifestError, parse


def _manifest(**file_keys) -> bytes:
    entry = {"path": "mysql/identity.json", "bytes": 2, "sha256": "0" * 64, "redactions": {},
             **file_keys}
    return json.dumps({"host": "db1", "profile": "standard", "started": "2026-01-02T03:04:05Z",
                       "files": [entry]}).encode()


def test_stamp_is_utc_with_milliseconds_whatever_zone_the_moment_is_in():
    moment = dt.datetime(2026, 1, 2, 8, 34, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert stamp(moment) == "2026-01-02T03:04:05.678Z"
    assert stamp().endswith("Z") and len(stamp()) == len("2026-01-02T03:04:05.678Z")


@pytest.mark.parametrize("value", ["2026-01-02T03:04:05.678Z", "2026-01-02T03:04:05Z", None])
def test_a_capture_time_in_utc_or_none_is_accepted(value):
    document = parse(_manifest(captured_at=value))
    assert document["files"][0]["captured_at"] == value


def test_a_manifest_without_capture_times_still_reads():
    assert "captured_at" not in parse(_manifest())["files"][0]


@pytest.mark.parametrize("value", [12, ["2026-01-02T03:04:05Z"], "yesterday",
                                   "2026-01-02 03:04:05", "2026-01-02T03:04:05Z\nx"])
def test_a_capture_time_that_is_not_a_utc_time_is_refused_with_its_field(value):
    with pytest.raises(ManifestError, match=r"files\[0\]\.captured_at"):
        parse(_manifest(captured_at=value))


def test_capture_times_survive_a_round_trip_through_the_manifest():
    manifest = Manifest(host="db1", profile="standard", started="2026-01-02T03:04:05Z")
    manifest.files = [FileEntry("os/host.json", 2, "0" * 64, captured_at="2026-01-02T03:04:06.001Z")]
    again = Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again.files[0].captured_at == "2026-01-02T03:04:06.001Z"
