#!/bin/sh
# Configures (once) and builds one build directory.
#   scripts/build.sh <builddir> [meson setup options...]
# Prints each step; meson/ninja print their own progress.
set -eu
dir=$1
shift
top=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$dir/build.ninja" ]; then
    echo "== configuring $dir"
    meson setup "$dir" "$top" "$@"
fi
echo "== building $dir"
meson compile -C "$dir"
