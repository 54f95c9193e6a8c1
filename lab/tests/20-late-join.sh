#!/usr/bin/env bash
# A client that joins when the server has sent about half of the image still verifies, and
# the early clients are not held back: they finish before the late one, and no later than in
# a baseline run without the late joiner (within 50 % + 2 s).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 8
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 64
isz=$(stat -c %s "$img")
early=(1 2 3 4 5 6 7)

max_elapsed() { local m=0 n e; for n in "$@"; do e=$(lab_elapsed "$n"); m=$(awk -v a="$m" -v b="$e" 'BEGIN{print (b>a)?b:a}'); done; echo "$m"; }

# Baseline: 7 clients, nobody late.
names=()
for k in "${early[@]}"; do bb_client "a$k" "$k" 10.99.0.1 "$d/a$k.img"; names+=("a$k:$d/a$k.img"); done
bb_server srva --rate "$BB_RATE" --clients 7 10.99.0.255 "$img"
lab_wait srva 75 || lab_fail "baseline: bb-server $(bb_why srva)"
for k in "${early[@]}"; do lab_wait "a$k" 30 || true; done
bb_check_clients "$img" "${names[@]}"
t0=$(max_elapsed "${names[@]%%:*}")
rm -f "$d"/a*.img

# With a late joiner: c8 starts once the server has sent half of the image.
tx0=$("$NETLAB" txbytes)
names=()
for k in "${early[@]}"; do bb_client "b$k" "$k" 10.99.0.1 "$d/b$k.img"; names+=("b$k:$d/b$k.img"); done
bb_server srvb --rate "$BB_RATE" --clients 8 --min-clients 7 10.99.0.255 "$img"
lab_wait_txbytes $(( tx0 + isz / 2 )) 60 || lab_fail "server did not send half the image within 60s ($(lab_tail srvb 3))"
late_at=$(( ($("$NETLAB" txbytes) - tx0) * 100 / isz ))
bb_client late 8 10.99.0.1 "$d/late.img"
lab_wait srvb 75 || lab_fail "bb-server $(bb_why srvb)"
for k in "${early[@]}"; do lab_wait "b$k" 30 || true; done
lab_wait late 30 || true
bb_check_clients "$img" "${names[@]}" "late:$d/late.img"
t1=$(max_elapsed "${names[@]%%:*}")
late_end=$(lab_end late)
for k in "${early[@]}"; do
    awk -v a="$(lab_end "b$k")" -v b="$late_end" 'BEGIN { exit !(a <= b) }' \
        || lab_fail "early client b$k finished after the late joiner"
done
echo "late joiner started at ${late_at}% of the image sent, took $(lab_elapsed late)s"
echo "early clients: slowest ${t1}s with the late joiner, ${t0}s without"
awk -v t0="$t0" -v t1="$t1" 'BEGIN { exit !(t1 <= 1.5 * t0 + 2) }' \
    || lab_fail "early clients held back: ${t1}s with a late joiner vs ${t0}s without"
