#!/usr/bin/env bash
# The main command of the README: installs what is missing, builds LBLab in release mode, and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product lbctl
.build/release/lbctl algorithms
