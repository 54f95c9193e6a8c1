#!/usr/bin/env bash
# Garbage datagrams during a transfer change nothing: a thrower in c9 (lab/garbage.py) sends
# random bytes, truncated packets, packets with a valid-looking magic/header, bit-flipped and
# field-mangled copies of sniffed real packets, to the clients' port 7855 (broadcast and
# unicast) and to the server's port 7854. Half of it has a forged source (the server's
# address and port toward the clients, client 2's toward the server) so that it gets past
# source filtering and reaches the parsers. Server exits 0; all 8 clients byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 9 --loss 1
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
lab_bg garbage c9 python3 "$LAB_LIB_DIR/garbage.py" --sniff 7855 --spoof --spoof-client 10.99.0.12:7855 \
    --data 10.99.0.255:7855 --data 10.99.0.11:7855 --control 10.99.0.1:7854 \
    --pps 2000 --duration 150
sleep 0.5
names=()
for k in 1 2 3 4 5 6 7 8; do bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"; names+=("c$k:$d/c$k.img"); done
t0=$(date +%s.%N)
bb_server srv --rate "$BB_RATE" --clients 8 10.99.0.255 "$img"
rs=0; lab_wait srv 75 || rs=$?
for k in 1 2 3 4 5 6 7 8; do lab_wait "c$k" 30 || true; done
lab_kill garbage TERM; lab_wait garbage 10 || true
cat "$LAB_LOGDIR/garbage.out" 2>/dev/null || true
grep -q 'sniffed=[1-9]' "$LAB_LOGDIR/garbage.out" || echo "warning: the thrower sniffed no real packet (only random garbage sent)"
(( rs == 0 )) || lab_fail "bb-server under garbage: $(bb_why srv)"
bb_check_clients "$img" "${names[@]}"
bb_summary "$img" "$t0"
echo "server: $(grep -m1 -E '^ +control ' "$LAB_LOGDIR/srv.err" | sed 's/^ *//')"
for k in 1 2; do echo "c$k: $(grep -E 'dropped' "$LAB_LOGDIR/c$k.err" | tail -n 1)"; done
