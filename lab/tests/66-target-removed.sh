#!/usr/bin/env bash
# A target removed mid-write gives a clear error and harms no one else. The kernel here has
# no scsi_debug, nbd or device-mapper: the targets that go away are lab/fusefail.py's FUSE
# files. With --clients 5 and a 32 MiB image:
#   c1 writes to a 64 MiB loop device over a FUSE file whose daemon is killed (SIGKILL) once
#      30% of the image was sent: the device then returns EIO, like an unplugged disk (the
#      client's writes sit in the page cache, so the error shows when it writes or flushes);
#   c2 writes to a FUSE file directly; its daemon kills itself in the write that reaches 30%
#      of the image: the next write on the open file fails with ENOTCONN;
#   c3 writes to a FUSE file whose writes fail with ENODEV past 30% (a removed disk's driver);
#   c4 and c5 write plain files.
# c1..c3 exit 4 (I/O error) with a message naming the target and the cause, and report it;
# c4 and c5 end byte-exact; the server exits 1 and its summary names the three machines
# and "I/O error". Nothing is written past the image's range.
# (A plain file on a tmpfs unmounted lazily mid-write is no such case: the file system
# lives on while the client holds the file open, so its writes succeed; not tested.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_require_fuse
command -v losetup >/dev/null || { echo "skipped: losetup not found"; exit 77; }
lab_up 5
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
isz=$(stat -c %s "$img")
at30=$(( isz * 3 / 10 ))
truncate -s 64M "$d/backing1"
: >"$d/backing2"; : >"$d/backing3"
t1=$(lab_fusefail fuse1 "$d/backing1") || lab_fail "cannot mount fusefail.py"
t2=$(lab_fusefail fuse2 "$d/backing2" --vanish-after "$at30") || lab_fail "cannot mount fusefail.py"
t3=$(lab_fusefail fuse3 "$d/backing3" --write-fail-after "$at30" --write-errno ENODEV) ||
    lab_fail "cannot mount fusefail.py"
dev=$(lab_losetup "$t1") || { echo "skipped: no loop device available"; exit 77; }
bb_client c1 1 10.99.0.1 "$dev"
bb_client c2 2 10.99.0.1 "$t2"
bb_client c3 3 10.99.0.1 "$t3"
bb_client c4 4 10.99.0.1 "$d/c4.img"
bb_client c5 5 10.99.0.1 "$d/c5.img"
t0=$(date +%s.%N)
tx0=$(lab_txbytes)
bb_server srv --rate 50M --clients 5 10.99.0.255 "$img"
lab_wait_txbytes $(( tx0 + at30 )) 60 || lab_fail "30% not sent within 60 s: $(lab_tail srv 3)"
kill -KILL "$(lab_pid fuse1)"
echo "fuse1 (under $dev) killed at 30% sent"
rs=0; lab_wait srv 90 || rs=$?
for c in c1 c2 c3 c4 c5; do lab_wait "$c" 30 || true; done
grep -q "vanishing (SIGKILL)" "$LAB_LOGDIR/fuse2.err" || lab_fail "fuse2 did not vanish: $(lab_tail fuse2 2)"
grep -q ": ENODEV" "$LAB_LOGDIR/fuse3.err" || lab_fail "fuse3 failed no write: $(lab_tail fuse3 2)"
bb_check_clients "$img" "c4:$d/c4.img" "c5:$d/c5.img"
echo "c4, c5 byte-exact"
for c in c1 c2 c3; do
    rc=$(lab_rc "$c")
    [[ "$rc" == 4 ]] || lab_fail "$c (target removed) exit ${rc:-none}, not 4 (I/O error): $(lab_tail "$c" 2)"
    echo "$c exit 4: $(grep 'FAILED' "$LAB_LOGDIR/$c.err" | tail -n 1)"
done
grep -qE "FAILED.*(writing the target failed at byte [0-9]+ of|flushing the target failed \()$dev.*(I/O|Input/output) error.*or it was removed" "$LAB_LOGDIR/c1.err" ||
    lab_fail "c1's message does not name $dev, the I/O error and a removal: $(lab_tail c1 2)"
for c in c2 c3; do
    t=$t2; [[ $c == c3 ]] && t=$t3
    grep -qE "FAILED.*writing the target failed at byte [0-9]+ of $t: .*the target went away" "$LAB_LOGDIR/$c.err" ||
        lab_fail "$c's message does not name $t and the target going away: $(lab_tail "$c" 2)"
done
(( rs == 1 )) || lab_fail "server exit $rs, not 1, with three failed clients: $(bb_why srv)"
for a in 10.99.0.11 10.99.0.12 10.99.0.13; do
    row=$(grep -E "^ +$a:[0-9]+ " "$LAB_LOGDIR/srv.err" || true)
    [[ "$row" == *FAILED* && "$row" == *"I/O error"* ]] || lab_fail "the server's summary does not name $a as failed with an I/O error: '$row'"
    echo "srv: $(echo "$row" | awk '{$1=$1; print}')"
done
cmp -s -n $(( 64 * 1024 * 1024 - isz )) <(tail -c +$(( isz + 1 )) "$d/backing1") /dev/zero ||
    lab_fail "c1's device was written past the image's range"
for b in backing2 backing3; do
    (( $(stat -c %s "$d/$b") <= isz )) || lab_fail "$b grew past the image size"
done
echo "nothing written past the image's range; server exit 1 naming the three machines"
bb_summary "$img" "$t0"
