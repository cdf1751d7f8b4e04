#!/bin/sh
# Checks the command lines of ferry's tools: each takes --help and --version (exit 0), and
# rejects an unknown flag or a bad value with a sentence and its usage line (exit 2).
#
# Usage: check-tools.sh <version> <ferry> <capnpc-ferry> [<ferry-bench>]
#   <version> is the project version every tool's --version must print ("ferry <version>").
# Prints "ok <check>" or "FAIL <check>: <reason>" per check; exits non-zero on any failure.
set -u

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 <version> <ferry> <capnpc-ferry> [<ferry-bench>]" >&2
    exit 2
fi
version=$1
ferry=$2
capnpc=$3
bench=${4:-}

failures=0
out=""
err=""
status=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

# run <args...>: runs a tool with stdin from /dev/null; sets $out, $err and $status.
run() {
    "$@" </dev/null >"$work/out" 2>"$work/err"
    status=$?
    out=$(cat "$work/out")
    err=$(cat "$work/err")
}

# check <name> <expected status> <stream: out|err> <substring>...: the last run's status is
# <expected status> and each substring is in the named stream.
check() {
    what=$1
    expected=$2
    stream=$3
    shift 3
    if [ "$stream" = out ]; then text=$out; else text=$err; fi
    if [ "$status" -ne "$expected" ]; then
        echo "FAIL $what: exit status $status, expected $expected; stderr: $err"
        failures=$((failures + 1))
        return
    fi
    for want in "$@"; do
        case $text in
            *"$want"*) ;;
            *)
                echo "FAIL $what: no '$want' in its std$stream: $text"
                failures=$((failures + 1))
                return
                ;;
        esac
    done
    echo "ok $what"
}

# The checks every tool passes: --help, --version and an unknown flag.
common() {
    tool=$1
    name=$(basename "$tool")
    run "$tool" --help
    check "$name --help" 0 out "Usage: $name" "--version"
    run "$tool" --version
    check "$name --version" 0 out "ferry $version"
    if [ "$out" != "ferry $version" ]; then
        echo "FAIL $name --version: printed '$out', expected exactly 'ferry $version'"
        failures=$((failures + 1))
    fi
    run "$tool" --no-such-flag
    check "$name --no-such-flag" 2 err "--no-such-flag: unrecognized option" "usage: " \
        "Try '$name --help'"
}

common "$ferry"
run "$ferry"
check "ferry without a command" 2 err "missing command" "usage: ferry plugins"
run "$ferry" objref --help
check "ferry objref --help" 0 out "Usage: ferry objref" "<hex>"
run "$ferry" objref
check "ferry objref without its argument" 2 err "missing argument <hex>" "ferry objref <hex>"
run "$ferry" resolve not-hex "tcp:127.0.0.1[7135]"
check "ferry resolve with a bad OXID" 2 err "ferry resolve: not-hex: not an OXID" \
    "ferry resolve <oxid-hex>"
run "$ferry" resolve 1234 "tcp-127.0.0.1"
check "ferry resolve with a bad binding" 2 err "tcp-127.0.0.1: not a string binding" \
    "ferry resolve <oxid-hex>"
run "$ferry" activate "ferry://127.0.0.1/name/calc"
check "ferry activate with a name reference" 2 err "takes a class reference" "ferry activate <ferry://"
run "$ferry" activate "ferry://127.0.0.1/class/a//b"
check "ferry activate with a bad class" 2 err "it has an empty segment"
run "$ferry" objref 123
check "ferry objref with odd hex" 1 err "ferry: invalidObjRef: the OBJREF text has 3 characters"
run "$ferry" plugins
check "ferry plugins" 0 out "transport"
check "ferry plugins lists the security providers" 0 out "security  tls" "security  psk"
run "$ferry" keygen "$work/peer.psk" --id build-17
check "ferry keygen" 0 out "256-bit key 'build-17'" "keys=$work/peer.psk,id=build-17"
if [ "$(stat -c %a "$work/peer.psk")" != 600 ] || ! grep -Eq '^build-17 [0-9a-f]{64}$' "$work/peer.psk"; then
    echo "FAIL ferry keygen: $work/peer.psk is not mode 600 with one 'build-17 <64 hex digits>' line"
    failures=$((failures + 1))
fi
run "$ferry" keygen "$work/peer.psk" --id other
check "ferry keygen over an existing file" 1 err "never replaces a key file"
run "$ferry" keygen "$work/other.psk" --id "two words"
check "ferry keygen with a bad id" 2 err "not a key id" "ferry keygen <file>"
run "$ferry" ls not-a-pid
check "ferry ls with a bad pid" 2 err "ferry ls: not-a-pid: not a process: give a pid" "ferry ls [HOST[:PORT]/]<pid>"
run "$ferry" ping -c 0 1
check "ferry ping with a bad count" 2 err "not a count" "ferry ping <target>"
run "$ferry" call 1
check "ferry call without its method" 2 err "missing argument <Interface.method>" "ferry call <target>"
run "$ferry" call --help
check "ferry call --help" 0 out "Usage: ferry call" "--schema"

common "$capnpc"
run "$capnpc" extra-argument
check "capnpc-ferry with an argument" 2 err "extra-argument: too many arguments" "usage: capnp compile"
run "$capnpc"
check "capnpc-ferry with an empty request" 1 err "standard input holds no CodeGeneratorRequest"

if [ -n "$bench" ]; then
    common "$bench"
    run "$bench" --calls many
    check "ferry-bench --calls many" 2 err "--calls=many: not a whole number" "usage: ferry-bench"
    run "$bench" --loop-spin
    check "ferry-bench --loop-spin without a value" 2 err "--loop-spin: missing argument" \
        "usage: ferry-bench"
    run "$bench" --help
    check "ferry-bench --help lists its flags" 0 out "--calls=<N>" "--warmup=<N>" "--rows=<PATTERN>" \
        "--loop-spin=<MICROSECONDS>"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
