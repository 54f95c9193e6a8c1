#!/usr/bin/env bash
# A pipe as input (issue 8): an ext4 image (256 MiB file, about 64 MiB of files) piped into
# the server (`cat ext4.img | bb-server ... -`), to 2 clients at 1 % loss: a file and a loop
# device that held random bytes, byte-exact (23 covers pipe to stdout). v2: the server spools the pipe as compressed blocks and stores no zero blocks,
# so its spool directory ($TMPDIR) is a tmpfs of only 2 x `zstd -3` of the image + 16 MiB
# (a raw spool cannot fit), and tx bytes <= 1.15 x `zstd -3` of the image.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
lab_require_bins
lab_up 2 --loss 1
d=$(lab_tmpdir); img="$d/ext4.img"
img_ext4 "$img" 256 64 >/dev/null
isz=$(stat -c %s "$img")
zst=$(img_zstd_bytes "$img")
echo "image: $isz bytes, zstd -3: $zst bytes"
v2=0; bb_is_v2 && v2=1
spool="$d/spool"
if (( v2 )); then
    spool_mib=$(( 2 * (zst >> 20) + 16 ))
    lab_mount_tmpfs "$spool" "$spool_mib" || lab_fail "cannot mount a tmpfs for the spool"
    echo "spool: a ${spool_mib} MiB tmpfs for a $((isz >> 20)) MiB image"
else
    mkdir -p "$spool"
fi
bb_client c1 1 10.99.0.1 "$d/c1.img"
lab_make_image "$d/old" $(( (isz >> 20) + 8 ))
old=$(lab_losetup "$d/old") || { echo "skipped: no loop device available"; exit 77; }
bb_client c2 2 10.99.0.1 "$old"
tx0=$("$NETLAB" txbytes)
lab_bg srv srv env TMPDIR="$spool" sh -c 'cat "$1" | exec "$0" --timeout "$2" --rate "$3" --clients 2 10.99.0.255 -' \
    "$BB_SERVER" "$img" "$BB_SERVER_TIMEOUT" "$BB_RATE"
lab_wait srv 90 || lab_fail "bb-server (pipe) $(bb_why srv)"
lab_wait c1 30 || true; lab_wait c2 30 || true
tx=$(( $("$NETLAB" txbytes) - tx0 ))
echo "server tx $tx bytes = $(ratio "$tx" "$isz") x image = $(ratio "$tx" "$zst") x zstd -3;" \
    "every client ended $(bb_span srv c1 c2)s after the server started"
bb_check_clients "$img" c1:"$d/c1.img" c2:"$old"
echo "byte-exact: file, loop device that held random bytes"
if (( v2 )); then
    le "$tx" "$(awk -v z="$zst" 'BEGIN { print 1.15 * z }')" \
        || lab_fail "server sent $tx bytes, more than 1.15 x zstd -3 of the image ($zst)"
else
    echo "not checked (bb-server predates protocol v2): compressed spool without zero blocks, tx <= 1.15 x zstd -3"
fi
