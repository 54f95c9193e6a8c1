#!/usr/bin/env bash
# Machines that come and go, with --clients 3: c3's cable is pulled (its bridge port down,
# both directions) at about 22% for 20 s, and c2 is killed at about 30% and started again on
# the same target (what a machine rebooted into the imaging initramfs does). The server
# shows c3 lost and then back -- one machine, not two, and no failure -- and waits for it
# within the lost grace instead of exiting 1 once the others verified; c2 completes as a late
# joiner, shown restarted, one row (its new id takes over its earlier run's row). Every client ends byte-exact and the server exits 0.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 3
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 64
isz=$(stat -c %s "$img")
for k in 1 2 3; do bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"; done
t0=$(date +%s.%N)
bb_server srv --rate 100M --clients 3 10.99.0.255 "$img"
lab_wait_txbytes $(( isz * 22 / 100 )) 60 || lab_fail "server did not send 22% within 60s ($(lab_tail srv 3))"
ip -n "${LAB}sw" link set "${LAB}c3-p" down
down_at=$(date +%s.%N)
echo "c3's link down at $(( $(lab_txbytes) * 100 / isz ))% of the image sent"
lab_wait_txbytes $(( isz * 30 / 100 )) 60 || lab_fail "server did not send 30% within 60s ($(lab_tail srv 3))"
lab_running c2 || lab_fail "c2 ended before it could be killed (exit $(lab_rc c2))"
lab_kill c2 KILL
lab_wait c2 10 || true
echo "c2 killed at $(( $(lab_txbytes) * 100 / isz ))% and started again on the same target"
bb_client c2b 2 10.99.0.1 "$d/c2.img"
sleep "$(awk -v s="$down_at" -v n="$(date +%s.%N)" 'BEGIN { w = 20 - (n - s); print (w > 0 ? w : 0) }')"
ip -n "${LAB}sw" link set "${LAB}c3-p" up
echo "c3's link up again after 20 s"
lab_wait srv 90 || lab_fail "bb-server: $(bb_why srv)"
for c in c1 c2b c3; do lab_wait "$c" 30 || true; done
bb_check_clients "$img" "c1:$d/c1.img" "c2b:$d/c2.img" "c3:$d/c3.img"
grep -q "client lost: 10.99.0.13" "$LAB_LOGDIR/srv.err" || lab_fail "the server never showed c3 lost"
grep -q "client back: 10.99.0.13" "$LAB_LOGDIR/srv.err" || lab_fail "the server never showed c3 back"
grep -E "client (lost|back): 10.99.0.13" "$LAB_LOGDIR/srv.err" | sed 's/^/srv: /'
rows=$(grep -cE '^ +10\.99\.0\.13:[0-9]+ ' "$LAB_LOGDIR/srv.err" || true)
(( rows == 1 )) || lab_fail "c3 is $rows rows of the server's summary, not one machine"
grep -E '^ +10\.99\.0\.13:[0-9]+ ' "$LAB_LOGDIR/srv.err" | grep -q ' OK ' ||
    lab_fail "c3's summary row is not OK: $(grep -E '^ +10\.99\.0\.13:' "$LAB_LOGDIR/srv.err")"
grep -q "client restarted: 10.99.0.12" "$LAB_LOGDIR/srv.err" || lab_fail "the server never showed c2 restarted"
rows=$(grep -cE '^ +10\.99\.0\.12:[0-9]+ ' "$LAB_LOGDIR/srv.err" || true)
(( rows == 1 )) || lab_fail "c2 (killed and started again) is $rows rows of the server's summary, not one machine"
echo "server exited 0; c3 one row, OK; c2 restarted, one row"
bb_summary "$img" "$t0"
