#!/usr/bin/env bash
# Builds and runs the libFuzzer targets for SECONDS in all (default 90, the
# CI run): model_fuzzer (fuzz/model_fuzzer.cpp: model reading, analysis and
# planning) gets two thirds, rule_fuzzer (fuzz/rule_fuzzer.cpp: the rule
# language and its expression parser) one third.
# model_fuzzer's seeds: every libonnx-testdata model, the hostile seeds of
# fuzz/make_seeds.py and every past finding in fuzz/regressions/;
# rule_fuzzer's: fuzz/rule_seeds/. The corpora grow across runs in
# build-fuzz/fuzz-corpus and build-fuzz/rule-corpus. Exits non-zero on a
# finding; the reproducer is in build-fuzz/fuzz-artifacts/.
# Usage: tools/fuzz.sh [SECONDS] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-90}
shift || true
build=build-fuzz
rule_seconds=$((seconds / 3 > 0 ? seconds / 3 : 1))
model_seconds=$((seconds - rule_seconds > 0 ? seconds - rule_seconds : 1))

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DONNX_REINIT_FUZZ=ON -DONNX_REINIT_BUILD_TESTS=OFF -DONNX_REINIT_WERROR=ON >/dev/null
cmake --build "$build" --target model_fuzzer rule_fuzzer -j"$(nproc)"

seeds=$build/fuzz-seeds
corpus=$build/fuzz-corpus
rule_corpus=$build/rule-corpus
artifacts=$build/fuzz-artifacts
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus" "$rule_corpus" "$artifacts"
i=0
while IFS= read -r -d '' model; do
  i=$((i + 1))
  cp "$model" "$seeds/testdata_$i.onnx"
done < <(find /usr/share/libonnx-testdata/data -name model.onnx -print0 2>/dev/null)
/usr/bin/python3 fuzz/make_seeds.py "$seeds" >/dev/null
cp fuzz/regressions/* "$seeds/" 2>/dev/null || true
echo "fuzz: $(ls "$seeds" | wc -l) seeds, $(ls "$corpus" | wc -l) corpus files, ${model_seconds}s" >&2

# -max_len fits the 10,000-node chain seed; -rss_limit_mb turns an
# allocation from an unchecked size into a finding; -timeout one for hangs.
"$build/fuzz/model_fuzzer" -max_total_time="$model_seconds" -max_len=300000 -rss_limit_mb=2048 \
  -malloc_limit_mb=2048 -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/" \
  "$@" "$corpus" "$seeds"

# -max_len lets the mutator reach nesting far past the expression parser's
# depth limit (max_expression_depth, 100).
echo "fuzz: rules, $(ls fuzz/rule_seeds | wc -l) seeds, ${rule_seconds}s" >&2
"$build/fuzz/rule_fuzzer" -max_total_time="$rule_seconds" -max_len=65536 -rss_limit_mb=2048 \
  -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/rule-" \
  "$@" "$rule_corpus" fuzz/rule_seeds
