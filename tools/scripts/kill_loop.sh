#!/usr/bin/env bash
# The kill test under load: runs cli_kill_test's case (SIGKILL at a random
# instant of a ~200 MB rewrite, with -o onto an older output, --in-place and
# -o to a new output, each with a report) KILLS times in a row while LOAD
# busy loops compete for the CPUs, and reports how many passed. The ctest
# run stays short (21 kills, no load); this is the long check of docs/DESIGN.md
# section 10.
# Usage: tools/scripts/kill_loop.sh [BUILD_DIR] [KILLS] [LOAD]   (defaults: build 50 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
kills=${2:-50}
load=${3:-4}
test_binary=$build/tests/cli_robustness_test
[ -x "$test_binary" ] || { echo "kill_loop: build $test_binary first" >&2; exit 2; }

busy=()
stop_load() { for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_load EXIT
for ((i = 0; i < load; i++)); do
  (while :; do :; done) &
  busy+=("$!")
done

echo "kill_loop: $kills kills under $load busy loops" >&2
start=$(date +%s)
set +e
ONNX_REINIT_KILL_RUNS=$kills "$test_binary" "[slow]" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
set -e
echo "kill_loop: exit status $status after $(($(date +%s) - start)) s" >&2
exit "$status"
