#!/usr/bin/env bash
# The simulator's speed beside a minimal C discrete-event simulation in the same run (issue 26):
#   1. simulated requests per second, round robin over 100 single-server backends (exponential 1 ms,
#      lambda = 0.8 mu per backend, Poisson arrivals), --no-records, against des_rr.c (the same model
#      in 30 lines of C: ../shared/baselines/des_rr.c); rounds interleaved, medians and paired ratios;
#   2. the same at 10, 1,000 and 100,000 backends, and 10^6 and 10^8 requests at 100, with the peak
#      resident memory (flat as requests grow: only backends and requests in flight are held);
#   3. with records on, into SQLite: rows per second end to end (two a request, all of them rows when
#      the command ends) against sqlite_insert.c's rows per second;
#   4. the algorithms' cost inside the simulator: 100 backends, each algorithm of LBCore;
#   5. the simulator's event queue against swift-collections' Heap (Benchmarks/SimBenchmarks).
# Usage: bench/sim_speed.sh [rounds] [sections], sections e.g. "12" (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
sections=${2:-12345}
section() { [[ $sections == *$1* ]]; }
source bench/peers.sh
scripts/install-deps.sh
scripts/build-release.sh --product lbctl >/dev/null
baselines=${LBLAB_BASELINES:-../shared/baselines}
gcc -O2 "$baselines/des_rr.c" -lm -o "$BENCH_DIR/des_rr"
lbctl=.build/release/lbctl

# scenario BACKENDS ALGORITHM: the model of des_rr.c as a scenario: each backend at rho = 0.8, its
# mean service 10 us per backend so that the total rate stays 80,000/s (a scenario's at most 10^7).
scenario() {
    local file="$BENCH_DIR/sim-$1-$2.yml"
    cat >"$file" <<YML
name: sim-speed
seed: 1
duration: 10000000s
algorithms: [$2]
backends: {count: $1, latency: exponential($((10 * $1))us), capacity: 1}
load: {clients: 1, total-rate: 80000, arrival: poisson}
sample-interval: 1000000s
YML
    echo "$file"
}

# sim_rate FILE REQUESTS [FLAGS…]: simulated requests per second of real time, and peak RSS (KiB).
sim_rate() {
    local file=$1 requests=$2
    shift 2
    rm -f "$BENCH_DIR/sim.db"*
    /usr/bin/time -f "%M" -o "$BENCH_DIR/rss" "$lbctl" sim --scenario "$file" --db "$BENCH_DIR/sim.db" --requests "$requests" "$@" 2>&1 >/dev/null |
        sed -n 's/.*(\([0-9.]*\) M requests\/s).*/\1/p' | awk '{ printf "%.0f", $1 * 1e6 }'
    echo " $(cat "$BENCH_DIR/rss")"
}

des_rate() { "$BENCH_DIR/des_rr" "$1" "$2" | sed -n 's/.*= \([0-9.]*\) M req\/s.*/\1/p' | awk '{ printf "%.0f\n", $1 * 1e6 }'; }

if section 1; then
    echo "## 1. round robin, 100 backends, 10^7 requests, --no-records: lbctl sim vs des_rr.c"
    file=$(scenario 100 round-robin)
    : >"$BENCH_DIR/c.txt"; : >"$BENCH_DIR/swift.txt"
    for round in $(seq 1 "$rounds"); do
        c=$(des_rate 10000000 100)
        s=$(sim_rate "$file" 10000000 --no-records | cut -d' ' -f1)
        echo "$c" >>"$BENCH_DIR/c.txt"; echo "$s" >>"$BENCH_DIR/swift.txt"
        echo "round $round: des_rr.c $c/s, lbctl sim $s/s"
    done
    bench_compare "des_rr.c" "$BENCH_DIR/c.txt" "lbctl sim" "$BENCH_DIR/swift.txt" "simulated requests/s"
fi

if section 2; then
    echo "## 2. backends and requests: simulated requests/s (peak RSS), --no-records, beside des_rr.c"
    for backends in 10 1000 100000; do
        file=$(scenario "$backends" round-robin)
        read -r s rss < <(sim_rate "$file" 10000000 --no-records)
        echo "$backends backends, 10^7 requests: lbctl sim $s/s (${rss} KiB), des_rr.c $(des_rate 10000000 "$backends")/s"
    done
    file=$(scenario 100 round-robin)
    for requests in 1000000 100000000; do
        read -r s rss < <(sim_rate "$file" "$requests" --no-records)
        echo "100 backends, $requests requests: lbctl sim $s/s (${rss} KiB), des_rr.c $(des_rate "$requests" 100)/s"
    done
fi

if section 3; then
    echo "## 3. records on (SQLite): lbctl sim's rows/s end to end against sqlite_insert.c's rows/s"
    gcc -O2 "$baselines/sqlite_insert.c" -lsqlite3 -o "$BENCH_DIR/sqlite_insert"
    file=$(scenario 100 round-robin)
    for round in $(seq 1 "$rounds"); do
        c=$("$BENCH_DIR/sqlite_insert" 2000000 10000 | awk '{print $(NF-1)}')
        rm -f "$BENCH_DIR/sim.db"*
        start=$(date +%s.%N)
        "$lbctl" sim --scenario "$file" --db "$BENCH_DIR/sim.db" --requests 2000000 >/dev/null 2>&1
        # Two rows a request (requests, proxy_requests), all of them rows by the time the command ends.
        s=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.0f", 4000000 / ($2 - $1) }')
        echo "round $round: sqlite_insert.c $c rows/s, lbctl sim $s rows/s end to end ($(awk "BEGIN { printf \"%.2f\", $s / $c }")x)"
    done
fi

if section 4; then
    echo "## 4. each algorithm inside the simulator: 100 backends, 10^7 requests, --no-records"
    # 250 clients and 100,000 uniform keys hashed by X-LBLab-Key, and backends without a capacity limit
    # (each request served at once, exponential 1 ms): a hashing algorithm spreads requests unevenly,
    # and with single-server backends at rho 0.8 its busiest ones would be overloaded and their queues
    # grow without end, measuring the queues instead of the picks.
    for algorithm in round-robin weighted-round-robin random power-of-two least-connections peak-ewma ip-hash consistent-hash maglev rendezvous least-resources; do
        file="$BENCH_DIR/sim-picks-$algorithm.yml"
        cat >"$file" <<YML
name: sim-picks
seed: 1
duration: 10000000s
algorithms: [$algorithm]
backends: {count: 100, latency: exponential(1ms)}
load: {clients: 250, total-rate: 80000, arrival: poisson, keys: {count: 100000, zipf: 0}}
proxy: {hash-key: "header:X-LBLab-Key"}
sample-interval: 1000000s
YML
        read -r s _ < <(sim_rate "$file" 10000000 --no-records)
        echo "$algorithm: $s simulated requests/s"
    done
fi

if section 5; then
    echo "## 5. the event queue against swift-collections' Heap (SimBenchmarks: hold model, ns per step)"
    source scripts/release-flags.sh
    swift package --allow-writing-to-package-directory benchmark --target SimBenchmarks "${release_benchmark_flags[@]}" \
        --format markdown --no-progress 2>/dev/null | awk '/^### /{name=$0} /Time \(wall clock\)/{print name ": p50 " $12 " ns/step"}'
fi
