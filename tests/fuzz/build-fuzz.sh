#!/bin/bash
# Builds one fuzz target with clang: each source compiled on its own (so that the depfile lists
# the headers of every one), then linked.
#   build-fuzz.sh CLANG OUTPUT DEPFILE FLAGS... --sources SOURCES... --link LINK_ARGS...
set -euo pipefail
clang=$1
out=$2
depfile=$3
shift 3
flags=()
sources=()
link=()
mode=flags
for arg in "$@"; do
  case $arg in
    --sources) mode=sources ;;
    --link) mode=link ;;
    *)
      case $mode in
        flags) flags+=("$arg") ;;
        sources) sources+=("$arg") ;;
        link) link+=("$arg") ;;
      esac
      ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
objects=()
for i in "${!sources[@]}"; do
  "$clang" "${flags[@]}" -MD -MF "$work/$i.d" -c "${sources[$i]}" -o "$work/$i.o"
  objects+=("$work/$i.o")
done
"$clang" "${flags[@]}" "${objects[@]}" "${link[@]}" -o "$out"
# One rule for the output: every header any source read.
{
  printf '%s:' "$out"
  cat "$work"/*.d | sed -e 's/^[^:]*://' -e 's/\\$//' | tr '\n' ' '
  printf '\n'
} >"$depfile"
