#!/bin/sh
# The server image's entry (docker/server.Dockerfile): on the first start, initialize the
# data directory that the command's --data names (the database of MYDIAG_DATABASE_URL, else
# SQLite in the directory), then run the command, `mydiag-server run` by default.
#
# The admin token is printed once, on that first start (`docker compose logs server`). Keep
# the database password out of MYDIAG_DATABASE_URL: libpq reads it from PGPASSWORD (or a
# password file), so it is never on a command line nor in config.json.
set -eu

data=""
previous=""
for arg in "$@"; do
    if [ "$previous" = "--data" ]; then
        data="$arg"
    fi
    previous="$arg"
done

if [ "${1:-}" = "mydiag-server" ] && [ -n "$data" ] && [ ! -e "$data/config.json" ]; then
    if [ -n "${MYDIAG_DATABASE_URL:-}" ]; then
        mydiag-server init --data "$data" --database "$MYDIAG_DATABASE_URL"
    else
        mydiag-server init --data "$data"
    fi
fi

exec "$@"
