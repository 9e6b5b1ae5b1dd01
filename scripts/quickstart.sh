#!/usr/bin/env bash
# The main command of the README: installs what is missing, builds LBLab in release mode, and runs a
# short experiment: a synthetic backend on loopback under 50 open-loop clients for 10 s, every request
# recorded in lblab.db. (`lbctl run --scenario scenarios/quickstart.yml` takes its place once the
# scenario runner lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product lbctl
swift build -c release --product loadgen
.build/release/lbctl algorithms

port=${LBLAB_QUICKSTART_PORT:-19101}
.build/release/lbctl backend -listen "127.0.0.1:$port" -name b1 -latency 'lognormal(2ms,20ms)' &
backend=$!
trap 'kill "$backend" 2>/dev/null || true; wait "$backend" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
echo
.build/release/loadgen -url "http://127.0.0.1:$port/" -clients 50 -rate 20 -duration 10s -db lblab.db
