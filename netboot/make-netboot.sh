#!/bin/bash
# `make netboot`: build the TFTP root for broadband netboot in build/netboot/:
#   vmlinuz            the kernel (Debian's current linux-image-*-amd64, fetched and cached)
#   bb-initramfs.img   the imaging initramfs (bb-client as /init + NIC and disk modules)
#   boot.ipxe          the iPXE script (edit bb.dev= there)
#
# Environment (all optional):
#   KERNEL=path/to/vmlinuz MODDIR=path/to/lib/modules/KVER   use this kernel instead of Debian's
#   KVER=...              kernel version (default: basename of MODDIR)
#   CLIENT=path           a static bb-client (default: cargo build --release --target musl)
#   OUT=build/netboot     output directory;  CACHE=build/netboot-cache  download cache
#   MODULES=/EXTRA_MODULES=/COMPRESS=/KEY_FILE=  passed to initramfs/build.sh (KEY_FILE: a
#                         pre-shared key baked in as /etc/broadband/key; docs/NETBOOT.md)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/netboot}
CACHE=${CACHE:-build/netboot-cache}
TARGET=x86_64-unknown-linux-musl

if [ -n "${KERNEL:-}" ] || [ -n "${MODDIR:-}" ]; then
    [ -n "${KERNEL:-}" ] && [ -n "${MODDIR:-}" ] || { echo "netboot: KERNEL= and MODDIR= go together" >&2; exit 1; }
    KVER=${KVER:-$(basename "$MODDIR")}
    kernel=$KERNEL
else
    eval "$(netboot/fetch-kernel.sh "$CACHE" | grep -E '^(KVER|ROOT)=')"
    MODDIR=$ROOT/lib/modules/$KVER
    kernel=$ROOT/boot/vmlinuz-$KVER
fi

if [ -z "${CLIENT:-}" ]; then
    rustup target list --installed 2>/dev/null | grep -qx $TARGET || rustup target add $TARGET
    cargo build --release -q -p bb-client --target $TARGET
    CLIENT=${CARGO_TARGET_DIR:-target}/$TARGET/release/bb-client
fi

mkdir -p "$OUT"
cp "$kernel" "$OUT/vmlinuz"
KVER=$KVER MODDIR=$MODDIR CLIENT=$CLIENT KEY_FILE=${KEY_FILE:-} initramfs/build.sh "$OUT/bb-initramfs.img"
cp ipxe/boot.ipxe "$OUT/boot.ipxe"
echo "netboot: $OUT: vmlinuz ($KVER, $(stat -c %s "$OUT/vmlinuz") bytes)," \
     "bb-initramfs.img ($(stat -c %s "$OUT/bb-initramfs.img") bytes), boot.ipxe"
echo "netboot: next: copy $OUT/* to your TFTP root; see docs/NETBOOT.md"
