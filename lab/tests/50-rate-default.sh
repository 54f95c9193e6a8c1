#!/usr/bin/env bash
# The rate is found with default options (no --rate): clients behind tbf-shaped bridge
# ports (their link rate), at 0% and 1% loss. For each scenario prints the time until the
# last client has its image against image size / link rate, and server tx bytes against
# the image size. Asserts loose bounds (time <= 2 x the floor, tx <= 1.25 x image) so
# that a loaded machine does not fail it; the targets are 1.10 and 1.10, read the figures.
# env: RATE_SCENARIOS (default "2:1gbit:0:128 8:100mbit:1:32 48:20mbit:1:16", each
#      clients:link:loss%:MiB), RATE_TIME_BOUND (2), RATE_TX_BOUND (1.25)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins

SCENARIOS="${RATE_SCENARIOS:-2:1gbit:0:128 8:100mbit:1:32 48:20mbit:1:16}"
TIME_BOUND="${RATE_TIME_BOUND:-2}"
TX_BOUND="${RATE_TX_BOUND:-1.25}"

# "1gbit" / "100mbit" / "20mbit" -> bits per second
link_bps() {
    local v="${1,,}"
    case "$v" in
        *gbit) echo $(( ${v%gbit} * 1000000000 )) ;;
        *mbit) echo $(( ${v%mbit} * 1000000 )) ;;
        *) lab_fail "link rate '$1': use NNmbit or NNgbit" ;;
    esac
}

failures=()
for sc in $SCENARIOS; do
    IFS=: read -r n link loss mib <<<"$sc"
    bps=$(link_bps "$link")
    lab_up "$n" --loss "$loss" --rate "$link"
    d=$(lab_tmpdir)
    img="$d/image"
    lab_make_image "$img" "$mib"
    names=()
    for ((k = 1; k <= n; k++)); do
        bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"
        names+=("c$k:$d/c$k.img")
    done
    tx0=$(lab_txbytes)
    bb_server srv --clients "$n" --min-clients "$n" 10.99.0.255 "$img"
    lab_wait srv 120 || lab_fail "$sc: bb-server $(bb_why srv)"
    for ((k = 1; k <= n; k++)); do lab_wait "c$k" 30 || true; done
    bb_check_clients "$img" "${names[@]}"
    tx=$(( $(lab_txbytes) - tx0 ))
    # From the first data packet (the server's 'sending started' moment is when all
    # clients are present; clients start before it) to the last client's exit.
    start=$(cat "$LAB_LOGDIR/srv.start")
    last=0
    for ((k = 1; k <= n; k++)); do
        e=$(lab_end "c$k"); [[ $(awk -v a="$e" -v b="$last" 'BEGIN{print (a>b)}') == 1 ]] && last="$e"
    done
    isz=$(stat -c %s "$img")
    line=$(awk -v n="$n" -v link="$link" -v loss="$loss" -v s="$isz" -v bps="$bps" \
        -v t="$(awk -v a="$start" -v b="$last" 'BEGIN{print b-a}')" -v tx="$tx" \
        'BEGIN { floor = s * 8 / bps;
                 printf "%d clients on %s links, %s%% loss, %d MiB: last client done in %.2f s, floor %.2f s, time/floor %.3f; server tx %d bytes, tx/image %.3f",
                        n, link, loss, s / 1048576, t, floor, t / floor, tx, tx / s }')
    reason=$(grep -m1 'final rate' "$LAB_LOGDIR/srv.err" | sed 's/^ *control *//' || true)
    echo "$line; $reason"
    ratio_t=$(awk -v s="$isz" -v bps="$bps" -v a="$start" -v b="$last" 'BEGIN{printf "%.3f", (b-a)/(s*8/bps)}')
    ratio_tx=$(awk -v s="$isz" -v tx="$tx" 'BEGIN{printf "%.3f", tx/s}')
    awk -v r="$ratio_t" -v b="$TIME_BOUND" 'BEGIN{exit !(r <= b)}' ||
        failures+=("$sc: time/floor $ratio_t > $TIME_BOUND")
    awk -v r="$ratio_tx" -v b="$TX_BOUND" 'BEGIN{exit !(r <= b)}' ||
        failures+=("$sc: tx/image $ratio_tx > $TX_BOUND")
    lab_down
done
(( ${#failures[@]} == 0 )) || lab_fail "${failures[*]}"
