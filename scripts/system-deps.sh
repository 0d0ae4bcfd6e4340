#!/usr/bin/env bash
# Installs the Debian packages the tests (or --demo, --bench) need, when missing.
# Needs root for apt-get; without root it says what to install and fails when it matters.
set -euo pipefail

want=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || want+=("$2"); }

case "${1:-}" in
  --demo)
    need mariadbd mariadb-server ;;
  --bench)
    need mariadbd mariadb-server
    need pt-stalk percona-toolkit
    need pt-variable-advisor percona-toolkit
    need mysqltuner mysqltuner
    need sysbench sysbench
    need age age
    need sos sosreport
    # GNU time, not the shell keyword: bench/collect_bench.py reads its peak RSS.
    [ -x /usr/bin/time ] || want+=(time) ;;
  *)
    need mariadbd mariadb-server
    need mariadb mariadb-client
    need age age
    need zstd zstd
    need ssh openssh-client
    need sshd openssh-server
    need eu-stack elfutils; need gdb gdb  # --stacks (tests/integration/test_stacks.py)
    need pt-query-digest percona-toolkit
    need sysbench sysbench   # a prepared-statement workload (tests/integration/test_collect_window.py)
    need chromium chromium   # the web pages' tests (Playwright drives Debian's chromium)
    need dovecot dovecot-imapd; [ -x /usr/lib/dovecot/lmtp ] || want+=(dovecot-lmtpd)  # mail tests
    # packaging (tests/packaging): the .deb in a debootstrap root, the .rpm's metadata, man pages.
    need debootstrap debootstrap; need dpkg-deb dpkg; need rpmbuild rpm; need man man-db
    need systemd-analyze systemd  # the packaged unit is verified (tests/packaging/test_deb.py)
    need haproxy haproxy     # several server processes behind one balancer (tests/haproxykit.py)
    need groff groff-base; [ -f /usr/share/bash-completion/bash_completion ] || want+=(bash-completion)
    need npm npm ;;          # axe-core for those tests, from the npm registry (below)
esac

# From the npm registry, in the tree's .tools/: axe-core (accessibility checks injected into
# the pages under test) and s3rver (a file-backed S3-compatible server, not ours, for the
# object store's tests).
axe() {
  local tools; tools="$(dirname "$0")/../.tools"
  command -v npm >/dev/null 2>&1 || return 0
  [ -f "$tools/node_modules/axe-core/axe.min.js" ] ||
    npm install --silent --no-audit --no-fund --prefix "$tools" axe-core@4 >/dev/null
  [ -f "$tools/node_modules/s3rver/bin/s3rver.js" ] ||
    npm install --silent --no-audit --no-fund --prefix "$tools" s3rver@3 >/dev/null
}

if [ ${#want[@]} -eq 0 ]; then
  [ -z "${1:-}" ] && axe
  exit 0
fi
# Deduplicate: one package may provide several commands.
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${want[*]} (install them as root: apt-get install -y ${want[*]})" >&2
  [ "${1:-}" = "--demo" ] && exit 0
  exit 1
fi
echo "installing ${want[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${want[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${want[@]}" >/dev/null; }
[ -z "${1:-}" ] && axe
exit 0
