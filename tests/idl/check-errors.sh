#!/bin/sh
# Checks capnpc-ferry's diagnostics.
#
# Every schema in bad/ must be rejected: a non-zero exit, an error line
# "<file>.capnp:<N>: error: ...<substring>..." where its first line reads
# "# expect: <substring>" and its second "# expect-line: <N>", and no generated .ferry.c++.
# The schemas next to this script (everything.capnp, ...) must compile silently into both
# generated files.
#
# Usage: check-errors.sh <capnp> <capnpc-ferry> <include-dir>
#   <include-dir> is where /ferry/annotations.capnp is found (core/include).
# Prints "ok <file>" or "FAIL <file>: <reason>" per schema; exits non-zero on any failure.
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 <capnp> <capnpc-ferry> <include-dir>" >&2
    exit 2
fi
capnp=$1
plugin=$2
include=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

failures=0
fail() {
    echo "FAIL $1: $2"
    failures=$((failures + 1))
}

# compile <schema> <dir>: capnpc-ferry alone, output in <dir>/out, messages in <dir>/stderr.
compile() {
    mkdir -p "$2/out"
    "$capnp" compile -I"$include" --src-prefix="$(dirname "$1")" -o"$plugin:$2/out" "$1" \
        2>"$2/stderr"
}

for schema in "$here"/*.capnp; do
    name=$(basename "$schema")
    dir="$work/good-${name%.capnp}"
    stem="$dir/out/${name%.capnp}"
    if ! compile "$schema" "$dir"; then
        fail "$name" "rejected: $(cat "$dir/stderr")"
    elif [ -s "$dir/stderr" ]; then
        fail "$name" "unexpected messages: $(cat "$dir/stderr")"
    elif [ ! -f "$stem.ferry.h" ] || [ ! -f "$stem.ferry.c++" ]; then
        fail "$name" "did not write ${name%.capnp}.ferry.h and ${name%.capnp}.ferry.c++"
    else
        echo "ok $name"
    fi
done

for schema in "$here"/bad/*.capnp; do
    name=$(basename "$schema")
    expect=$(sed -n '1s/^# expect: //p' "$schema")
    line=$(sed -n '2s/^# expect-line: //p' "$schema")
    dir="$work/bad-${name%.capnp}"
    if [ -z "$expect" ] || [ -z "$line" ]; then
        fail "$name" "its first two lines must be '# expect: <substring>' and '# expect-line: <N>'"
    elif compile "$schema" "$dir"; then
        fail "$name" "accepted, but an error was expected"
    elif ! grep -F -- "$name:$line: error: " "$dir/stderr" | grep -F -q -- "$expect"; then
        fail "$name" "no \"$name:$line: error: ...$expect...\" in: $(cat "$dir/stderr")"
    elif [ -n "$(find "$dir/out" -name '*.ferry.c++')" ]; then
        fail "$name" "generated code was written despite the error"
    else
        echo "ok $name"
    fi
done

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
