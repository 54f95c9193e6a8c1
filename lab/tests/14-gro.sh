#!/usr/bin/env bash
# Broadcast to 4 clients whose links coalesce datagrams (GRO, as a physical NIC does): every
# output byte-exact, and every client read most datagrams in coalesced batches (UDP GRO),
# each split back into its datagrams.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
command -v ethtool >/dev/null 2>&1 || { echo "skipped: ethtool not found (run scripts/install-deps.sh)" >&2; exit "$LAB_SKIP_RC"; }
N=4
lab_up $N --gro
d=$(lab_tmpdir)
img="$d/image"
lab_make_image "$img" 32
names=()
for ((k = 1; k <= N; k++)); do
    bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"
    names+=("c$k:$d/c$k.img")
done
t0=$(date +%s.%N)
bb_server srv --clients "$N" 10.99.0.255 "$img"
lab_wait srv 75 || lab_fail "bb-server $(bb_why srv)"
for ((k = 1; k <= N; k++)); do lab_wait "c$k" 30 || true; done
bb_check_clients "$img" "${names[@]}"
# 32 MiB is 23,832 datagrams of 1408 bytes: GRO must have coalesced most of them.
for ((k = 1; k <= N; k++)); do
    line=$(grep -h 'coalesced reads' "$LAB_LOGDIR/c$k.err" || true)
    reads=$(sed -n 's/.* \([0-9]*\) coalesced reads.*/\1/p' <<<"$line")
    symbols=$(sed -n 's/^bb-client: \([0-9]*\) symbols.*/\1/p' <<<"$line")
    [[ -n "$reads" && -n "$symbols" ]] || lab_fail "client $k: no statistics line: $(lab_tail "c$k" 3)"
    echo "client $k: $symbols symbols in $reads coalesced reads"
    (( reads > 0 && reads * 4 < symbols )) || lab_fail "client $k: $reads coalesced reads for $symbols symbols: GRO did not coalesce"
done
bb_summary "$img" "$t0"
