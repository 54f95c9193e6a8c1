#!/bin/bash
# Build a distribution initramfs with broadband's hook, for the extracted Debian kernel,
# without touching the host's initramfs configuration:
#   netboot/distro-initrd.sh initramfs-tools|dracut KVER MODDIR CLIENT OUT
# initramfs-tools: mkinitramfs -d <private confdir> (MODULES=list + the hook's drivers); it only
#   reads /lib/modules/KVER, so MODDIR is bind-mounted there inside a private mount namespace.
# dracut: dracut --kmoddir MODDIR --no-hostonly with the 90broadband module from this tree.
set -euo pipefail
kind=${1:?} kver=${2:?} moddir=${3:?} client=${4:?} out=${5:?}
here=$(cd "$(dirname "$0")/.." && pwd)
moddir=$(cd "$moddir" && pwd -P)
client=$(cd "$(dirname "$client")" && pwd -P)/$(basename "$client")
out=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd -P)/$(basename "$out")
tmp=$(mktemp -d /tmp/bb-distro-initrd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

case "$kind" in
initramfs-tools)
    command -v mkinitramfs >/dev/null || { echo "mkinitramfs missing (apt-get install initramfs-tools-core)" >&2; exit 2; }
    conf=$tmp/conf
    mkdir -p "$conf/hooks" "$conf/scripts/init-premount" "$conf/conf.d"
    cat >"$conf/initramfs.conf" <<'CONF'
MODULES=list
BUSYBOX=auto
KEYMAP=n
COMPRESS=gzip
DEVICE=
NFSROOT=auto
RUNSIZE=10%
FSTYPE=auto
CONF
    : >"$conf/modules"
    cp "$here/initramfs/initramfs-tools/hooks/broadband" "$conf/hooks/"
    cp "$here/initramfs/initramfs-tools/scripts/init-premount/broadband" "$conf/scripts/init-premount/"
    # mkinitramfs reads /lib/modules/$kver only: show it MODDIR in a private mount namespace.
    made=""
    if [ ! -e /lib/modules ]; then mkdir /lib/modules; made=/lib/modules; fi
    mp=/lib/modules/$kver
    if [ ! -e "$mp" ]; then mkdir "$mp"; made="$mp $made"; fi
    # ... and /boot/config-$kver (it checks the initramfs compressor against the config).
    kroot=${moddir%/lib/modules/*}
    [ -f "$kroot/boot/config-$kver" ] || { echo "no $kroot/boot/config-$kver" >&2; exit 2; }
    if [ ! -e /boot ]; then mkdir /boot; made="$made /boot"; fi
    rc=0
    BB_CLIENT=$client unshare -m --propagation private sh -c \
        'mount --bind "$1" "$2" && mount --bind "$7/boot" /boot && TMPDIR=$3 mkinitramfs -d "$4" -o "$5" "$6"' \
        sh "$moddir" "$mp" "$tmp" "$conf" "$out" "$kver" "$kroot" || rc=$?
    for d in $made; do rmdir "$d" 2>/dev/null || true; done
    [ $rc -eq 0 ] || exit $rc
    ;;
dracut)
    command -v dracut >/dev/null || { echo "dracut missing (apt-get install dracut-core)" >&2; exit 2; }
    # dracut takes its modules from $dracutbasedir/modules.d: give it a private base dir
    # (symlinks to the installed one) whose modules.d also holds 90broadband from this tree.
    base=$tmp/dracut
    mkdir -p "$base/modules.d"
    for f in /usr/lib/dracut/*; do
        [ "$(basename "$f")" = modules.d ] || ln -s "$f" "$base/"
    done
    for m in /usr/lib/dracut/modules.d/*; do ln -s "$m" "$base/modules.d/"; done
    rm -f "$base/modules.d/90broadband"
    cp -a "$here/initramfs/dracut/90broadband" "$base/modules.d/"
    mkdir -p "$tmp/noconf"
    BB_CLIENT=$client dracutbasedir=$base \
        dracut --quiet --force --no-hostonly --no-early-microcode --gzip \
        --modules "base broadband" \
        --kver "$kver" --kmoddir "$moddir" --tmpdir "$tmp" \
        --conf /dev/null --confdir "$tmp/noconf" "$out"
    ;;
*) echo "usage: distro-initrd.sh initramfs-tools|dracut KVER MODDIR CLIENT OUT" >&2; exit 2 ;;
esac
echo "$kind initramfs: $out ($(stat -c %s "$out") bytes)"
