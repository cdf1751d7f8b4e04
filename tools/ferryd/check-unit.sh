#!/bin/sh
# Checks the built ferryd.service: `systemd-analyze verify` accepts it (with ExecStart pointing
# at the built ferryd, since the installed one need not exist), and `systemd-analyze security`
# rates its exposure 4.0 or better. Exits 77 (skipped) without systemd-analyze.
#   check-unit.sh <built ferryd.service> <built ferryd>
set -eu
unit=$1
ferryd=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^ExecStart=[^ ]*#ExecStart=$ferryd#" "$unit" > "$work/ferryd.service"
systemd-analyze verify "$work/ferryd.service"
# --threshold=40: exit status non-zero when the exposure is above 4.0.
if ! systemd-analyze security --offline=true --threshold=40 "$unit" > "$work/security.txt" 2>&1; then
    cat "$work/security.txt"
    echo "ferryd.service is rated above 4.0 (see above): restore the sandboxing options"
    exit 1
fi
grep 'Overall exposure' "$work/security.txt"
