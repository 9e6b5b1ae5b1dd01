#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The analysis scripts (pandas, matplotlib) run in the integration tests against a recorded experiment.
python3 -m pip install -q --disable-pip-version-check -r analysis/requirements.txt
swift build --build-tests
# The release build too: the simulator's agreement with real runs is judged on release processes, whose
# delays the scenarios' sim: sections were measured on (Integration/SimAgreementTests).
scripts/build-release.sh --product lbctl >/dev/null
scripts/build-release.sh --product loadgen >/dev/null
# One test at a time: several tests measure time (achieved rates within 1%, health checks within
# fall x interval), and on a 2-core machine suites running side by side take each other's CPU.
swift test --skip-build --no-parallel
