#!/usr/bin/env bash
# Builds pgha into build/ (warnings are errors). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DPGHA_WERROR=ON "$@" >/dev/null
cmake --build build -j2
