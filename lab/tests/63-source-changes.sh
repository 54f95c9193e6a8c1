#!/usr/bin/env bash
# The source changing while it is served stops the server with a clear message instead of
# sending data no client could verify. Run 1: the image file is overwritten in place at
# about 30% (its modification time moves): the server exits 3 naming the change and tells
# the clients the session ended (they exit 5, never 0). Run 2: a block ahead of the forward
# pass is changed and the modification time put back (what a watch cannot see): the blocks
# read by the forward pass no longer add up to the digest read at the start, and the server
# exits 3 the same way. No client ever verifies a mixed image.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 2
d=$(lab_tmpdir); img="$d/image"
isz=$(( 64 * 1024 * 1024 ))
for run in 1 2; do
    lab_make_image "$img" 64
    cp -p "$img" "$d/stamp"
    for k in 1 2; do bb_client "c$k-$run" "$k" 10.99.0.1 "$d/c$k-$run.img"; done
    tx0=$(lab_txbytes)
    bb_server "srv$run" --rate 50M --clients 2 10.99.0.255 "$img"
    lab_wait_txbytes $(( tx0 + isz * 3 / 10 )) 60 || lab_fail "run $run: 30% not sent within 60s ($(lab_tail "srv$run" 3))"
    grep -q "image digest read ahead" "$LAB_LOGDIR/srv$run.err" || lab_fail "run $run: no digest read ahead"
    # Overwrite 1 MiB at 80% of the image, ahead of the forward pass.
    dd if=/dev/urandom of="$img" bs=1M count=1 seek=51 conv=notrunc status=none
    [[ $run == 2 ]] && touch -r "$d/stamp" "$img"
    rs=0; lab_wait "srv$run" 60 || rs=$?
    (( rs == 3 )) || lab_fail "run $run: server exit $rs, not 3 (image error): $(bb_why "srv$run")"
    if [[ $run == 1 ]]; then want="was modified while it was served"; else want="changed while it was served"; fi
    grep -q "$want" "$LAB_LOGDIR/srv$run.err" || lab_fail "run $run: the server's message does not say '$want': $(lab_tail "srv$run" 3)"
    echo "run $run: server exit 3: $(grep -m1 "$want" "$LAB_LOGDIR/srv$run.err")"
    for k in 1 2; do
        rc=0; lab_wait "c$k-$run" 60 || rc=$?
        (( rc == 5 )) || lab_fail "run $run: c$k exit $rc, not 5 (server ended the session): $(lab_tail "c$k-$run" 2)"
        (( $(stat -c %s "$d/c$k-$run.img") <= isz )) || lab_fail "run $run: c$k's file grew past the image"
    done
    echo "run $run: both clients exit 5: $(grep FAILED "$LAB_LOGDIR/c1-$run.err" | tail -n 1)"
done
