#!/usr/bin/env bash
# lbctl sim against lbctl run (issue 26): each scenario in both modes into one results file, then per
# algorithm the median, p99 and mean side by side, the ranking by mean and by p99, and the health
# reaction times of backend-failure; the table bench/RESULTS.md records ("Simulator against real runs").
# Real runs need root for the cgroups of heterogeneous (CPU limits); the others run without.
# Usage: bench/sim_agreement.sh [real-repeats] [sim-repeats] [scenario…]
#   default: 1 real run and 5 simulated runs of each algorithm of four-queues, quickstart,
#   slow-backend, heterogeneous and backend-failure at their full length.
set -euo pipefail
cd "$(dirname "$0")/.."
real_repeats=${1:-1}
sim_repeats=${2:-5}
shift $(($# > 2 ? 2 : $#))
scenarios=("$@")
((${#scenarios[@]})) || scenarios=(four-queues quickstart slow-backend heterogeneous backend-failure)
source bench/peers.sh
scripts/install-deps.sh
scripts/build-release.sh >/dev/null
lbctl=.build/release/lbctl
for name in "${scenarios[@]}"; do
    db="$BENCH_DIR/$name.db"
    echo "## $name: $real_repeats real and $sim_repeats simulated runs of each algorithm" >&2
    "$lbctl" run --scenario "scenarios/$name.yml" --repeat "$real_repeats" --db "$db" --out "$BENCH_DIR/out-$name" >"$BENCH_DIR/$name-real.log" 2>&1 ||
        grep -q "^expect:" "$BENCH_DIR/$name-real.log" || { cat "$BENCH_DIR/$name-real.log" >&2; exit 1; }
    "$lbctl" sim --scenario "scenarios/$name.yml" --repeat "$sim_repeats" --db "$db" >"$BENCH_DIR/$name-sim.log" 2>&1 ||
        grep -q "^expect:" "$BENCH_DIR/$name-sim.log" || { cat "$BENCH_DIR/$name-sim.log" >&2; exit 1; }
    "$lbctl" report --db "$db" >"$BENCH_DIR/$name.report"
    python3 bench/sim_agreement.py "$name" "scenarios/$name.yml" "$BENCH_DIR/$name.report"
done
