#!/bin/sh
# Installs this build into its prefix and builds examples/downstream against it as a project
# outside ferry's tree would: ferry found through pkg-config (no subproject fallback), the IDL
# compiler and the schema directory from ferry.pc, no LD_LIBRARY_PATH, no FERRY_PLUGIN_PATH.
# Then runs its test: a server process and a client process that calls it over the pipe.
#   downstream-test.sh <ferry build dir> <examples/downstream> <prefix> <libdir>
set -eu
build=$1
src=$2
prefix=$3
libdir=$4
case "$prefix" in
    "$build"/*) ;;
    *)
        echo "SKIP: this build's prefix ($prefix) is outside its build directory; the test installs"
        echo "only into a prefix of its own (scripts/build.sh configures <build>/prefix)"
        exit 77
        ;;
esac
out="$build/downstream"
# Nothing stays installed: the build's own programs would find these plugins in their install
# directory (the test without plugins needs it empty).
trap 'rm -rf "$prefix" "$out" "$out.plugins"' EXIT
echo "== installing into $prefix"
rm -rf "$prefix" "$out"
meson install -C "$build" --no-rebuild --quiet
unset FERRY_PLUGIN_PATH LD_LIBRARY_PATH
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
echo "== pkg-config: $(pkg-config --modversion ferry), cflags $(pkg-config --cflags ferry)"
for tool in ferry ferryd capnpc-ferry; do
    if ldd "$prefix/bin/$tool" | grep -q "not found"; then
        echo "$prefix/bin/$tool does not find its libraries without LD_LIBRARY_PATH:"
        ldd "$prefix/bin/$tool"
        exit 1
    fi
done
echo "== the installed ferry finds its installed plugins"
"$prefix/bin/ferry" plugins | tee "$out.plugins"
grep -q "$prefix/$libdir/ferry/plugins/ferry-transport-pipe.so" "$out.plugins"
echo "== building examples/downstream against it"
meson setup "$out" "$src" --wrap-mode=nofallback
meson compile -C "$out"
meson test -C "$out" --print-errorlogs
