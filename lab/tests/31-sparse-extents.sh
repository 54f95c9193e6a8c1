#!/usr/bin/env bash
# A sparse file (issue 8): 512 MiB holding 16 MiB of random bytes in 64 extents at scattered
# offsets, to 3 clients at 1 % loss: two files and a loop device full of random bytes (every
# zero range must be zeroed on it). All byte-exact over the whole image. (No stdout client:
# it writes in order with a fixed window and costs resends; 30 covers stdout.)
# v2 budget (a property): server tx bytes <= 1.1 x the 16 MiB of data the file holds.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
lab_require_bins
command -v losetup >/dev/null || { echo "skipped: losetup not found"; exit 77; }
lab_up 3 --loss 1
d=$(lab_tmpdir); img="$d/sparse.img"
data=$((16 << 20))
img_sparse "$img" 512 16 64
isz=$(stat -c %s "$img")
echo "image: $isz bytes, $data bytes of random data in 64 extents, $(img_alloc_bytes "$img") allocated"

v2=0; bb_is_v2 && v2=1
lab_make_image "$d/old" 512
old=$(lab_losetup "$d/old") || { echo "skipped: no loop device available"; exit 77; }
bb_client c1 1 10.99.0.1 "$d/c1.img"
bb_client c2 2 10.99.0.1 "$old"
bb_client c3 3 10.99.0.1 "$d/c3.img"
tx0=$("$NETLAB" txbytes)
bb_server srv --rate "$BB_RATE" --clients 3 --summary-json "$d/summary.json" 10.99.0.255 "$img"
lab_wait srv 120 || lab_fail "bb-server $(bb_why srv)"
for k in 1 2 3; do lab_wait "c$k" 30 || true; done
tx=$(( $("$NETLAB" txbytes) - tx0 ))
echo "server tx $tx bytes (summary: $(bb_json "$d/summary.json" bytes_sent)) = $(ratio "$tx" "$data") x data" \
    "= $(ratio "$tx" "$isz") x image; every client ended $(bb_span srv c1 c2 c3)s after the server started"

bb_check_clients "$img" c1:"$d/c1.img" c2:"$old" c3:"$d/c3.img"
blockdev --flushbufs "$old" 2>/dev/null || true
cmp -s -n "$isz" "$d/old" "$img" || lab_fail "the device's backing file differs from the image: old bytes survived"
echo "byte-exact: 2 files, loop device that held random bytes"

if (( v2 )); then
    fails=()
    le "$tx" "$(awk -v z="$data" 'BEGIN { print 1.1 * z }')" \
        || fails+=("server sent $tx bytes, more than 1.1 x the $data bytes of data the image holds")
    alloc=$(img_alloc_bytes "$d/c1.img") nonzero=$(img_nonzero_bytes "$img")
    echo "file target allocates $alloc bytes (non-zero blocks: $nonzero)"
    le "$alloc" $(( nonzero + (1 << 20) )) || fails+=("file target allocates $alloc bytes: zero blocks were written")
    (( ${#fails[@]} == 0 )) || lab_fail "$(printf '%s; ' "${fails[@]}")"
else
    echo "not checked (bb-server/bb-client predate protocol v2): tx <= 1.1 x data, holes in the file target"
fi
