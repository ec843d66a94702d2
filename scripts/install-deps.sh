#!/bin/sh
# install-deps.sh — install the Debian packages altgrad needs, when missing.
# As root it runs apt-get; otherwise it lists what is missing and goes on
# (the build then says what it cannot find).
# `install-deps.sh aarch64`: the cross compiler and qemu of make test-aarch64
# instead (not needed by make test).
set -u
PKGS="gcc g++ make pkg-config libc6-dev zlib1g-dev libopenblas-dev python3 python3-dev \
python3-numpy python3-torch python3-pytest python3-setuptools python3-pip python3-yaml \
python3-matplotlib dataset-fashion-mnist bible-kjv"
[ "${1:-}" = aarch64 ] && PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || exit 1
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
else
    echo "install-deps: missing Debian packages:$missing (run as root to install them)" >&2
fi
exit 0
