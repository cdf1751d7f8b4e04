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
    # Installs (the downstream test) go into the build directory unless a prefix is given.
    case " $* " in
        *" --prefix"*|*" -Dprefix"*) meson setup "$dir" "$top" "$@" ;;
        *) mkdir -p "$dir" && meson setup "$dir" "$top" --prefix "$(cd "$dir" && pwd)/prefix" "$@" ;;
    esac
fi
echo "== building $dir"
meson compile -C "$dir"
