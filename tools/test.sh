#!/usr/bin/env bash
# Sets up, builds and runs every test: fetches the real-model corpus
# (tools/fetch_corpus.sh), then the normal build (and the style
# checks of tools/lint.sh), then
#   - a Release build (-O3, as packagers build) and its tests but the slow
#     ones; skip it with ONNX_REINIT_SKIP_RELEASE=1;
#   - the ASan+UBSan build; skip it with ONNX_REINIT_SKIP_SANITIZE=1;
#   - the ThreadSanitizer build of the tests labelled `threaded` (sampling,
#     rewrite, streaming, the command); skip it with ONNX_REINIT_SKIP_TSAN=1.
# Every build treats warnings as errors (tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

tools/setup.sh build
# The real-model corpus (tests/corpus/real_models.txt); a no-op once cached.
tools/fetch_corpus.sh
ctest --test-dir build --output-on-failure -j"$jobs"
tools/lint.sh build

if [ "${ONNX_REINIT_SKIP_RELEASE:-0}" != 1 ]; then
  tools/setup.sh build-release -DCMAKE_BUILD_TYPE=Release
  ctest --test-dir build-release --output-on-failure -j"$jobs" -LE slow
fi

if [ "${ONNX_REINIT_SKIP_SANITIZE:-0}" != 1 ]; then
  tools/setup.sh build-sanitize -DONNX_REINIT_SANITIZE=address
  # The only suppression: a small leak inside libonnxruntime itself.
  LSAN_OPTIONS=suppressions=$PWD/tools/lsan_suppressions.txt:print_suppressions=0 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-sanitize --output-on-failure -j"$jobs" -LE no_sanitize
fi

if [ "${ONNX_REINIT_SKIP_TSAN:-0}" != 1 ]; then
  # Only the threaded tests and what they run are built.
  tools/setup.sh build-tsan -DONNX_REINIT_SANITIZE=thread -DONNX_REINIT_BUILD_BENCH=OFF \
    -- threaded_tests
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tools/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -j"$jobs" -L threaded -LE no_sanitize
fi
