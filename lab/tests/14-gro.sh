#!/usr/bin/env bash
# Broadcast to 4 clients whose links coalesce datagrams (GRO, as a physical NIC does): every
# output byte-exact, and every client read most datagrams in coalesced batches (UDP GRO),
# each split back into its datagrams.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
command -v ethtool >/dev/null 2>&1 || { echo "skipped: ethtool not found (run scripts/install-deps.sh)" >&2; exit "$LAB_SKIP_RC"; }
# veth hands packets to GRO without XDP only from Linux 5.13 on.
read -r major minor _ < <(uname -r | tr '.-' '  ')
if (( major < 5 || (major == 5 && minor < 13) )); then
    echo "skipped: veth does GRO only from Linux 5.13 (this is $(uname -r))" >&2
    exit "$LAB_SKIP_RC"
fi
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
# 32 MiB is 23,832 datagrams of 1408 bytes: most of them must have come in coalesced reads.
for ((k = 1; k <= N; k++)); do
    line=$(grep -h 'coalesced reads' "$LAB_LOGDIR/c$k.err" || true)
    coalesced=$(sed -n 's/.* \([0-9]*\) datagrams in [0-9]* coalesced reads.*/\1/p' <<<"$line")
    reads=$(sed -n 's/.* \([0-9]*\) coalesced reads.*/\1/p' <<<"$line")
    symbols=$(sed -n 's/^bb-client: \([0-9]*\) symbols.*/\1/p' <<<"$line")
    [[ -n "$coalesced" && -n "$reads" && -n "$symbols" ]] || lab_fail "client $k: no statistics line: $(lab_tail "c$k" 3)"
    echo "client $k: $symbols symbols, $coalesced of them in $reads coalesced reads"
    (( coalesced * 2 > symbols )) || lab_fail "client $k: only $coalesced of $symbols datagrams came coalesced: GRO did not work"
done
bb_summary "$img" "$t0"
