#!/bin/sh
# Starts the server, greets it from a second process, and checks the answer.
#   greet.sh <greeter-server> <greeter-client>
set -eu
fifo=$(mktemp -u /tmp/greeter.XXXXXX)
mkfifo "$fifo"
"$1" <"$fifo" >"$fifo.out" &
server=$!
exec 3>"$fifo"  # the server runs until this closes
trap 'exec 3>&-; wait $server; rm -f "$fifo" "$fifo.out"' EXIT
for _ in $(seq 100); do [ -s "$fifo.out" ] && break; sleep 0.1; done
objref=$(head -n 1 "$fifo.out")
[ -n "$objref" ] || { echo "the server printed no OBJREF"; exit 1; }
out=$("$2" "$objref" downstream)
echo "$out"
echo "$out" | grep -qx "hello, downstream"
echo "$out" | grep -qx "greetings: 1"
echo "$out" | grep -q "^transport: pipe:"
