#!/usr/bin/env bash
# Installs ONNX Runtime (CPU, C/C++ API) into a prefix outside the work tree,
# for the runtime component (inspection and LSUV calibration). Debian 12 has
# no ONNX Runtime package; both halves come from npm, pinned by version and
# by the sha256 of their tarballs, fetched with `npm pack` (no install script
# ever runs: onnxruntime-node's post-install step would download GPU
# libraries):
# - onnxruntime-node: the official build; bin/napi-v6/linux/x64/libonnxruntime.so.1
#   exports the C API (OrtGetApiBase) and needs only libc/libstdc++;
# - com.github.asus4.onnxruntime: the C/C++ headers of the same version
#   (a header newer than the library would ask for an API version it refuses),
#   with ONNX Runtime's MIT LICENSE and ThirdPartyNotices.txt.
# Result: $prefix/{include,lib,share/licenses}; prints the prefix. A no-op
# when the prefix is complete.
set -euo pipefail
version=1.29.0
lib_pkg=onnxruntime-node@$version
lib_sha=cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037
hdr_pkg=com.github.asus4.onnxruntime@0.4.9
hdr_sha=e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d
hdr_dir='package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers'
headers=(onnxruntime_c_api.h onnxruntime_cxx_api.h onnxruntime_cxx_inline.h onnxruntime_float16.h
  onnxruntime_error_code.h onnxruntime_ep_c_api.h onnxruntime_session_options_config_keys.h
  onnxruntime_run_options_config_keys.h)
prefix=${ONNX_REINIT_DEPS_DIR:-$HOME/.cache/onnx-reinit/deps}/onnxruntime-$version

die() {
  echo "fetch_onnxruntime: error: $*" >&2
  exit 1
}

complete=1
[ -f "$prefix/lib/libonnxruntime.so.1" ] || complete=0
for h in "${headers[@]}"; do [ -f "$prefix/include/$h" ] || complete=0; done
if [ "$complete" = 1 ]; then
  echo "$prefix"
  exit 0
fi

command -v npm >/dev/null || die "npm is not installed (tools/setup.sh installs it)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { # package sha -> tarball path
  echo "fetch_onnxruntime: npm pack $1" >&2
  local tarball
  tarball=$(cd "$work" && npm pack --silent --ignore-scripts "$1" | tail -n1)
  [ -f "$work/$tarball" ] || die "npm pack gave no tarball ($1)"
  local got
  got=$(sha256sum "$work/$tarball" | cut -d' ' -f1)
  [ "$got" = "$2" ] || die "sha256 of $1 is $got, pinned $2"
  echo "$work/$tarball"
}
lib_tgz=$(fetch "$lib_pkg" "$lib_sha")
hdr_tgz=$(fetch "$hdr_pkg" "$hdr_sha")

stage=$work/stage
mkdir -p "$stage/include" "$stage/lib" "$stage/share/licenses/onnxruntime" "$work/x"
tar -xzf "$lib_tgz" -C "$work/x" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
install -m 0644 "$work/x/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$stage/lib/"
ln -s libonnxruntime.so.1 "$stage/lib/libonnxruntime.so"
members=()
for h in "${headers[@]}"; do members+=("$hdr_dir/$h"); done
tar -xzf "$hdr_tgz" -C "$work/x" "${members[@]}" package/LICENSE package/ThirdPartyNotices.txt
for h in "${headers[@]}"; do install -m 0644 "$work/x/$hdr_dir/$h" "$stage/include/"; done
install -m 0644 "$work/x/package/LICENSE" "$work/x/package/ThirdPartyNotices.txt" \
  "$stage/share/licenses/onnxruntime/"
grep -q "define ORT_API_VERSION 29" "$stage/include/onnxruntime_c_api.h" ||
  die "headers of $hdr_pkg are not ORT_API_VERSION 29"
mkdir -p "$(dirname "$prefix")"
rm -rf "$prefix"
mv "$stage" "$prefix"
echo "fetch_onnxruntime: installed ONNX Runtime $version in $prefix" >&2
echo "$prefix"
