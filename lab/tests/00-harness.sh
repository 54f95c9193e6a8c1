#!/usr/bin/env bash
# The lab harness by itself (no broadband binaries): broadcast and multicast reach every
# client, per-client loss is close to the configured percentage and equals the nft counter,
# addclient and tap work, teardown leaves nothing.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root

PROBE="$LAB_LIB_DIR/probe.py"
N=8
lab_up $N

# recv_all TAG COUNT [recv args]: start a receiver in every client, wait until bound
recv_all() {
    local tag="$1" count="$2"; shift 2
    local k
    for ((k = 1; k <= N; k++)); do
        rm -f "$LAB_LOGDIR/$tag-ready$k"
        lab_bg "$tag$k" "c$k" python3 "$PROBE" recv 5000 --count "$count" --idle 2 --wait 15 \
            --ready "$LAB_LOGDIR/$tag-ready$k" "$@"
    done
    for ((k = 1; k <= N; k++)); do
        local i
        for ((i = 0; i < 100; i++)); do [[ -f "$LAB_LOGDIR/$tag-ready$k" ]] && break; sleep 0.05; done
        [[ -f "$LAB_LOGDIR/$tag-ready$k" ]] || lab_fail "receiver $tag$k did not start: $(lab_tail "$tag$k")"
    done
}
field() { sed -n "s/.*$2=\([0-9-]*\).*/\1/p" "$LAB_LOGDIR/$1.out"; }

# 1. broadcast and multicast reach all clients
for dest in 10.99.0.255 239.1.2.3; do
    tag=b; args=()
    [[ $dest == 239.* ]] && { tag=m; args=(--group "$dest"); }
    recv_all $tag 1000 "${args[@]}"
    "$NETLAB" exec srv python3 "$PROBE" send "$dest" 5000 1000 --pps 5000 >/dev/null
    for ((k = 1; k <= N; k++)); do
        lab_wait "$tag$k" 30 || lab_fail "receiver $tag$k failed: $(lab_tail "$tag$k")"
        u=$(field "$tag$k" unique)
        [[ "$u" == 1000 ]] || lab_fail "$dest: client $k received $u/1000"
    done
    echo "$dest: 1000/1000 datagrams at each of $N clients"
done

# 2. per-client loss: configured vs measured vs nft counter (per datagram, even with GSO)
declare -A CONF=([1]=0 [2]=0.5 [3]=1 [4]=2 [5]=2 [6]=5 [7]=10 [8]=20)
for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" "${CONF[$k]}"; done
COUNT=20000
recv_all l $COUNT
# sent with UDP GSO, 20 datagrams per send, as bb-server does: the loss must still be
# per datagram (netlab segments GSO packets at the bridge ports)
"$NETLAB" exec srv python3 "$PROBE" send 10.99.0.255 5000 $COUNT --pps 5000 --gso 20 >/dev/null
for ((k = 1; k <= N; k++)); do
    lab_wait "l$k" 30 || lab_fail "receiver l$k failed: $(lab_tail "l$k")"
    miss=$(field "l$k" missing)
    drops=$("$NETLAB" drops "$k")
    meas=$(awk -v m="$miss" -v n=$COUNT 'BEGIN { printf "%.2f", 100 * m / n }')
    printf 'client %d: loss configured %5s%%  measured %6s%%  missing %5d  nft drops %5d\n' \
        "$k" "${CONF[$k]}" "$meas" "$miss" "$drops"
    # within 5 standard deviations of the binomial, plus a little slack
    awk -v p="${CONF[$k]}" -v m="$meas" -v n=$COUNT 'BEGIN {
        q = p / 100; sd = 100 * sqrt(q * (1 - q) / n); d = m - p; if (d < 0) d = -d
        exit !(d <= 5 * sd + 0.05) }' || lab_fail "client $k: measured loss $meas% vs configured ${CONF[$k]}%"
    # the counter also sees the odd non-probe IPv4 packet (IGMP reports)
    (( drops <= miss + 5 )) || lab_fail "client $k: nft drops $drops > missing $miss"
    (( miss - drops <= COUNT / 1000 )) || lab_fail "client $k: $((miss - drops)) datagrams lost besides nft"
done

# 3. addclient and tap
"$NETLAB" addclient 9
"$NETLAB" exec c9 ip -4 -o addr show dev eth0 | grep -q '10.99.0.19/24' || lab_fail "addclient 9: no address"
"$NETLAB" loss 9 0
N=9
for ((k = 1; k <= 8; k++)); do "$NETLAB" loss "$k" 0; done
recv_all a 500
"$NETLAB" exec srv python3 "$PROBE" send 10.99.0.255 5000 500 --pps 5000 >/dev/null
for ((k = 1; k <= N; k++)); do
    lab_wait "a$k" 30 || lab_fail "receiver a$k failed"
    [[ $(field "a$k" unique) == 500 ]] || lab_fail "after addclient: client $k received $(field "a$k" unique)/500"
done
echo "addclient: 9 clients receive broadcast"
"$NETLAB" tap "${LAB}tap0" >/dev/null
"$NETLAB" exec sw ip -o link show "${LAB}tap0" | grep -q "master ${LAB}br0" || lab_fail "tap not enslaved"
tx=$("$NETLAB" txbytes)
(( tx > 20000 * 1000 )) || lab_fail "txbytes $tx too small"
echo "tap ${LAB}tap0 on ${LAB}br0; server tx_bytes $tx"

# 4. teardown leaves nothing, twice
"$NETLAB" down >/dev/null
"$NETLAB" down >/dev/null
left=$(ip netns list | awk '{print $1}' | grep -E "^${LAB}(sw|srv|c[0-9]+)$" || true)
[[ -z "$left" ]] || lab_fail "namespaces left after down: $left"
echo "down: no ${LAB}* namespaces left"
