#!/bin/bash
# Build broadband's imaging initramfs: bb-client as /init, /dev/console, and the NIC and disk
# kernel modules (with everything they depend on) from a kernel's modules tree.
#
#   KVER=6.1.0-56-amd64 MODDIR=/lib/modules/6.1.0-56-amd64 CLIENT=path/to/bb-client \
#       initramfs/build.sh OUTPUT.img
#
# Environment:
#   KVER      kernel version (default: basename of MODDIR, else `uname -r`)
#   MODDIR    modules tree of that kernel (default /lib/modules/$KVER). A tree without
#             modules.dep (Debian's .deb ships none) is indexed with `depmod -b` in a copy-free way:
#             depmod writes its index files next to the modules.
#   CLIENT    the static bb-client binary (required)
#   MODULES   modules to include (default below); missing ones are skipped with a note
#   EXTRA_MODULES  added to MODULES
#   COMPRESS  auto (default), zstd, xz or gzip. auto picks, from the kernel's config
#             (MODDIR/../../../boot/config-KVER or MODDIR/build/.config), zstd -19 if
#             CONFIG_RD_ZSTD=y (fast to unpack, 2.1 MiB with the default modules), else xz
#             (1.9 MiB, slower to unpack), else gzip -9 (2.8 MiB + bb-client: over 3 MiB)
#   EXTRA_FILES  "SRC:DEST ..." extra files to copy (for debugging: a static busybox as /bin/sh)
#   KEY_FILE  a pre-shared key (bb-server --gen-key) baked in as /etc/broadband/key (mode
#             0600): /init uses it unless bb.key= is given. Anyone who can fetch the
#             initramfs can read it: see docs/SECURITY.md
#   ALL_MODULES=1  bb-client loads every module at boot instead of those matching the hardware
#   STRIP_CLIENT 1 (default) strips the copy of bb-client; STRIP=1 strips modules' debug info
#
# The module load order is written to /lib/modules/bb-modules.order (absolute paths, one per
# line, dependencies first); bb-client's init mode loads them with finit_module(2).
set -euo pipefail

out=${1:?usage: build.sh OUTPUT.img  (env KVER, MODDIR, CLIENT)}
: "${CLIENT:?CLIENT= path to the static bb-client is required}"
if [ -z "${KVER:-}" ]; then
    if [ -n "${MODDIR:-}" ]; then KVER=$(basename "$MODDIR"); else KVER=$(uname -r); fi
fi
MODDIR=${MODDIR:-/lib/modules/$KVER}
DEFAULT_MODULES="virtio_net virtio_blk virtio_pci e1000 e1000e igb ixgbe i40e mlx5_core r8169 ahci nvme sd_mod"
MODULES="${MODULES:-$DEFAULT_MODULES} ${EXTRA_MODULES:-}"
COMPRESS=${COMPRESS:-auto}

die() { echo "initramfs/build.sh: $*" >&2; exit 1; }
[ -f "$CLIENT" ] || die "CLIENT=$CLIENT does not exist (build it: cargo build --release -p bb-client --target x86_64-unknown-linux-musl)"
[ -d "$MODDIR" ] || die "MODDIR=$MODDIR does not exist"
MODDIR=$(cd "$MODDIR" && pwd -P)
command -v cpio >/dev/null || die "cpio is missing (apt-get install cpio)"
command -v modprobe >/dev/null || die "modprobe is missing (apt-get install kmod)"
if file "$CLIENT" 2>/dev/null | grep -q 'dynamically linked'; then
    die "$CLIENT is dynamically linked; build the static musl binary"
fi

# modprobe -d wants ROOT with lib/modules/KVER under it.
case "$MODDIR" in
    */lib/modules/"$KVER") modroot=${MODDIR%/lib/modules/$KVER} ;;
    *) die "MODDIR must end in lib/modules/$KVER (got $MODDIR)" ;;
esac
[ -n "$modroot" ] || modroot=/
if [ ! -s "$MODDIR/modules.dep" ]; then
    echo "initramfs/build.sh: no modules.dep in $MODDIR, running depmod -b $modroot $KVER" >&2
    depmod -b "$modroot" "$KVER"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/bb-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,tmp,bin,lib/modules}
cp "$CLIENT" "$stage/init"
chmod 0755 "$stage/init"
# Symbols are no use in the initramfs (a release build keeps them: ~30% of the binary).
if [ "${STRIP_CLIENT:-1}" = 1 ] && command -v strip >/dev/null; then
    strip --strip-all "$stage/init" 2>/dev/null || true
fi
ln -s ../init "$stage/bin/bb-client"

