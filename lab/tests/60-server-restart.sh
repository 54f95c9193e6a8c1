#!/usr/bin/env bash
# Resume after a server restart: two clients at about 40% of a 128 MiB image, the server
# killed (SIGKILL) and started again 10 s later on the same image. Both clients take the new
# session over (same geometry, same image digest: read ahead by both server runs), keep
# every block they wrote, and verify byte-exact; the restarted server shows them as resumed
# and sends only what they lack: both runs together send at most 1.15 x the image.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 2
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 128
isz=$(stat -c %s "$img")
bb_client c1 1 10.99.0.1 "$d/c1.img"
bb_client c2 2 10.99.0.1 "$d/c2.img"
bb_server srv1 --rate "$BB_RATE" --clients 2 10.99.0.255 "$img"
lab_wait_txbytes $(( isz * 2 / 5 )) 60 || lab_fail "server did not send 40% of the image within 60s ($(lab_tail srv1 3))"
lab_kill srv1 KILL
lab_wait srv1 10 || true
tx1=$(lab_txbytes)
echo "server killed after sending $tx1 bytes ($(( tx1 * 100 / isz ))% of the image)"
grep -q "image digest read ahead" "$LAB_LOGDIR/srv1.err" ||
    lab_fail "the first server did not announce its digest before it was killed: $(lab_tail srv1 3)"
sleep 10
for c in c1 c2; do
    lab_running "$c" || lab_fail "$c ended while the server was down: exit $(lab_rc "$c") ($(lab_tail "$c" 2))"
done
t0=$(date +%s.%N)
bb_server srv2 --rate "$BB_RATE" --clients 2 10.99.0.255 "$img"
lab_wait srv2 90 || lab_fail "restarted server: $(bb_why srv2)"
for c in c1 c2; do lab_wait "$c" 30 || true; done
bb_check_clients "$img" "c1:$d/c1.img" "c2:$d/c2.img"
for c in c1 c2; do
    grep -q "the server restarted: resuming" "$LAB_LOGDIR/$c.err" ||
        lab_fail "$c did not resume: $(lab_tail "$c" 3)"
    grep "resuming" "$LAB_LOGDIR/$c.err" | sed "s/^/$c: /"
done
n=$(grep -c "client resumed:" "$LAB_LOGDIR/srv2.err" || true)
(( n == 2 )) || lab_fail "the restarted server showed $n resumed clients, not 2"
grep -q "sending only the blocks they lack" "$LAB_LOGDIR/srv2.err" ||
    lab_fail "the restarted server sent a whole forward pass"
tx=$(lab_txbytes)
awk -v tx1="$tx1" -v tx="$tx" -v s="$isz" 'BEGIN {
    printf "tx: first run %.3f x, second run %.3f x, both %.3f x the image (target <= 1.15)\n",
        tx1 / s, (tx - tx1) / s, tx / s }'
awk -v tx="$tx" -v s="$isz" 'BEGIN { exit !(tx <= 1.15 * s) }' ||
    lab_fail "both runs sent $tx bytes, more than 1.15 x the image ($isz bytes)"
bb_summary "$img" "$t0"
