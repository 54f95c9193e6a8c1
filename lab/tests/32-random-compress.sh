#!/usr/bin/env bash
# An image of random bytes (issue 8): nothing compresses, every block must go raw. 96 MiB to
# 2 clients, no loss, byte-exact; with a v2 server sent twice in the same lab, by default
# (compression on) and with --compress off. Prints both times and tx bytes.
# v2 budget (a property): trying to compress costs no bytes on the wire, tx(default) <=
# 1.01 x tx(--compress off). The time ratio (target 1.05) is printed, not asserted.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
lab_require_bins
lab_up 2
d=$(lab_tmpdir); img="$d/random.img"
img_random "$img" 96
isz=$(stat -c %s "$img")
v2=0; bb_is_v2 && v2=1
runs=(default)
(( v2 )) && runs+=(off)
declare -A tx secs
for run in "${runs[@]}"; do
    opts=()
    [[ $run == off ]] && opts=(--compress off)
    rm -f "$d"/c?.img
    bb_client "c1$run" 1 10.99.0.1 "$d/c1.img"
    bb_client "c2$run" 2 10.99.0.1 "$d/c2.img"
    tx0=$("$NETLAB" txbytes)
    bb_server "srv$run" --rate "$BB_RATE" --clients 2 "${opts[@]}" 10.99.0.255 "$img"
    lab_wait "srv$run" 90 || lab_fail "bb-server ($run) $(bb_why "srv$run")"
    lab_wait "c1$run" 30 || true; lab_wait "c2$run" 30 || true
    tx[$run]=$(( $("$NETLAB" txbytes) - tx0 ))
    secs[$run]=$(bb_span "srv$run" "c1$run" "c2$run")
    bb_check_clients "$img" "c1$run:$d/c1.img" "c2$run:$d/c2.img"
    echo "compression $run: byte-exact, server tx ${tx[$run]} bytes = $(ratio "${tx[$run]}" "$isz") x image," \
        "every client ended ${secs[$run]}s after the server started"
done
if (( v2 )); then
    echo "time default / --compress off: $(ratio "${secs[default]}" "${secs[off]}") (target <= 1.05, not asserted)"
    le "${tx[default]}" "$(awk -v t="${tx[off]}" 'BEGIN { print 1.01 * t }')" \
        || lab_fail "compression on sent ${tx[default]} bytes, more than 1.01 x --compress off (${tx[off]}): incompressible blocks must go raw"
else
    echo "not run (bb-server predates protocol v2): --compress off, tx(default) <= 1.01 x tx(off)"
fi
