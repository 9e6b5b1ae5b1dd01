#!/usr/bin/env bash
# Latency percentiles of LBLab's proxy against HAProxy's, paired (issue 4): the same three nginx
# backends as bench/proxy_bench.sh, `wrk -t1 -cCONNECTIONS` for SECONDS against each in
# turn, the two alternating which goes first; prints each round and, per figure (req/s, p50, p75, p90,
# p95, p99, p99.5, p99.9, max), both medians and the median of the rounds' LBLab / HAProxy ratios.
# With `pinned` as fourth argument the proxy measured has CPU 1 to itself and the backends and wrk
# share CPU 0 (taskset), so that the figures are the proxy's own queueing, without the scheduler's
# placement of five busy processes on two cores; `shared` (the default) leaves placement to the kernel;
# `fresh` leaves it to the kernel too, but restarts the backends and both proxies before every round,
# so that each round draws its own placement instead of inheriting the run's (BENCH_FRESH_ROUNDS).
# BENCH_PROXY_NICE=N in the environment runs both proxies at nice N (bench_start_pair).
# Usage: bench/proxy_latency.sh [rounds] [seconds] [connections] [shared|pinned|fresh]   (default 8 5 50 shared)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-8}
seconds=${2:-5}
connections=${3:-50}
placement=${4:-shared}
case $placement in
shared) ;;
fresh) export BENCH_FRESH_ROUNDS=1 ;;
pinned)
    if (($(nproc) < 2)) || ! command -v taskset >/dev/null; then
        echo "bench/proxy_latency.sh: pinned needs two CPUs and taskset" >&2
        exit 2
    fi
    ;;
*) echo "bench/proxy_latency.sh: the fourth argument is shared, pinned or fresh, not '$placement'" >&2; exit 2 ;;
esac
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
scripts/build-release.sh --product lbctl >/dev/null

bench_start_pair
lblab_pid=$BENCH_LBLAB_PID
wrk_cpu=()
if [ "$placement" = pinned ]; then
    # Every process started here and its children (nginx's workers): the two proxies on CPU 1, the
    # rest on CPU 0.
    for pid in "${BENCH_PIDS[@]}"; do
        cpu=0
        if [ "$pid" = "$BENCH_HAPROXY_PID" ] || [ "$pid" = "$lblab_pid" ]; then cpu=1; fi
        for each in "$pid" $(pgrep -P "$pid" || true); do taskset -a -p -c "$cpu" "$each" >/dev/null; done
    done
    wrk_cpu=(taskset -c 0)
fi

# One wrk run: "req/s p50 p75 p90 p95 p99 p99.5 p99.9 max", latencies in ms (bench/percentiles.lua).
measure() {
    ${wrk_cpu[@]+"${wrk_cpu[@]}"} wrk -t1 -c"$connections" -d"${seconds}s" -s bench/percentiles.lua \
        "http://127.0.0.1:$1/" | awk '$1 == "PERCENTILES" { $1 = ""; print substr($0, 2) }'
}

bench_paired "$rounds" "req/s p50 p75 p90 p95 p99 p99.5 p99.9 max" \
    "req/s" "p50 ms" "p75 ms" "p90 ms" "p95 ms" "p99 ms" "p99.5 ms" "p99.9 ms" "max ms"
