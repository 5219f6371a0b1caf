#!/usr/bin/env bash
# The demo: installs dependencies, builds, then runs etcd and a 3-node pghad cluster on loopback,
# kills the leader and shows the failover and the old leader rejoining.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec /usr/bin/python3 scripts/demo.py
