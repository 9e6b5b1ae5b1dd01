#!/usr/bin/env bash
# CPU per request of LBLab's proxy beside HAProxy (issue 4), split into user and system time: the
# same three nginx backends as bench/proxy_bench.sh, `wrk -t1 -c50` for SECONDS against each in turn,
# and the proxy's utime and stime (all its threads, /proc/PID/task/*/stat) read around each run.
# Usage: bench/proxy_cpu.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
seconds=${2:-5}
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
scripts/build-release.sh --product lbctl >/dev/null

bench_start_pair
haproxy_pid=$BENCH_HAPROXY_PID
lblab_pid=$BENCH_LBLAB_PID

# Clock ticks of user and system time over all threads of PID: "user system".
ticks() {
    cat /proc/"$1"/task/*/stat | awk '{ usr += $14; sys += $15 } END { print usr, sys }'
}

hz=$(getconf CLK_TCK)
for round in $(seq 1 "$rounds"); do
    for entry in "haproxy $haproxy_pid 18410" "lblab $lblab_pid 18412"; do
        read -r name pid port <<<"$entry"
        read -r user1 system1 <<<"$(ticks "$pid")"
        requests=$(wrk -t1 -c50 -d"${seconds}s" "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
        read -r user2 system2 <<<"$(ticks "$pid")"
        awk -v n="$name" -v r="$round" -v q="$requests" -v u=$((user2 - user1)) -v s=$((system2 - system1)) -v hz="$hz" -v t="$seconds" 'BEGIN {
            printf "round %d %-8s %7d req/s  user %5.1f us/req  system %5.1f us/req  total %5.1f us/req  (%.0f%% of a core)\n",
                r, n, q / t, u * 1e6 / hz / q, s * 1e6 / hz / q, (u + s) * 1e6 / hz / q, (u + s) * 100 / hz / t }'
    done
done
