#!/usr/bin/env bash
# Style checks of the project's own code: clang-format (config in
# .clang-format) and clang-tidy's naming rules (.clang-tidy). Needs a
# configured build dir for compile_commands.json. Usage: tools/lint.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

# Every citation of the design document names docs/DESIGN.md and a section
# it has.
python3_bin=$(command -v /usr/bin/python3 || command -v python3)
"$python3_bin" tools/check_design_refs.py

mapfile -t sources < <(git ls-files '*.cpp' '*.h' '*.hpp')
clang-format --dry-run --Werror "${sources[@]}"

# Translation units in the compile database (fixtures and examples are
# built elsewhere or out of tree).
mapfile -t units < <(git ls-files '*.cpp' | grep -v -E '^(examples|fuzz|tests/fixtures)/')
printf '%s\n' "${units[@]}" | xargs -P"$(nproc)" -n4 clang-tidy -p "$build" --quiet 2>/dev/null
echo "lint: ${#sources[@]} files formatted, ${#units[@]} translation units named as docs/DESIGN.md says"
