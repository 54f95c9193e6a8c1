#!/usr/bin/env bash
# Impairments the kernel here cannot make: lab/relay.py in c1 receives the server's
# broadcast and forwards every datagram to c2 and c3 on another port (7856, where only the
# relay's copies arrive), each copy on its own lost (1%), duplicated (5%), delayed
# (2 ms + up to 2 ms jitter, which reorders), held back 5 ms more (5%) or corrupted (2%:
# 1-3 bytes changed). c4 receives the broadcast directly. All three end byte-exact; the
# relayed clients dropped the corrupted datagrams as malformed (CRC), and the relay really
# duplicated, reordered and corrupted.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 4
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32

lab_bg relay c1 python3 "$LAB_LIB_DIR/relay.py" --listen 7855 \
    --to 10.99.0.12:7856 --to 10.99.0.13:7856 \
    --loss 1 --dup 5 --delay 2 --jitter 2 --reorder 5 --reorder-delay 5 --corrupt 2 \
    --seed 7 --idle 5 --max-time 100 --stats "$d/relay.stats"
sleep 0.3
lab_running relay || lab_fail "relay did not start: $(lab_tail relay 3)"
for k in 2 3; do bb_client "c$k" "$k" --port 7856 --any-server 10.99.0.1 "$d/c$k.img"; done
bb_client c4 4 10.99.0.1 "$d/c4.img"
bb_server srv --rate 30M --clients 3 10.99.0.255 "$img"
lab_wait srv 90 || lab_fail "bb-server $(bb_why srv)"
for k in 2 3 4; do lab_wait "c$k" 30 || true; done
bb_check_clients "$img" "c2:$d/c2.img" "c3:$d/c3.img" "c4:$d/c4.img"
lab_kill relay TERM
lab_wait relay 10 || true
[[ -s "$d/relay.stats" ]] || lab_fail "relay wrote no counters ($(lab_tail relay 3))"
cat "$LAB_LOGDIR/relay.err"
stat_of() { sed -n "s/^$1=//p" "$d/relay.stats"; }
for k in duplicated reordered corrupted lost; do
    (( $(stat_of "$k") > 0 )) || lab_fail "the relay $k nothing: $(tr '\n' ' ' <"$d/relay.stats")"
done
# Each relayed client dropped datagrams as malformed: the corrupted copies, caught by the CRC.
for k in 2 3; do
    line=$(grep -m1 'symbols,' "$LAB_LOGDIR/c$k.err") || lab_fail "c$k printed no statistics line"
    echo "c$k: $line"
    mal=$(sed -n 's/.*(malformed \([0-9]*\),.*/\1/p' <<<"$line")
    (( ${mal:-0} > 0 )) || lab_fail "c$k counted no malformed datagram, yet the relay corrupted $(stat_of corrupted)"
done
