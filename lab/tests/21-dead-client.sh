#!/usr/bin/env bash
# A client killed mid-way does not stop `--clients N-1` from finishing: the server exits 0
# and the 7 survivors are byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 8 --loss 1
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 64
isz=$(stat -c %s "$img")
names=()
for k in 1 2 3 4 5 6 7 8; do bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"; done
for k in 1 2 3 4 5 6 7; do names+=("c$k:$d/c$k.img"); done
bb_server srv --rate "$BB_RATE" --clients 7 10.99.0.255 "$img"
lab_wait_txbytes $(( isz * 2 / 5 )) 60 || lab_fail "server did not send 40% of the image within 60s ($(lab_tail srv 3))"
lab_running c8 || lab_fail "c8 ended before it could be killed (exit $(lab_rc c8))"
lab_kill c8 KILL
echo "killed c8 at $(( $("$NETLAB" txbytes) * 100 / isz ))% of the image sent"
t0=$(date +%s.%N)
lab_wait srv 75 || lab_fail "bb-server with a dead client: $(bb_why srv)"
for k in 1 2 3 4 5 6 7; do lab_wait "c$k" 30 || true; done
bb_check_clients "$img" "${names[@]}"
echo "server exited 0 $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s after the kill"
bb_summary "$img" "$t0"
