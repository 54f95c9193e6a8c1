#!/usr/bin/env bash
# Output to a block device: a 48 MiB loop device (filled with random bytes) receives a
# 32 MiB image. The first 32 MiB equal the image; the last 16 MiB are untouched.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
command -v losetup >/dev/null || { echo "skipped: losetup not found"; exit 77; }
lab_up 2
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
lab_make_image "$d/disk" 48
dev=$(lab_losetup "$d/disk") || { echo "skipped: no loop device available"; exit 77; }
tail_before=$(tail -c $((16 << 20)) "$dev" | sha256sum)
bb_client c1 1 10.99.0.1 "$dev"
bb_client c2 2 10.99.0.1 "$d/c2.img"
bb_server srv --rate "$BB_RATE" --clients 2 10.99.0.255 "$img"
lab_wait srv 75 || lab_fail "bb-server $(bb_why srv)"
lab_wait c1 30 || true; lab_wait c2 30 || true
bb_check_clients "$img" "c1:$dev" "c2:$d/c2.img"
blockdev --flushbufs "$dev" 2>/dev/null || true
cmp -s -n $((32 << 20)) "$d/disk" "$img" || lab_fail "backing file of $dev differs from the image"
tail_after=$(tail -c $((16 << 20)) "$dev" | sha256sum)
[[ "$tail_before" == "$tail_after" ]] || lab_fail "bytes past the image end on $dev were changed"
echo "$dev: first 32 MiB == image, last 16 MiB untouched"
