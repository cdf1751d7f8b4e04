#!/usr/bin/env bash
# Packs the comparison matrix into a self-contained folder, for a machine without the packages
# (bundle-for-server.sh from the project's shared/tools does the packing: the programs, the
# non-glibc libraries they load, ferry's plugins, env.sh).
#   bench/peers/bundle.sh [BUILD_DIR] [DEST]   (default: build/ and build-bundle/ of this
#                                              checkout; BUNDLE_TOOL=PATH names the packer)
# DEST/bin gets every peer-* program that is built, and run-matrix; on the other machine,
# from any directory:  DEST/bin/run-matrix --quick   (or without --quick for the real runs)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
dest=${2:-$root/build-bundle}
tool=${BUNDLE_TOOL:-}
if [ -z "$tool" ]; then
  # shared/ lies beside the checkout, or beside a folder above it.
  for dir in "$root/.." "$root/../.." "$root/../../.."; do
    if [ -x "$dir/shared/tools/bundle-for-server.sh" ]; then tool=$dir/shared/tools/bundle-for-server.sh; break; fi
  done
fi
[ -n "$tool" ] || { echo "bundle.sh: bundle-for-server.sh not found; give its path as BUNDLE_TOOL" >&2; exit 2; }
programs=()
for p in "$build"/bench/peers/peer-*; do [ -x "$p" ] && [ -f "$p" ] && programs+=("$p"); done
[ ${#programs[@]} -gt 0 ] || { echo "bundle.sh: no peer programs in $build/bench/peers: build first" >&2; exit 2; }
plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
cp -L "$build"/transports/*/ferry-transport-*.so "$plugins"/
# The programs find libferry through a build-tree RUNPATH that does not hold once they are copied:
# the packer's ldd finds it here instead.
LD_LIBRARY_PATH="$build/core${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$tool" "$dest" --plugins "$plugins" "${programs[@]}"
cp "$here/run-matrix" "$dest/bin/"
echo "bundle.sh: $dest/bin/run-matrix runs the matrix from there (programs: ${programs[*]##*/})"
