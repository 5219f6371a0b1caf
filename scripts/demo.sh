#!/usr/bin/env bash
# The demo: installs dependencies, builds, starts etcd on loopback and shows pghad validating the
# example configuration. Grows into a 3-node cluster with a failover as the HA engine lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec /usr/bin/python3 scripts/demo.py
