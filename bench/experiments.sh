#!/usr/bin/env bash
# The experiments of issue 27 in real runs and in the simulator, each scenario's runs of both kinds in
# one results file, then lbctl compare on it: algorithms as ALGORITHM [real] beside ALGORITHM [sim],
# with intervals over the repeats, a sweep's grids, knees and throughput at the service level.
# Usage: bench/experiments.sh [OUT] [scenario ...]   (default OUT: results/experiments; default
#        scenarios: sweep-load degraded-node weights sweep-fleet)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/experiments}
shift || true
scenarios=("$@")
((${#scenarios[@]} > 0)) || scenarios=(sweep-load degraded-node weights sweep-fleet)
scripts/install-deps.sh
scripts/build-release.sh --product lbctl >/dev/null
lbctl=.build/release/lbctl
mkdir -p "$out"
for name in "${scenarios[@]}"; do
    db="$out/$name.db"
    rm -f "$db" "$db-wal" "$db-shm"
    echo "== $name: real runs"
    # A real run whose expectation fails still leaves its records; the comparison below shows why.
    "$lbctl" run --scenario "scenarios/$name.yml" --db "$db" --out "$out/$name-logs" | tail -n 40 || true
    echo "== $name: simulated"
    "$lbctl" sim --scenario "scenarios/$name.yml" --db "$db" | sed -n '/^expect:/,$p' || true
    echo "== $name: both"
    "$lbctl" compare --scenario "$name" --db "$db"
done
