#!/usr/bin/env bash
# Failing targets harm no one else. With --clients 3 and a 32 MiB image: c1 writes to a file
# on a 16 MiB tmpfs (the disk fills), c2 to a 64 MiB loop device over a sparse file on
# another 16 MiB tmpfs (the device returns I/O errors once its backing store is full), c3 to
# a plain file. c1 and c2 exit 4 (I/O error) with a message naming the cause and report it;
# c3 ends byte-exact; the server exits 1 and its summary names both machines and the reason.
# Nothing is written outside the image's range: c2's device past the image stays zero.
# A target removed mid-write: test 66 (FUSE files that go away).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
command -v losetup >/dev/null || { echo "skipped: losetup not found"; exit 77; }
lab_up 3
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
isz=$(stat -c %s "$img")
for m in full1 full2; do
    mkdir "$d/$m"
    mount -t tmpfs -o size=16m "lab-$LAB-$m" "$d/$m" || { echo "skipped: cannot mount tmpfs"; exit 77; }
    echo "$d/$m" >>"$LAB_LOGDIR/.mounts"
done
truncate -s 64M "$d/full2/backing"
dev=$(lab_losetup "$d/full2/backing") || { echo "skipped: no loop device available"; exit 77; }
bb_client c1 1 10.99.0.1 "$d/full1/c1.img"
bb_client c2 2 10.99.0.1 "$dev"
bb_client c3 3 10.99.0.1 "$d/c3.img"
t0=$(date +%s.%N)
bb_server srv --rate "$BB_RATE" --clients 3 10.99.0.255 "$img"
rs=0; lab_wait srv 90 || rs=$?
for c in c1 c2 c3; do lab_wait "$c" 30 || true; done
bb_check_clients "$img" "c3:$d/c3.img"
for c in c1 c2; do
    rc=$(lab_rc "$c")
    [[ "$rc" == 4 ]] || lab_fail "$c (failing target) exit ${rc:-none}, not 4 (I/O error): $(lab_tail "$c" 2)"
    echo "$c exit 4: $(grep 'FAILED' "$LAB_LOGDIR/$c.err" | tail -n 1)"
done
grep -q "FAILED.*file system is full" "$LAB_LOGDIR/c1.err" || lab_fail "c1's message does not name a full disk: $(lab_tail c1 2)"
grep -qE "FAILED.*(writing|flushing) the target failed" "$LAB_LOGDIR/c2.err" || lab_fail "c2's message does not name the failing write: $(lab_tail c2 2)"
(( rs == 1 )) || lab_fail "server exit $rs, not 1, with two failed clients: $(bb_why srv)"
for a in 10.99.0.11 10.99.0.12; do
    row=$(grep -E "^ +$a:[0-9]+ " "$LAB_LOGDIR/srv.err" || true)
    [[ "$row" == *FAILED* && "$row" == *"I/O error"* ]] || lab_fail "the server's summary does not name $a as failed with an I/O error: '$row'"
    echo "srv: $(echo "$row" | awk '{$1=$1; print}')"
done
(( $(stat -c %s "$d/full1/c1.img") <= isz )) || lab_fail "c1's file grew past the image size"
cmp -s -n $(( 64 * 1024 * 1024 - isz )) <(tail -c +$(( isz + 1 )) "$d/full2/backing") /dev/zero ||
    lab_fail "c2's device was written past the image's range"
echo "nothing written past the image's range; server exit 1 naming both machines"
bb_summary "$img" "$t0"
