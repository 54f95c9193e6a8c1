#!/bin/bash
# Fetch and unpack Debian's current linux-image-*-amd64 package (cached).
#   netboot/fetch-kernel.sh CACHEDIR
# Prints two lines on stdout: KVER=<version> and ROOT=<unpacked root>.
# The package version is resolved through the linux-image-amd64 metapackage's
# dependency, so `apt-get update` decides which kernel is "current".
# Override the package name with KPKG=linux-image-6.1.0-56-amd64.
set -euo pipefail
cache=${1:?usage: fetch-kernel.sh CACHEDIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

pkg=${KPKG:-}
if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        echo "fetch-kernel: cannot resolve linux-image-amd64 (run apt-get update first)" >&2
        exit 1
    fi
fi
kver=${pkg#linux-image-}
root=$cache/$pkg
if [ ! -f "$root/boot/vmlinuz-$kver" ]; then
    deb=$(ls "$cache"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        echo "fetch-kernel: apt-get download $pkg" >&2
        (cd "$cache" && apt-get download -q "$pkg" >&2)
        deb=$(ls "$cache"/"${pkg}"_*.deb | head -n1)
    fi
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    dpkg-deb -x "$deb" "$root.tmp"
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi
# Debian's package ships no modules.dep: build it once.
if [ ! -s "$root/lib/modules/$kver/modules.dep" ]; then
    depmod -b "$root" "$kver"
fi
echo "KVER=$kver"
echo "ROOT=$root"