# Resolve the modules and their dependencies, in load order, without duplicates.
order=$stage/lib/modules/bb-modules.order
: >"$order"
declare -A seen=()
missing=()
# Also, for bb-client to load only what the hardware needs: bb-modules.alias (PATTERN MODULE,
# from modules.alias) and bb-modules.deps (MODULE PATH... in load order; "*MODULE" = always,
# for modules without a pci/virtio/usb device alias, such as sd_mod).
aliasf=$stage/lib/modules/bb-modules.alias
depsf=$stage/lib/modules/bb-modules.deps
echo "# PATTERN MODULE (written by initramfs/build.sh for $KVER)" >"$aliasf"
: >"$depsf"
for m in $MODULES; do
    if ! deps=$(modprobe -d "$modroot" -S "$KVER" --show-depends --ignore-install "$m" 2>/dev/null); then
        missing+=("$m")
        continue
    fi
    name=${m//-/_}
    awk -v n="$name" '$1 == "alias" && $3 == n && $2 ~ /^(pci|virtio|usb|scsi):/ { print $2, $3 }' \
        "$MODDIR/modules.alias" >>"$aliasf"
    if awk -v n="$name" '$1 == "alias" && $3 == n && $2 ~ /^(pci|virtio|usb):/ { f = 1 } END { exit !f }' "$MODDIR/modules.alias"; then
        depline=$name
    else
        depline="*$name"
    fi
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue     # "builtin X" needs nothing
        rel=/lib/modules/$KVER/${path#*/lib/modules/"$KVER"/}
        depline="$depline ${rel%.[gx]z}"
        depline=${depline%.zst}
        [ -n "${seen[$path]:-}" ] && continue
        seen[$path]=1
        rel=/lib/modules/$KVER/${path#*/lib/modules/"$KVER"/}
        mkdir -p "$stage$(dirname "$rel")"
        case "$path" in
            *.ko) cp "$path" "$stage$rel" ;;
            *.ko.xz) xz -dc "$path" >"$stage${rel%.xz}"; rel=${rel%.xz} ;;
            *.ko.zst) zstd -qdc "$path" >"$stage${rel%.zst}"; rel=${rel%.zst} ;;
            *.ko.gz) gzip -dc "$path" >"$stage${rel%.gz}"; rel=${rel%.gz} ;;
            *) die "unexpected module file $path" ;;
        esac
        echo "$rel" >>"$order"
    done <<<"$deps"
    [ "$depline" = "$name" ] || [ "$depline" = "*$name" ] || echo "$depline" >>"$depsf"
done
# A module with no device alias and no "always" mark is never loaded by hardware matching;
# ALL_MODULES=1 makes bb-client load every listed module instead (no alias files).
if [ "${ALL_MODULES:-0}" = 1 ]; then rm -f "$aliasf" "$depsf"; fi
[ ${#missing[@]} -eq 0 ] || echo "initramfs/build.sh: not in this kernel (skipped): ${missing[*]}" >&2

# Modules are copied as they are: Debian's carry no debug info, and stripping would drop their
# signatures (an appended PKCS#7 blob), which a kernel in lockdown (Secure Boot) requires.
# STRIP=1 strips debug info anyway, for self-built kernels with unsigned debug modules.
if [ "${STRIP:-0}" = 1 ]; then
    find "$stage/lib/modules" -name '*.ko' -exec strip --strip-debug {} +
fi

if [ -n "${KEY_FILE:-}" ]; then
    [ -r "$KEY_FILE" ] || die "KEY_FILE=$KEY_FILE: cannot read it"
    # The formats bb-client accepts: 32 raw bytes, or 64 hex digits with any whitespace.
    if [ "$(stat -c %s "$KEY_FILE")" != 32 ] &&
        ! tr -d ' \t\r\n' <"$KEY_FILE" | grep -Eqx '[0-9a-fA-F]{64}'; then
        die "KEY_FILE=$KEY_FILE: not a key: expected 64 hex digits (whitespace allowed) or exactly 32 raw bytes (bb-server --gen-key FILE writes one)"
    fi
    mkdir -p "$stage/etc/broadband"
    install -m 600 "$KEY_FILE" "$stage/etc/broadband/key"
fi

for pair in ${EXTRA_FILES:-}; do
    src=${pair%%:*}; dst=${pair#*:}
    mkdir -p "$stage$(dirname "$dst")"
    cp -L "$src" "$stage$dst"
done

# /dev/console must exist for the kernel to give /init a console (bb-client's init also
# reopens it after mounting devtmpfs, so a build without root still boots, just with the
# kernel's "unable to open an initial console" warning).
if ! mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null; then
    echo "initramfs/build.sh: warning: cannot mknod /dev/console (not root?)" >&2
fi
mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

if [ "$COMPRESS" = auto ]; then
    COMPRESS=gzip
    for cfg in "$modroot/boot/config-$KVER" "/boot/config-$KVER" "$MODDIR/build/.config"; do
        [ -f "$cfg" ] || continue
        if grep -q '^CONFIG_RD_ZSTD=y' "$cfg" && command -v zstd >/dev/null; then COMPRESS=zstd
        elif grep -q '^CONFIG_RD_XZ=y' "$cfg" && command -v xz >/dev/null; then COMPRESS=xz
        fi
        break
    done
fi
case "$COMPRESS" in
    gzip) comp=(gzip -9 -n) ;;
    xz) comp=(xz -9 --check=crc32) ;;
    zstd) comp=(zstd -19 -q) ;;
    *) die "COMPRESS must be gzip, xz or zstd" ;;
esac
mkdir -p "$(dirname "$out")"
repro=()
cpio --help 2>&1 | grep -q -- --reproducible && repro=(--reproducible)
find "$stage" -mindepth 1 -exec touch -h -d @0 {} + 2>/dev/null || true
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet "${repro[@]}") |
    "${comp[@]}" >"$out.tmp"
mv "$out.tmp" "$out"
nmods=$(wc -l <"$order")
size=$(stat -c %s "$out")
echo "initramfs/build.sh: $out: $size bytes ($((size / 1024)) KiB), kernel $KVER, $nmods modules, $COMPRESS" >&2
