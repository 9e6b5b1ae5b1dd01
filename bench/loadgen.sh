#!/usr/bin/env bash
# The load generator measured against peers on loopback, side by side in one run (issue 3):
#   1. loadgen -closed -connections 50 vs wrk -t1 -c50 against the same nginx: req/s ratio;
#   2. open loop at 1,000, 5,000 and 10,000 req/s total for 10 s: achieved vs asked;
#   3. the cost of -db: closed-loop req/s with and without recording;
#   4. lbctl backend (zero latency) vs nginx as a target, under wrk -t1 -c50: req/s ratio;
#   5. where the CPU goes in 1.: each client's user and system time per request, and nginx's.
# Rounds are interleaved and medians reported. Usage: bench/loadgen.sh [rounds] [seconds] [sections]
# where sections picks some of the five, e.g. "13" (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
sections=${3:-12345}
section() { [[ $sections == *$1* ]]; }
source bench/peers.sh
bench_install_peers
scripts/install-deps.sh
scripts/build-release.sh --product loadgen >/dev/null
scripts/build-release.sh --product lbctl >/dev/null

bench_start_nginx 18080
bench_start_backend 18081 b1
target=http://127.0.0.1:18080/

loadgen_rps() { .build/release/loadgen -url "$target" -duration "${seconds}s" -json "$@" 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["completed"]/r["elapsedSeconds"])'; }

if section 1; then
echo "## 1. closed loop, 50 connections, against nginx (1 worker): loadgen vs wrk -t1 -c50"
wrk_runs=(); lg_runs=()
for round in $(seq 1 "$rounds"); do
    w=$(bench_wrk_rps -t1 -c50 -d"${seconds}s" "$target")
    l=$(loadgen_rps -closed -connections 50 -clients 50)
    echo "round $round: wrk $w req/s, loadgen $l req/s"
    wrk_runs+=("$w"); lg_runs+=("$l")
done
w=$(bench_median "${wrk_runs[@]}"); l=$(bench_median "${lg_runs[@]}")
awk -v w="$w" -v l="$l" 'BEGIN { printf "median: wrk %.0f req/s, loadgen %.0f req/s, ratio %.2f\n\n", w, l, l / w }'
fi

if section 2; then
echo "## 2. open loop against nginx, 50 clients, constant arrivals: achieved vs asked"
for rate in 1000 5000 10000; do
    .build/release/loadgen -url "$target" -clients 50 -total-rate "$rate" -duration "${seconds}s" -json 2>/dev/null |
        python3 -c 'import json,sys
r = json.load(sys.stdin); a = r["askedRate"]; g = r["achievedRate"]; c = r["corrected"]
print("asked %.0f req/s: achieved %.1f req/s (%+.2f%%), p50 %.3f ms, p99 %.3f ms, peak %d connections"
      % (a, g, 100 * (g - a) / a, c["p50Ms"], c["p99Ms"], r["peakConnections"]))'
done
echo
fi

if section 3; then
echo "## 3. the cost of -db: closed loop, 50 connections, against nginx"
off_runs=(); on_runs=(); ratios=()
for round in $(seq 1 "$rounds"); do
    off=$(loadgen_rps -closed -connections 50 -clients 50)
    rm -f "$BENCH_DIR/bench.db"*
    on=$(loadgen_rps -closed -connections 50 -clients 50 -db "$BENCH_DIR/bench.db")
    echo "round $round: without -db $off req/s, with -db $on req/s"
    off_runs+=("$off"); on_runs+=("$on"); ratios+=("$(awk -v a="$off" -v b="$on" 'BEGIN { print b / a }')")
done
off=$(bench_median "${off_runs[@]}"); on=$(bench_median "${on_runs[@]}"); ratio=$(bench_median "${ratios[@]}")
awk -v a="$off" -v b="$on" -v r="$ratio" 'BEGIN { printf "median: without %.0f req/s, with %.0f req/s: %.1f%% lower; median of the rounds'"'"' ratios: %.1f%% lower\n\n", a, b, 100 * (a - b) / a, 100 * (1 - r) }'
fi

if section 4; then
echo "## 4. lbctl backend (zero latency, 1 thread) vs nginx (1 worker) as the target of wrk -t1 -c50"
n_runs=(); b_runs=()
for round in $(seq 1 "$rounds"); do
    n=$(bench_wrk_rps -t1 -c50 -d"${seconds}s" "$target")
    b=$(bench_wrk_rps -t1 -c50 -d"${seconds}s" http://127.0.0.1:18081/)
    echo "round $round: nginx $n req/s, lbctl backend $b req/s"
    n_runs+=("$n"); b_runs+=("$b")
done
n=$(bench_median "${n_runs[@]}"); b=$(bench_median "${b_runs[@]}")
awk -v n="$n" -v b="$b" 'BEGIN { printf "median: nginx %.0f req/s, lbctl backend %.0f req/s, ratio %.2f\n", n, b, b / n }'
fi

if section 5; then
echo
echo "## 5. CPU per request in the closed loop of 1.: the client's (user, system) and nginx's worker's"
nginx_worker=$(pgrep -P "${BENCH_PIDS[0]}")
worker_ticks() { awk '{ print $14 + $15 }' /proc/"$nginx_worker"/stat; }
hz=$(getconf CLK_TCK)
TIMEFORMAT='%3U %3S'
for round in $(seq 1 "$rounds"); do
    for client in wrk loadgen; do
        n1=$(worker_ticks)
        if [ "$client" = wrk ]; then
            { time wrk -t1 -c50 -d"${seconds}s" "$target" >"$BENCH_DIR/client.out" 2>/dev/null; } 2>"$BENCH_DIR/client.time"
            rps=$(awk '/^Requests\/sec/ { print $2 }' "$BENCH_DIR/client.out")
        else
            { time .build/release/loadgen -url "$target" -duration "${seconds}s" -json -closed -connections 50 -clients 50 \
                >"$BENCH_DIR/client.out" 2>/dev/null; } 2>"$BENCH_DIR/client.time"
            rps=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["completed"]/r["elapsedSeconds"])' "$BENCH_DIR/client.out")
        fi
        n2=$(worker_ticks)
        read -r user system <"$BENCH_DIR/client.time"
        awk -v c="$client" -v r="$round" -v q="$rps" -v t="$seconds" -v u="$user" -v s="$system" -v n=$((n2 - n1)) -v hz="$hz" 'BEGIN {
            total = q * t
            printf "round %d %-7s %7.0f req/s  client user %.2f system %.2f us/req  nginx %.2f us/req\n",
                r, c, q, u * 1e6 / total, s * 1e6 / total, n * 1e6 / hz / total }'
    done
done
fi
