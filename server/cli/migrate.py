"""`mydiag-server migrate`: move an SQLite + local-folder installation to PostgreSQL and/or S3.

The work is server/storage/migrate.py; this module declares the command and prints the
summary. The S3 options are `init --blob-store s3`'s, parsed by the same function (main.py
hands it over, so that the command modules do not import each other).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from server import exitcodes
from server.cli.common import Failure, _emit, command, json_option
from server.config import BlobSettings, DataDir, safe_url


def register(sub: Any, blob_settings: Callable[[argparse.Namespace], BlobSettings]) -> None:
    def run(args: argparse.Namespace) -> int:
        return cmd_migrate(args, blob_settings)

    p = command(sub, "migrate", "move this installation to PostgreSQL and/or an S3 store (stop the "
                "server first; the old database and blobs stay as a backup)", run)
    p.add_argument("--to-database", metavar="URL", help="the PostgreSQL database to move to (empty, or "
                   "the one an interrupted migrate left): postgresql://USER@HOST/NAME")
    p.add_argument("--to-blob-store", dest="blob_store", choices=("s3",),
                   help="move DATA/blobs to an S3-compatible store (with the --s3-* options)")
    p.add_argument("--s3-endpoint", metavar="URL", help="the S3 store's URL (default: AWS's for the region)")
    p.add_argument("--s3-bucket", metavar="NAME", help="the bucket (it must exist)")
    p.add_argument("--s3-prefix", metavar="PREFIX", help="put before every key, e.g. mydiag/")
    p.add_argument("--s3-region", metavar="REGION", help="the region (default us-east-1)")
    p.add_argument("--s3-credentials-file", metavar="FILE",
                   help="access key id and secret on two lines (mode 0600); default: AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY")
    json_option(p)


def cmd_migrate(args: argparse.Namespace, blob_settings: Callable[[argparse.Namespace], BlobSettings]) -> int:
    from server.storage.migrate import MigrateError, Migration

    if args.database:
        raise Failure(exitcodes.USAGE, "migrate reads the data directory's own database: give the new one "
                                       "with --to-database, not --database")
    if not args.to_database and args.blob_store != "s3":
        raise Failure(exitcodes.USAGE, "nothing to move: give --to-database URL and/or --to-blob-store s3")
    if args.to_database and urllib.parse.urlsplit(args.to_database).scheme not in ("postgresql", "postgres"):
        raise Failure(exitcodes.USAGE, f"--to-database must be a postgresql:// URL, not "
                                       f"{safe_url(args.to_database)!r}")
    if not args.blob_store and (args.s3_endpoint or args.s3_bucket or args.s3_prefix or args.s3_region
                                or args.s3_credentials_file):
        raise Failure(exitcodes.USAGE, "the --s3-* options need --to-blob-store s3")
    data = DataDir(Path(args.data))
    if not data.exists():
        raise Failure(exitcodes.DATA_DIR, f"{data.path} is not a mydiag-server data directory")
    blobs = blob_settings(args) if args.blob_store == "s3" else None

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    try:
        summary = Migration(data, args.to_database, blobs, say).run()
    except MigrateError as exc:
        raise Failure(exc.code, str(exc)) from None
    rows = sum(summary.tables.values())
    database = safe_url(args.to_database) if args.to_database else "the old database"
    lines = [f"migrated {data.path} in {summary.seconds:.1f} s"
             + (" (resumed an interrupted run)" if summary.resumed else ""),
             *(f"  {table}: {count} rows" for table, count in summary.tables.items()),
             f"rows: {rows} in {len(summary.tables)} tables" if summary.tables else "rows: not moved",
             f"blobs: {summary.blobs} verified ({summary.blob_bytes} bytes; {summary.blobs_copied} copied "
             f"by this run), uploads in progress: {summary.staging}" if blobs else "blobs: store not moved",
             (f"recordings: {summary.recordings} parts ({summary.recording_bytes} bytes) stored and "
              "verified" if blobs else f"recordings: {summary.recordings} files ({summary.recording_bytes} "
              f"bytes) kept in {data.path / 'sessions'}"),
             f"config.json now names {database}"
             f" and {blobs.describe() if blobs else 'the same blobs'}; the old one is "
             "config.json.pre-migrate, server.db and blobs/ are left as they were (a backup)"]
    _emit(args, summary.to_dict(), lines)
    sys.stdout.flush()
    return exitcodes.OK
