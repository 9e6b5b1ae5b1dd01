#!/usr/bin/env bash
# Latency of LBLab's proxy against HAProxy's at the same offered load (issue 4): the backends of
# bench/proxy_bench.sh, and `loadgen -clients 50 -total-rate RATE` (open loop, constant arrivals,
# latency corrected for coordinated omission) against HAProxy and LBLab in turn, the two alternating
# which goes first. Where wrk's closed loop runs each proxy as fast as it goes (so that a faster proxy
# is measured at a higher load), this asks both for the same rate, as an experiment's load does.
# Prints each round and, per figure, both medians and the median of the rounds' LBLab / HAProxy ratios.
# Usage: bench/proxy_open.sh [rounds] [seconds] [rate]   (default 8 5 15000; 1 s of warm-up each)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-8}
seconds=${2:-5}
rate=${3:-15000}
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
scripts/build-release.sh --product lbctl >/dev/null
scripts/build-release.sh --product loadgen >/dev/null

bench_start_pair

# One run: "achieved-rate corrected-p50 corrected-p99 corrected-p99.9 service-p99", latencies in ms.
measure() {
    .build/release/loadgen -url "http://127.0.0.1:$1/" -clients 50 -total-rate "$rate" -duration "${seconds}s" \
        -warmup 1s -json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
c, s = d["corrected"], d["service"]
print("%.0f %.3f %.3f %.3f %.3f" % (d["achievedRate"], c["p50Ms"], c["p99Ms"], c["p999Ms"], s["p99Ms"]))'
}

echo "asked $rate req/s"
bench_paired "$rounds" "req/s, corrected p50 p99 p99.9, service p99" "req/s" "p50 ms" "p99 ms" "p99.9 ms" "svc p99"
