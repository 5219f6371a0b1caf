#!/usr/bin/env bash
# Benchmark pgha against Patroni 3.0.2 side by side (see bench/bench.py --help). Installs what it needs,
# builds pgha, then runs; writes docs/benchmarks.md unless --smoke. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
dpkg-query -W -f='${Status}' wrk 2>/dev/null | grep -q "install ok installed" ||
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends wrk >/dev/null
bash scripts/build.sh
exec /usr/bin/python3 bench/bench.py "$@"
