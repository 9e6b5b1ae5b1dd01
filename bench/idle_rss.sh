#!/usr/bin/env bash
# Resident memory of the proxy with 10,000 idle keep-alive client connections (issue 4; goal <= 64 MiB),
# LBLab (`-threads 1`) beside HAProxy (`nbthread 1`) in front of one nginx backend on loopback.
# Usage: bench/idle_rss.sh [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
export BENCH_NEEDS_HAPROXY=1
source bench/peers.sh
bench_install_peers
scripts/build-release.sh --product lbctl >/dev/null
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((count + 1000)) ]; then
    echo "idle_rss.sh: the open-file limit $(ulimit -n) is below $((count + 1000)); ask for fewer connections" >&2
    exit 1
fi

# HAProxy sizes its descriptors for two per connection and refuses to start beyond the limit: it gets
# as many connections as the limit allows, up to the count (per-connection figures stay comparable).
haproxy_count=$(( ($(ulimit -n) - 400) / 2 < count ? ($(ulimit -n) - 400) / 2 : count ))
bench_start_nginx 18201
bench_start_haproxy 18210 $((haproxy_count + 50)) 18201
haproxy_pid=$BENCH_HAPROXY_PID
.build/release/lbctl proxy -listen 127.0.0.1:18212 -admin 127.0.0.1:18222 -backend 127.0.0.1:18201 -threads 1 2>/dev/null &
BENCH_PIDS+=($!)
lblab_pid=$!
bench_wait_port 18212

echo "haproxy: $(python3 bench/idle_conns.py 18210 "$haproxy_count" "$haproxy_pid")"
echo "lblab:   $(python3 bench/idle_conns.py 18212 "$count" "$lblab_pid")"
