#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The analysis scripts (pandas, matplotlib) run in the integration tests against a recorded experiment.
python3 -m pip install -q --disable-pip-version-check -r analysis/requirements.txt
swift build --build-tests
# One test at a time: several tests measure time (achieved rates within 1%, health checks within
# fall x interval), and on a 2-core machine suites running side by side take each other's CPU.
swift test --skip-build --no-parallel
