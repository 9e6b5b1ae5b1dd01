#!/usr/bin/env bash
# The main command of the README: installs what is missing, builds LBLab in release mode, and runs the
# quickstart experiment: three backends (each in its own cgroup container where the machine allows),
# the proxy, 1,000 requests per second for 20 s under round robin, least-connections and power of two,
# every request, sample and event recorded in lblab.db, then the comparison and the scenario's verdicts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build-release.sh --product lbctl
exec .build/release/lbctl run --scenario scenarios/quickstart.yml "$@"
