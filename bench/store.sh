#!/usr/bin/env bash
# Results-store insert rate against SQLite's own C API, side by side in one run: the baseline
# ../shared/baselines/sqlite_insert.c (2,000,000 rows, batches of 10,000, WAL, synchronous=NORMAL) and
# `swift package benchmark --target StoreBenchmarks` (1,000,000 rows per iteration through RunRecorder),
# in interleaved rounds; prints each figure and the ratio of the medians.
# Usage: bench/store.sh [rounds]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-flags.sh
rounds=${1:-3}
baseline_source=${LBLAB_BASELINES:-../shared/baselines}/sqlite_insert.c
[ -f "$baseline_source" ] || { echo "store.sh: no $baseline_source" >&2; exit 1; }
scripts/install-deps.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 "$baseline_source" -lsqlite3 -o "$work/sqlite_insert"
scripts/build-release.sh --product StoreBenchmarks >/dev/null

c_rates=()
swift_rates=()
for round in $(seq 1 "$rounds"); do
    c=$(cd "$work" && ./sqlite_insert 2000000 10000 | awk '{print $(NF-1)}')
    out=$(swift package --allow-writing-to-package-directory benchmark --target StoreBenchmarks "${release_benchmark_flags[@]}" \
        --format markdown \
        --no-progress 2>/dev/null)
    # The wall-clock row is in microseconds per iteration of 1,000,000 rows (p50 column).
    s=$(echo "$out" | awk -F'|' '/Time \(wall clock\) \(μs\)/ { printf "%.0f\n", 1e6 / ($5 / 1e6) }')
    echo "round $round: sqlite_insert.c $c rows/s, LBStore $s rows/s (median of its iterations)"
    c_rates+=("$c")
    swift_rates+=("$s")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cm=$(median "${c_rates[@]}")
sm=$(median "${swift_rates[@]}")
awk -v c="$cm" -v s="$sm" 'BEGIN { printf "median: sqlite_insert.c %.0f rows/s, LBStore %.0f rows/s, ratio %.2f\n", c, s, s / c }'
