#!/usr/bin/env bash
# LBLab's proxy beside HAProxy and nginx in front of the same three nginx backends on loopback (issue
# 4): HAProxy with nbthread 1 and roundrobin, nginx with 1 worker and upstream keepalive, `lbctl proxy
# -threads 1 -algo round-robin`; each measured with `wrk -t1 -c50`, rounds interleaved (each
# starting with the next contender), medians of req/s, p50 and p99, and the median of the rounds' LBLab
# / HAProxy. A fourth contender is LBLab with `-db` (a row per request into SQLite), for the cost of
# recording (by the medians, and by the median of the rounds' ratios). With `loadgen` as third
# argument every request carries the headers loadgen sends (X-Forwarded-For with a TEST-NET address,
# X-Request-Id), which LBLab reads: the traffic of an experiment rather than wrk's bare GET.
# Usage: bench/proxy_bench.sh [rounds] [seconds] [plain|loadgen]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-10}
case ${3:-plain} in
plain) wrk_headers=() ;;
loadgen) wrk_headers=(-H "X-Request-Id: 1234567" -H "X-Forwarded-For: 203.0.113.7") ;;
*) echo "bench/proxy_bench.sh: the third argument is plain or loadgen, not '$3'" >&2; exit 2 ;;
esac
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
scripts/build-release.sh --product lbctl >/dev/null

backends=(18101 18102 18103)
for port in "${backends[@]}"; do bench_start_nginx "$port"; done

bench_start_haproxy 18110 8000 "${backends[@]}"

mkdir -p "$BENCH_DIR/nginx-proxy"
cat >"$BENCH_DIR/nginx-proxy/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH_DIR/nginx-proxy/nginx.pid;
error_log $BENCH_DIR/nginx-proxy/error.log;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 10000000;
    upstream nginx_backends {
$(for port in "${backends[@]}"; do echo "        server 127.0.0.1:$port;"; done)
        keepalive 64;
    }
    server {
        listen 127.0.0.1:18111;
        location / {
            proxy_pass http://nginx_backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
nginx -p "$BENCH_DIR/nginx-proxy" -c "$BENCH_DIR/nginx-proxy/nginx.conf" &
BENCH_PIDS+=($!)
bench_wait_port 18111

bench_start_lblab 18112 18122 "${backends[@]}"
bench_start_lblab 18113 18123 "${backends[@]}" -- -db "$BENCH_DIR/proxy.db"

# One wrk run: "req/s p50-ms p99-ms", from wrk's histogram (bench/percentiles.lua).
measure() {
    wrk -t1 -c50 -d"${seconds}s" -s bench/percentiles.lua ${wrk_headers[@]+"${wrk_headers[@]}"} "http://127.0.0.1:$1/" |
        awk '$1 == "PERCENTILES" { print $2, $3, $7 }'
}

names=(haproxy nginx lblab lblab-db)
ports=(18110 18111 18112 18113)
declare -A rps p50 p99
: >"$BENCH_DIR/haproxy.txt"
: >"$BENCH_DIR/lblab.txt"
: >"$BENCH_DIR/lblab-db.txt"
for round in $(seq 1 "$rounds"); do
    line="round $round:"
    # Each round starts with the next contender, so that none always runs first (after the previous
    # round's last) or last.
    declare -A this=()
    for k in 0 1 2 3; do
        i=$(((round - 1 + k) % 4))
        read -r r a b <<<"$(measure "${ports[$i]}")"
        rps[${names[$i]}]+="$r "; p50[${names[$i]}]+="$a "; p99[${names[$i]}]+="$b "
        this[${names[$i]}]="$r $a $b"
        line+=" ${names[$i]} $r req/s (p50 $a ms, p99 $b ms);"
    done
    echo "${this[haproxy]}" >>"$BENCH_DIR/haproxy.txt"
    echo "${this[lblab]}" >>"$BENCH_DIR/lblab.txt"
    echo "${this[lblab-db]}" >>"$BENCH_DIR/lblab-db.txt"
    echo "$line"
done
for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    echo "median $name: $(bench_median ${rps[$name]}) req/s, p50 $(bench_median ${p50[$name]}) ms, p99 $(bench_median ${p99[$name]}) ms"
done
# shellcheck disable=SC2086
awk -v l="$(bench_median ${rps[lblab]})" -v h="$(bench_median ${rps[haproxy]})" -v n="$(bench_median ${rps[nginx]})" \
    -v d="$(bench_median ${rps[lblab-db]})" \
    'BEGIN { printf "LBLab / HAProxy: %.2f; LBLab / nginx: %.2f; LBLab -db / LBLab: %.3f\n", l / h, l / n, d / l }'
bench_paired_summary "$BENCH_DIR/haproxy.txt" "$BENCH_DIR/lblab.txt" "req/s" "p50 ms" "p99 ms"
# The -db proxy runs in the same rounds as the one without; the median of the rounds' ratios cancels
# the machine's drift between rounds.
bench_compare LBLab "$BENCH_DIR/lblab.txt" "LBLab-db" "$BENCH_DIR/lblab-db.txt" "req/s" "p50 ms" "p99 ms"
