#!/usr/bin/env bash
# A target too small (an 8 MiB loop device for a 32 MiB image) is refused: the client exits
# non-zero on its own (not killed by a timeout) and the device is unchanged. A second client
# writing to a file still gets the image, and the server (--clients 2: both machines) exits
# non-zero because one of them failed.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
command -v losetup >/dev/null || { echo "skipped: losetup not found"; exit 77; }
lab_up 2
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
lab_make_image "$d/small" 8
dev=$(lab_losetup "$d/small") || { echo "skipped: no loop device available"; exit 77; }
before=$(sha256sum <"$dev")
bb_client c1 1 10.99.0.1 "$dev"
bb_client c2 2 10.99.0.1 "$d/c2.img"
bb_server srv --rate "$BB_RATE" --clients 2 10.99.0.255 "$img"
rc1=0; lab_wait c1 45 || rc1=$?
rs=0; lab_wait srv 75 || rs=$?
lab_wait c2 30 || true
(( rc1 != 0 )) || lab_fail "client accepted an 8 MiB target for a 32 MiB image (exit 0)"
(( rc1 != 124 )) || lab_fail "client did not refuse the small target (it ran until the test timeout)"
after=$(sha256sum <"$dev")
[[ "$before" == "$after" ]] || lab_fail "the too-small device was written to"
bb_check_clients "$img" "c2:$d/c2.img"
(( rs != 0 && rs != 124 )) || lab_fail "server exit $rs although one of the 2 wanted clients failed"
echo "too-small target refused with exit $rc1: $(lab_tail c1 1)"
echo "device unchanged; server exit $rs"
