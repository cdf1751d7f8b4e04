#!/bin/bash
# Runs a libFuzzer target for a fixed time on a copy of its checked-in corpus (libFuzzer adds
# what it finds to its first corpus directory; the checked-in one stays as it is), then prints
# its coverage. Fails when the target finds a crash, a leak or a sanitizer report.
#   run-fuzz.sh TARGET CORPUS SECONDS
set -u -o pipefail
target=$1
corpus=$2
seconds=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work"/
"$target" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/" "$work" \
  >"$work/log" 2>&1
status=$?
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|stat::' "$work/log"
if [ $status -ne 0 ]; then
  tail -n 60 "$work/log"
  for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
    [ -e "$crash" ] && { echo "input: $crash"; od -A d -t x1 "$crash" | head -20; }
  done
fi
exit $status
