#!/bin/sh
# Runs a test program as on a host without /etc/machine-id (minimal root filesystems, most
# container images): in a private mount namespace where an empty file is bind-mounted over it.
# Every process the program starts sees the same, so they must still agree that they share a host
# (the runtime falls back to the kernel's boot id).
#   without-machine-id.sh PROGRAM [ARGS...]
# Exits 77 (meson: skipped) with the reason where a mount namespace cannot be made.
set -u
if [ ! -s /etc/machine-id ]; then
    echo "this machine has no machine id: running as is"
    exec "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: hiding /etc/machine-id needs root (a private mount namespace); running as uid $(id -u)"
    exit 77
fi
if ! unshare --mount true 2>/dev/null; then
    echo "SKIP: this environment cannot make a mount namespace (unshare --mount failed)"
    exit 77
fi
empty=$(mktemp /tmp/ferry-no-machine-id.XXXXXX) || exit 1
# The namespace ends with the program; nothing is mounted outside it.
unshare --mount --propagation private sh -c '
    mount --bind "$0" /etc/machine-id || exit 1
    [ ! -s /etc/machine-id ] || { echo "the machine id is still visible"; exit 1; }
    echo "/etc/machine-id is hidden (empty) for this test"
    exec "$@"' "$empty" "$@"
status=$?
rm -f "$empty"
exit $status
