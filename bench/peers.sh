# Helpers for the side-by-side benchmarks: install the peers, start and stop nginx and LBLab processes
# by PID, on loopback only. Source it from a bench script; it sets an EXIT trap that stops them.

bench_install_peers() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v haproxy >/dev/null || [ "${BENCH_NEEDS_HAPROXY:-0}" != 1 ] || missing+=(haproxy)
    if ((${#missing[@]} > 0)); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

BENCH_DIR=$(mktemp -d)
BENCH_PIDS=()
bench_cleanup() {
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$BENCH_DIR"
}
trap bench_cleanup EXIT

# bench_wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
bench_wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# bench_start_nginx PORT: one nginx worker answering "ok" to every request, keep-alive.
bench_start_nginx() {
    local port=$1 dir="$BENCH_DIR/nginx-$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$port;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
CONF
    nginx -p "$dir" -c "$dir/nginx.conf" &
    BENCH_PIDS+=($!)
    bench_wait_port "$port"
}

# bench_start_haproxy PORT MAXCONN BACKEND_PORT…: HAProxy with one thread, round robin over the
# backends, keep-alive to them (`http-reuse always`); its PID in BENCH_HAPROXY_PID.
bench_start_haproxy() {
    local port=$1 maxconn=$2
    shift 2
    cat >"$BENCH_DIR/haproxy-$port.cfg" <<CFG
global
    nbthread 1
    maxconn $maxconn
    ulimit-n $(ulimit -n)
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend lblab_bench
    bind 127.0.0.1:$port
    default_backend nginx
backend nginx
    balance roundrobin
$(for backend in "$@"; do echo "    server b$backend 127.0.0.1:$backend"; done)
CFG
    haproxy -f "$BENCH_DIR/haproxy-$port.cfg" -db &
    BENCH_HAPROXY_PID=$!
    BENCH_PIDS+=($!)
    bench_wait_port "$port"
}

# bench_start_lblab PORT ADMIN_PORT BACKEND_PORT… [-- FLAGS…]: `lbctl proxy -threads 1 -algo
# round-robin` (release build) over the backends, as the proxy benches compare it with HAProxy; its PID
# in BENCH_LBLAB_PID.
bench_start_lblab() {
    local port=$1 admin=$2
    shift 2
    local backend_flags=()
    while (($#)) && [ "$1" != -- ]; do
        backend_flags+=(-backend "127.0.0.1:$1")
        shift
    done
    if (($#)); then shift; fi
    .build/release/lbctl proxy -listen "127.0.0.1:$port" -admin "127.0.0.1:$admin" "${backend_flags[@]}" \
        -algo round-robin -threads 1 "$@" 2>/dev/null &
    BENCH_LBLAB_PID=$!
    BENCH_PIDS+=($!)
    bench_wait_port "$port"
}

# bench_start_backend PORT NAME [FLAGS…]: an `lbctl backend` (release build).
bench_start_backend() {
    local port=$1 name=$2
    shift 2
    .build/release/lbctl backend -listen "127.0.0.1:$port" -name "$name" "$@" 2>/dev/null &
    BENCH_PIDS+=($!)
    bench_wait_port "$port"
}

# bench_median VALUE…: the median; with an even count, the mean of the two middle values (as
# bench_compare takes it).
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END { printf "%.10g\n", NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'
}

# bench_wrk_rps ARGS…: requests per second of one wrk run.
bench_wrk_rps() {
    wrk "$@" | awk '/^Requests\/sec/ {print $2}'
}

# bench_start_pair: three nginx backends (127.0.0.1:18401-18403), and in front of them HAProxy on
# 18410 and LBLab on 18412 (admin 18422), as bench/proxy_bench.sh runs them; their PIDs in
# BENCH_HAPROXY_PID and BENCH_LBLAB_PID, and all five in BENCH_PAIR_PIDS. With BENCH_PROXY_NICE=N
# both proxies run at nice N (root for N < 0), the backends and wrk at the default: a proxy given
# priority over what shares its machine, as an operator may set it (systemd's Nice=).
bench_start_pair() {
    local backends=(18401 18402 18403) port first=${#BENCH_PIDS[@]}
    for port in "${backends[@]}"; do bench_start_nginx "$port"; done
    bench_start_haproxy 18410 8000 "${backends[@]}"
    bench_start_lblab 18412 18422 "${backends[@]}"
    BENCH_PAIR_PIDS=("${BENCH_PIDS[@]:first}")
    if [ -n "${BENCH_PROXY_NICE:-}" ]; then
        bench_renice "$BENCH_PROXY_NICE" "$BENCH_HAPROXY_PID"
        bench_renice "$BENCH_PROXY_NICE" "$BENCH_LBLAB_PID"
    fi
}

# bench_renice NICE PID: every thread of PID at NICE (setpriority acts on one thread on Linux, so each
# is set in turn); with BENCH_PROXY_NICE, bench_start_pair gives both proxies the same priority.
bench_renice() {
    local task
    for task in /proc/"$2"/task/*; do renice -n "$1" -p "${task##*/}" >/dev/null; done
}

# bench_stop_pair: stops what bench_start_pair started, by PID, and waits for it to exit.
bench_stop_pair() {
    local pid kept=()
    for pid in "${BENCH_PAIR_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PAIR_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do
        [[ " ${BENCH_PAIR_PIDS[*]} " == *" $pid "* ]] || kept+=("$pid")
    done
    BENCH_PIDS=(${kept[@]+"${kept[@]}"})
    BENCH_PAIR_PIDS=()
}

# bench_paired ROUNDS LEGEND NAME… : runs `measure 18410` (HAProxy's port) and `measure 18412`
# (LBLab's) ROUNDS times, alternating which goes first; `measure` (defined by the caller) prints one
# line of figures. Prints each round with LEGEND, then the paired figures (bench_paired_summary).
# The rounds of one run share their processes, and with them where the scheduler has
# settled each (which core a backend shares with which proxy): a small p says the two differ in
# this run's placement. With BENCH_FRESH_ROUNDS=1 every round after the first restarts the pair
# (bench_stop_pair, bench_start_pair), so that each round draws its own placement.
bench_paired() {
    local rounds=$1 legend=$2 h l
    shift 2
    : >"$BENCH_DIR/haproxy.txt"
    : >"$BENCH_DIR/lblab.txt"
    for round in $(seq 1 "$rounds"); do
        if ((round > 1)) && [ "${BENCH_FRESH_ROUNDS:-0}" = 1 ]; then
            bench_stop_pair
            bench_start_pair
        fi
        if ((round % 2)); then
            h=$(measure 18410); l=$(measure 18412)
        else
            l=$(measure 18412); h=$(measure 18410)
        fi
        echo "$h" >>"$BENCH_DIR/haproxy.txt"
        echo "$l" >>"$BENCH_DIR/lblab.txt"
        echo "round $round: haproxy $h | lblab $l   ($legend)"
    done
    bench_paired_summary "$BENCH_DIR/haproxy.txt" "$BENCH_DIR/lblab.txt" "$@"
}

# bench_paired_summary HAPROXY_FILE LBLAB_FILE NAME…: bench_compare of LBLab against HAProxy.
bench_paired_summary() {
    bench_compare HAProxy "$1" LBLab "$2" "${@:3}"
}

# bench_compare A_NAME A_FILE B_NAME B_FILE FIGURE…: the two files hold a line of figures per round,
# the rounds in the same order; for each FIGURE, both medians, the median of the rounds' B / A
# ratios, and in how many rounds B's figure was the lower and the higher, with the two-sided sign
# test's p (the chance of a split at least that uneven if neither tended lower; ties left out).
bench_compare() {
    python3 - "$@" <<'PY'
import math, statistics, sys
a_name, a_file, b_name, b_file = sys.argv[1:5]
a_rows = [list(map(float, line.split())) for line in open(a_file)]
b_rows = [list(map(float, line.split())) for line in open(b_file)]
for i, figure in enumerate(sys.argv[5:]):
    am, bm = statistics.median(x[i] for x in a_rows), statistics.median(x[i] for x in b_rows)
    paired = statistics.median(b[i] / a[i] for a, b in zip(a_rows, b_rows))
    lower = sum(b[i] < a[i] for a, b in zip(a_rows, b_rows))
    higher = sum(b[i] > a[i] for a, b in zip(a_rows, b_rows))
    untied = lower + higher
    tail = min(lower, higher)
    p = min(1.0, 2 * sum(math.comb(untied, k) for k in range(tail + 1)) / 2**untied) if untied else 1.0
    print(f"{figure:8} {a_name} {am:10.3f}  {b_name} {bm:10.3f}  {b_name} / {a_name}: medians {bm / am:.3f},"
          f" paired {paired:.3f}; {b_name} lower in {lower}, higher in {higher} of {len(a_rows)} (sign test p = {p:.2f})")
PY
}
