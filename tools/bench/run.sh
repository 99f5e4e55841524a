#!/usr/bin/env bash
# The onnx-reinit benchmark: one command, after tools/setup.sh has
# built the project. Options (see --help): --quick, --runs N, --build DIR,
# --workdir DIR (or ONNX_REINIT_BENCH_DIR), --inline-mb N, --big-mb N.
# Debian's /usr/bin/python3 on purpose: the baseline must use python3-onnx
# and python3-numpy, not whatever python3 is first on PATH.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run_bench.py" "$@"
