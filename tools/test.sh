#!/usr/bin/env bash
# Sets up, builds and runs every test: fetches the real-model corpus, runs
# the normal build (and the style checks of tools/lint.sh), then the
# ASan+UBSan build (skip it with ONNX_REINIT_SKIP_SANITIZE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

tools/setup.sh build
# The real-model corpus (tests/corpus/real_models.txt); a no-op once cached.
tools/fetch_corpus.sh
ctest --test-dir build --output-on-failure -j"$jobs"
tools/lint.sh build

if [ "${ONNX_REINIT_SKIP_SANITIZE:-0}" != 1 ]; then
  tools/setup.sh build-sanitize -DONNX_REINIT_SANITIZE=ON
  # The only suppression: a small leak inside libonnxruntime itself.
  LSAN_OPTIONS=suppressions=$PWD/tools/lsan_suppressions.txt:print_suppressions=0 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-sanitize --output-on-failure -j"$jobs" -LE no_sanitize
fi
