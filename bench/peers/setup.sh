#!/usr/bin/env bash
# Installs the peers' Debian packages (only those missing: ZeroC Ice, omniORB, gRPC, and gnuplot
# for the plot) and builds every program of the comparison matrix with -Dpeers=true.
#   bench/peers/setup.sh [BUILD_DIR]     (default: build/ of this checkout; JOBS=N limits the
#                                         parallel compiles, e.g. JOBS=1 on a small machine)
# ferry's own build and tests need none of this: without it, the matrix runs raw, ferry and capnp.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build}
"$root/scripts/install-deps.sh" --peers
if [ -f "$build/build.ninja" ]; then
  meson configure "$build" -Dpeers=true -Dbench=true
else
  meson setup "$build" "$root" -Dpeers=true
fi
meson compile -C "$build" ${JOBS:+-j "$JOBS"}
echo "setup: the matrix's programs are in $build/bench/peers; run bench/peers/run-matrix"
