#!/usr/bin/env bash
# Nanoseconds per pick for every algorithm at n = 3, 100 and 1000 backends, release build, as a
# Markdown table for bench/RESULTS.md. ns/pick = 1e9 / median picks per second of the benchmark.
# Usage: bench/pickers.sh [raw-output-file]   (REUSE=1 re-reads an existing raw file instead of running)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-flags.sh
raw=${1:-$(mktemp)}
if [ "${REUSE:-0}" != 1 ] || [ ! -s "$raw" ]; then
    swift package --allow-writing-to-package-directory benchmark --target PickerBenchmarks "${release_benchmark_flags[@]}" \
        --format markdown \
        --no-progress >"$raw" 2>/dev/null
fi
echo "| algorithm | n = 3 | n = 100 | n = 1000 |"
echo "|---|--:|--:|--:|"
awk '
    /^### pick / { name = $3; n = substr($4, 3); next }
    /Throughput/ {
        unit = $0; sub(/.*\(# \/ s\) \(/, "", unit); sub(/\).*/, "", unit)
        split($0, cols, "|"); value = cols[5] + 0
        scale = (unit == "M") ? 1e6 : (unit == "K") ? 1e3 : 1
        ns[name, n] = 1e9 / (value * scale); names[name] = 1
    }
    END {
        for (a in names) printf "| `%s` | %.0f | %.0f | %.0f |\n", a, ns[a, 3], ns[a, 100], ns[a, 1000]
    }' "$raw" | sort
