#!/usr/bin/env bash
# The load generator measured against peers on loopback, side by side in one run (issue 3):
#   1. loadgen -closed -connections 50 vs wrk -t1 -c50 against the same nginx: req/s ratio; and, as a
#      control, wrk sending the headers loadgen sends with every request (the same work for nginx);
#   2. open loop at 1,000, 5,000 and 10,000 req/s total for 10 s: achieved vs asked;
#   3. the cost of -db: closed-loop req/s with and without recording;
#   4. lbctl backend (zero latency) vs nginx as a target, under wrk -t1 -c50: req/s ratio;
#   5. where the CPU goes in 1.: each client's user and system time per request, and nginx's;
#   6. what each client's requests cost the target: nginx's user-space instructions per request
#      under callgrind (exact counts, unlike times; installs valgrind).
# Rounds are interleaved and medians reported. Usage: bench/loadgen.sh [rounds] [seconds] [sections]
# where sections picks some of the six, e.g. "13" (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
sections=${3:-123456}
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

# The headers loadgen writes into every request of section 1's run (-clients 50, no -keys), for wrk to
# send the same: an id of loadgen's typical length and a TEST-NET-3 address.
loadgen_headers=(-H "X-Request-Id: 1234567" -H "X-Forwarded-For: 203.0.113.17")

if section 1; then
echo "## 1. closed loop, 50 connections, against nginx (1 worker): loadgen vs wrk -t1 -c50"
echo "##    (wrk+h: wrk sending the headers loadgen sends with every request, the same work for nginx)"
: >"$BENCH_DIR/wrk.txt"; : >"$BENCH_DIR/wrkh.txt"; : >"$BENCH_DIR/loadgen.txt"
for round in $(seq 1 "$rounds"); do
    w=$(bench_wrk_rps -t1 -c50 -d"${seconds}s" "$target")
    h=$(bench_wrk_rps -t1 -c50 -d"${seconds}s" "${loadgen_headers[@]}" "$target")
    l=$(loadgen_rps -closed -connections 50 -clients 50)
    echo "round $round: wrk $w req/s, wrk+h $h req/s, loadgen $l req/s"
    echo "$w" >>"$BENCH_DIR/wrk.txt"; echo "$h" >>"$BENCH_DIR/wrkh.txt"; echo "$l" >>"$BENCH_DIR/loadgen.txt"
done
bench_compare wrk "$BENCH_DIR/wrk.txt" loadgen "$BENCH_DIR/loadgen.txt" req/s
bench_compare wrk+h "$BENCH_DIR/wrkh.txt" loadgen "$BENCH_DIR/loadgen.txt" req/s
bench_compare wrk "$BENCH_DIR/wrk.txt" wrk+h "$BENCH_DIR/wrkh.txt" req/s
echo
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

if section 6; then
echo
echo "## 6. nginx's user-space instructions per request (callgrind), by client: what each one's requests cost the target"
command -v valgrind >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
# One nginx process (no master, so that callgrind follows the worker), on its own port.
dir="$BENCH_DIR/nginx-callgrind"
mkdir -p "$dir"
sed -e "s|^daemon off;|daemon off;\nmaster_process off;|" -e "s|$BENCH_DIR/nginx-18080|$dir|g" -e "s|127.0.0.1:18080|127.0.0.1:18090|" \
    "$BENCH_DIR/nginx-18080/nginx.conf" >"$dir/nginx.conf"
valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/valgrind.log" 2>&1 &
callgrind_pid=$!
BENCH_PIDS+=("$callgrind_pid")
for _ in $(seq 1 600); do
    (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break
    sleep 0.05
done
bench_wait_port 18090
slow_target=http://127.0.0.1:18090/
# instructions CLIENT ARGS…: nginx's instructions over one run of CLIENT (wrk for 3 s, or loadgen for
# 20,000 requests) divided by the requests it completed.
instructions() {
    local client=$1 requests
    shift
    callgrind_control -z "$callgrind_pid" >/dev/null 2>&1
    if [ "$client" = loadgen ]; then
        requests=$(.build/release/loadgen -url "$slow_target" -requests 20000 -timeout 30s -json "$@" 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["completed"])')
    else
        requests=$(wrk -t1 -c50 -d3s "$@" "$slow_target" | awk '/requests in/ { print $1 }')
    fi
    rm -f "$dir"/callgrind.out.*
    callgrind_control -d "$callgrind_pid" >/dev/null 2>&1
    awk -v r="$requests" '/^(summary|totals):/ { print int($2 / r); exit }' "$(ls -t "$dir"/callgrind.out.* | head -1)"
}
for round in $(seq 1 "$rounds"); do
    w=$(instructions wrk)
    h=$(instructions wrk "${loadgen_headers[@]}")
    u=$(instructions wrk -H "User-Agent: lblab-loadgen")
    l=$(instructions loadgen -closed -connections 50 -clients 50)
    echo "round $round: wrk $w, wrk+h $h, wrk with a User-Agent $u, loadgen $l instructions a request"
done
fi
