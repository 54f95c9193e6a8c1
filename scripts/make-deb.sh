#!/usr/bin/env bash
# `make deb`: build/broadband_VERSION_amd64.deb with dpkg-deb from what `make install`
# installs (PREFIX=/usr): the three programs, the netboot files and the docs.
# dnsmasq-base and ipxe are Recommends: bb-server and bb-client work without them, and
# bb-pxe names the apt command when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dpkg-deb >/dev/null || { echo "deb: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage PREFIX=/usr bash scripts/install.sh >/dev/null
install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CTRL
Package: broadband
Version: $version
Architecture: $arch
Maintainer: broadband developers <broadband@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Recommends: dnsmasq-base, ipxe
Description: write one disk image onto many machines at once over UDP
 bb-server sends a disk image by broadcast or multicast with erasure-coded repairs;
 bb-client (static, heap-free; also the imaging initramfs's /init) writes and verifies it;
 bb-pxe serves a room by PXE with one command (dnsmasq proxy or full DHCP + TFTP, the
 imaging kernel and initramfs in /usr/share/broadband/netboot, and bb-server).
CTRL
mkdir -p build
out=build/broadband_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "deb: $out ($(stat -c %s "$out") bytes)"
