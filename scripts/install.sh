#!/usr/bin/env bash
# `make install`: copy the built programs, netboot files and docs under DESTDIR/PREFIX.
#   PREFIX/bin/bb-server, bb-pxe            (cargo build --release)
#   PREFIX/bin/bb-client                    (the static musl client of `make client`)
#   PREFIX/share/broadband/netboot/         vmlinuz + bb-initramfs.img (`make netboot`),
#                                           boot.ipxe and dnsmasq.conf.example (templates)
#   PREFIX/share/doc/broadband/             README.md, NETBOOT.md, PROTOCOL.md
# bb-pxe finds PREFIX/share/broadband/netboot beside its own PREFIX/bin.
# Environment: PREFIX (default /usr/local), DESTDIR (default empty), CARGO_TARGET_DIR,
#   NETBOOT_DIR (default build/netboot), CLIENT (default build/bb-client).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
TDIR=${CARGO_TARGET_DIR:-target}
NETBOOT_DIR=${NETBOOT_DIR:-build/netboot}
CLIENT=${CLIENT:-build/bb-client}
die() { echo "install: $*" >&2; exit 1; }

for f in "$TDIR/release/bb-server" "$TDIR/release/bb-pxe"; do
    [[ -x $f ]] || die "$f is not built: run 'make' (or cargo build --release -p bb-server -p bb-pxe) first"
done
[[ -x $CLIENT ]] || die "$CLIENT is not built: run 'make client' first (the static bb-client)"
for f in vmlinuz bb-initramfs.img; do
    [[ -f $NETBOOT_DIR/$f ]] || die "$NETBOOT_DIR/$f is missing: run 'make netboot' first"
done

root=$DESTDIR$PREFIX
install -d "$root/bin" "$root/share/broadband/netboot" "$root/share/doc/broadband"
install -m 0755 "$TDIR/release/bb-server" "$TDIR/release/bb-pxe" "$CLIENT" "$root/bin/"
install -m 0644 "$NETBOOT_DIR/vmlinuz" "$NETBOOT_DIR/bb-initramfs.img" ipxe/boot.ipxe \
    ipxe/dnsmasq.conf.example "$root/share/broadband/netboot/"
install -m 0644 README.md docs/NETBOOT.md docs/PROTOCOL.md "$root/share/doc/broadband/"
echo "install: bb-server, bb-client, bb-pxe in $root/bin; netboot files in $root/share/broadband/netboot"
