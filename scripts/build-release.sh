#!/usr/bin/env bash
# Builds LBLab in release mode with the project's release flags (scripts/release-flags.sh) into
# .build/release. Arguments go on to `swift build`, e.g. `--product lbctl`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-flags.sh
xflags=()
for flag in "${release_swiftc_flags[@]}"; do xflags+=(-Xswiftc "$flag"); done
exec swift build -c release "${xflags[@]}" "${release_build_flags[@]}" "$@"
