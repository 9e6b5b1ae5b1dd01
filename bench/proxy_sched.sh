#!/usr/bin/env bash
# Where each proxy's time slices go on a shared machine (issue 4): the same three nginx backends as
# bench/proxy_bench.sh, `wrk -t1 -c50` against HAProxy and LBLab in turn, and `perf sched record` for
# 2 s in the middle of each run. Every 10 ms of the recording is classed by what else ran on the
# proxy's core in it (nothing: "alone"; or which backends and wrk), and for each class the script
# prints how many windows fell in it, the proxy's busy time per window and the other core's idle time
# per window: the idle time is capacity the machine lost while the proxy shared its core.
# Needs root (perf sched) and perf (Debian's linux-perf).
# Usage: bench/proxy_sched.sh [rounds] [seconds]   (default 3 6; the recording is 2 s of each run)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-6}
if ((seconds < 4)); then echo "bench/proxy_sched.sh: runs of 4 s at least" >&2; exit 2; fi
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
scripts/build-release.sh --product lbctl >/dev/null

bench_start_pair

# One run: wrk for SECONDS, perf sched for 2 s of it from its second second; the switches as text.
record() {
    local name=$1 port=$2 round=$3
    wrk -t1 -c50 -d"${seconds}s" --latency "http://127.0.0.1:$port/" >"$BENCH_DIR/wrk-$name-$round.txt" &
    local wrk_pid=$!
    sleep 1
    perf sched record -o "$BENCH_DIR/sched.data" -- sleep 2 >/dev/null 2>&1
    wait "$wrk_pid"
    perf sched timehist -i "$BENCH_DIR/sched.data" 2>/dev/null >"$BENCH_DIR/timehist-$name-$round.txt"
    echo "round $round $name: $(awk '/^Requests\/sec/ {r = $2} $1 == "99%" {p = $2} END {print r " req/s, p99 " p}' \
        "$BENCH_DIR/wrk-$name-$round.txt") (with perf recording)"
}

for round in $(seq 1 "$rounds"); do
    if ((round % 2)); then
        record haproxy 18410 "$round"; record lblab 18412 "$round"
    else
        record lblab 18412 "$round"; record haproxy 18410 "$round"
    fi
done

python3 - "$BENCH_DIR" "$BENCH_HAPROXY_PID" "$BENCH_LBLAB_PID" <<'PY'
import collections, glob, re, sys
directory, pids = sys.argv[1], {"haproxy": sys.argv[2], "lblab": sys.argv[3]}
WINDOW = 10_000  # µs
row = re.compile(r"^\s*(\d+\.\d+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")
for name in ("haproxy", "lblab"):
    classes = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for path in sorted(glob.glob(f"{directory}/timehist-{name}-*.txt")):
        # Seconds each task ran on each CPU in each window; a slice that spans windows is split.
        busy = collections.defaultdict(lambda: collections.Counter())
        for line in open(path):
            m = row.match(line)
            if not m:
                continue
            # Whole microseconds, so that a slice ending on a window's edge cannot loop.
            end, cpu, task = round(float(m[1]) * 1e6), int(m[2]), m[3]
            run = round(float(m[6]) * 1e3)
            pid = re.search(r"\[(\d+)(?:/(\d+))?\]$", task)
            who = re.sub(r"\[[\d/]*\]$", "", task)
            if pid and pids[name] in (pid[1], pid[2]):
                who = "proxy"
            elif who.startswith("nginx"):
                who = "backend"
            elif who not in ("wrk", "<idle>"):
                who = "other"
            start = end - run
            while start < end:
                w = start // WINDOW
                stop = min(end, (w + 1) * WINDOW)
                busy[w][(who, cpu)] += (stop - start) / 1e6
                start = stop
        windows = sorted(busy)[1:-1]  # the first and last are partial
        for w in windows:
            b = busy[w]
            mine = max((0, 1), key=lambda c: b[("proxy", c)])
            other = 1 - mine
            company = collections.Counter()
            for (who, cpu), t in b.items():
                if cpu == mine and who in ("backend", "wrk", "other") and t > 0.0005:
                    company[who] += 1
            label = " + ".join(f"{n} {w}" if n > 1 else w for w, n in sorted(company.items())) or "alone"
            entry = classes[label]
            entry[0] += 1
            entry[1] += b[("proxy", 0)] + b[("proxy", 1)]
            entry[2] += b[("<idle>", other)]
    total = sum(e[0] for e in classes.values())
    print(f"{name}: {total} windows of 10 ms")
    for label, (n, proxy, idle) in sorted(classes.items(), key=lambda kv: -kv[1][0]):
        print(f"  with {label:24} {n:5} windows ({100 * n / total:4.1f}%)  proxy busy {1000 * proxy / n:5.2f} ms"
              f"  other core idle {1000 * idle / n:5.2f} ms  (per window)")
PY
