#!/bin/sh
# Installs the Debian packages ferry needs to build, test and run its demo.
# Idempotent: only packages that are missing are installed, and apt is not
# touched at all when everything is present. Needs root (or sudo) for apt.
#   install-deps.sh           ferry's own packages
#   install-deps.sh --peers   also those of the comparison matrix's peers (ZeroC Ice, omniORB,
#                             gRPC) and its plot (bench/peers/setup.sh runs this)
set -eu

packages="build-essential g++ pkg-config meson ninja-build \
libuv1-dev capnproto libcapnp-dev libssl-dev libboost-test-dev \
iproute2 procps libsystemd-dev systemd"

if [ "${1:-}" = "--peers" ]; then
    packages="$packages libzeroc-ice-dev zeroc-ice-compilers libomniorb4-dev omniidl \
libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev gnuplot-nox"
fi

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

echo "install-deps: installing$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
