#!/usr/bin/env bash
# Installs, from Debian 12's packages, everything pgha needs to build, run its demo and run its tests.
# Idempotent: safe to run again; apt only changes what is missing.
set -euo pipefail

packages=(
    # build
    build-essential cmake pkg-config clang-format
    libsystemd-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libmicrohttpd-dev libpq-dev
    # sanitizer and fuzzer builds
    clang libclang-rt-14-dev
    # real components the demo and the tests run on loopback
    etcd-server etcd-client postgresql-15 postgresql-client-15 haproxy
    # the integration harness, and Patroni itself to compare behaviour side by side
    python3 python3-pytest python3-psycopg2 python3-yaml patroni
    # misc tools used by tests
    util-linux procps curl
    # promtool (Debian package prometheus) checks that /metrics parses and tests the alert rules
    prometheus
    # PgBouncer in front of HAProxy (docs/pgbouncer.md, tests/integration/test_pgbouncer.py)
    pgbouncer
    # the .deb test: man -w, systemd-analyze verify, dpkg-shlibdeps (cpack itself needs no dpkg tools)
    man-db systemd dpkg-dev
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "Installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
