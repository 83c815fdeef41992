#!/usr/bin/env bash
# Runs every Patchwarden test on a Debian machine: installs what the tests
# need, starts PostgreSQL if it is not running, checks formatting and lints,
# then runs the whole suite. Run it from anywhere; it works in the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests call: sqlite3 and psql for tamper tests,
# PostgreSQL itself where the machine has none, libfaketime to move a served
# process's clock past notice periods.
need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need+=(faketime)
command -v psql >/dev/null || need+=(postgresql-client)
command -v pg_ctlcluster >/dev/null || command -v pg_isready >/dev/null || need+=(postgresql)
# Real package managers for the agent's sandboxes: dpkg-scanpackages, rpm and
# rpmbuild, dnf with needs-restarting, createrepo_c and modifyrepo_c, and
# dpkg-repack to keep an installed package the repositories no longer carry.
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v dnf >/dev/null || need+=(dnf)
[ -e /usr/lib/python3/dist-packages/dnf-plugins/needs_restarting.py ] || need+=(dnf-plugins-core)
command -v createrepo_c >/dev/null || need+=(createrepo-c)
command -v dpkg-repack >/dev/null || need+=(dpkg-repack)
# rpm's own version order for the versions crate's differential test (Debian's python3).
/usr/bin/python3 -c 'import rpm' 2>/dev/null || need+=(python3-rpm)
if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# PostgreSQL: the suite runs every store and API test on it too.
pg_url="${PATCHWARDEN_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! psql "$pg_url" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    say "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
    fi
    for _ in $(seq 1 30); do
        psql "$pg_url" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
        sleep 1
    done
fi
if ! psql "$pg_url" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian PostgreSQL trusts no TCP login: use its socket as root.
    if command -v runuser >/dev/null && [ -d /var/run/postgresql ]; then
        runuser -u postgres -- createuser -s root 2>/dev/null || true
        pg_url="postgres:///postgres?host=/var/run/postgresql&user=root"
    fi
fi
psql "$pg_url" -qAtc 'SELECT 1' >/dev/null || { echo "PostgreSQL is not reachable at $pg_url" >&2; exit 1; }
export PATCHWARDEN_TEST_PG="$pg_url"
# Databases left by an earlier run that was killed.
psql "$pg_url" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'pw\_test\_%'" |
    while read -r db; do psql "$pg_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true; done
# Every PostgreSQL test must run, never skip, in this script.
export CI=true

say "checking format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "running the tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
