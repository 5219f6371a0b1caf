#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine as root:
#   install dependencies, build with -Werror, style gates, unit tests, unit tests again under
#   ASan+UBSan, then the integration tests against real etcd, PostgreSQL 15 and HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/check-style.sh

echo "== build (gcc, -Werror)"
bash scripts/build.sh

echo "== unit tests"
ctest --test-dir build -L unit --output-on-failure -j2

echo "== unit tests under ASan+UBSan (clang)"
CC=clang cmake -S . -B build-asan -DPGHA_WERROR=ON -DPGHA_SANITIZE=address,undefined \
    -DPGHA_INTEGRATION=OFF >/dev/null
cmake --build build-asan -j2
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -L unit --output-on-failure -j2

echo "== integration tests (real etcd, PostgreSQL 15, HAProxy on 127.0.0.1)"
ctest --test-dir build -L integration --output-on-failure -j2
