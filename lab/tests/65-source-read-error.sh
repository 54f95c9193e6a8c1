#!/usr/bin/env bash
# A read error on the source stops the server with a clear message instead of sending data
# no client could verify. The server reads its 32 MiB image from lab/fusefail.py's FUSE file
# (the kernel here has no scsi_debug, nbd or device-mapper). Run 1: every read at or past
# 20 MiB fails with EIO (a bad sector: the read ahead of the digest meets it first). Run 2:
# a read of bytes past 1 MiB that were read twice already fails (the digest's pass and the
# forward pass read them fine; a repair for a client at 10% loss must read a block again
# once it left the server's cache, and that read fails). Both times the server exits 3 (image error) naming the image, the block, its
# byte offset and the cause, and tells the clients the session ended: they exit 5, never 0,
# and nothing is written past the image's range.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_require_fuse
lab_up 2
d=$(lab_tmpdir); lab_make_image "$d/image" 32
isz=$(stat -c %s "$d/image")
netlab() { "$NETLAB" "$@"; }
for run in 1 2; do
    if [[ $run == 1 ]]; then
        knobs=(--eio-from $(( 20 << 20 )))
        netlab loss 2 0 >/dev/null
    else
        knobs=(--eio-from $(( 1 << 20 )) --eio-after-reads 2)
        netlab loss 2 10 >/dev/null
    fi
    src=$(lab_fusefail "fuse$run" "$d/image" "${knobs[@]}") || lab_fail "run $run: cannot mount fusefail.py"
    for k in 1 2; do bb_client "c$k-$run" "$k" 10.99.0.1 "$d/c$k-$run.img"; done
    bb_server "srv$run" --rate 100M --clients 2 10.99.0.255 "$src"
    rs=0; lab_wait "srv$run" 90 || rs=$?
    (( rs == 3 )) || lab_fail "run $run: server exit $rs, not 3 (image error): $(bb_why "srv$run")"
    grep -q "fusefail: read of .*: EIO" "$LAB_LOGDIR/fuse$run.err" ||
        lab_fail "run $run: the FUSE file system failed no read: $(lab_tail "fuse$run" 3)"
    msg=$(grep -m1 -E "reading block [0-9]+ of $src \(byte [0-9]+\) failed: Input/output error" "$LAB_LOGDIR/srv$run.err" || true)
    [[ -n "$msg" ]] || lab_fail "run $run: the server's message does not name the image, block, byte and cause: $(lab_tail "srv$run" 4)"
    [[ "$msg" == *"the source disk reported an error"* ]] || lab_fail "run $run: the server's message says nothing of a failing source disk: $msg"
    echo "run $run: server exit 3: $(echo "$msg" | sed 's/^ *//')"
    byte=$(echo "$msg" | sed -E 's/.*\(byte ([0-9]+)\).*/\1/')
    if [[ $run == 1 ]]; then
        # The failing block holds byte 20 MiB: it starts at most one block before it.
        (( byte <= 20 << 20 && byte + (4 << 20) > 20 << 20 )) || lab_fail "run 1: failing block at byte $byte, not the one holding byte $(( 20 << 20 ))"
    else
        # A repair read: the whole image had been read twice and sent once.
        grep -q "read 2 times before" "$LAB_LOGDIR/fuse$run.err" ||
            lab_fail "run 2: the failing read was not a third read: $(lab_tail "fuse$run" 2)"
        (( $(stat -c %s "$d/c1-$run.img") > 0 )) || lab_fail "run 2: the read failed before any data was written"
    fi
    for k in 1 2; do
        rc=0; lab_wait "c$k-$run" 60 || rc=$?
        (( rc == 5 )) || lab_fail "run $run: c$k exit $rc, not 5 (the server ended the session): $(lab_tail "c$k-$run" 2)"
        (( $(stat -c %s "$d/c$k-$run.img") <= isz )) || lab_fail "run $run: c$k's file grew past the image"
    done
    echo "run $run: both clients exit 5: $(grep FAILED "$LAB_LOGDIR/c2-$run.err" | tail -n 1)"
    umount "${src%/disk}" || lab_fail "run $run: cannot unmount the FUSE file system"
done
