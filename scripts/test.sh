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

echo "== fuzz smoke (libFuzzer, 15 s per target)"
CC=clang cmake -S . -B build-fuzz -DPGHA_FUZZ=ON -DPGHA_INTEGRATION=OFF >/dev/null
cmake --build build-fuzz -j2
for target in build-fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    mkdir -p "build-fuzz/corpus/$(basename "$target")"
    "$target" -max_total_time=15 -max_len=65536 "build-fuzz/corpus/$(basename "$target")" 2>&1 | tail -n 1
done

echo "== integration tests (real etcd, PostgreSQL 15, HAProxy on 127.0.0.1)"
ctest --test-dir build -L integration --output-on-failure -j2
