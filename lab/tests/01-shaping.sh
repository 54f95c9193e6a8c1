#!/usr/bin/env bash
# The lab's link shaping by itself (no broadband binaries), as bench-peers uses it:
# `netlab.sh rate K RATE|off` shapes one client's link and only that one; `up --bottleneck`
# puts every client behind one shaped uplink, so the clients lose the same datagrams (one
# queue drops them before the bridge copies them to each client).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root

PROBE="$LAB_LIB_DIR/probe.py"
COUNT=20000   # 1000-byte datagrams at 10 kpps: 80 Mbit/s for 2 s, 20 per GSO send

# blast TAG N: start receivers in clients 1..N, send COUNT datagrams, print each client's
# missing count on one line
blast() {
    local tag="$1" n="$2" k i
    for ((k = 1; k <= n; k++)); do
        rm -f "$LAB_LOGDIR/$tag-ready$k"
        lab_bg "$tag$k" "c$k" python3 "$PROBE" recv 5000 --count "$COUNT" --idle 2 --wait 20 \
            --ready "$LAB_LOGDIR/$tag-ready$k"
    done
    for ((k = 1; k <= n; k++)); do
        for ((i = 0; i < 100; i++)); do [[ -f "$LAB_LOGDIR/$tag-ready$k" ]] && break; sleep 0.05; done
        [[ -f "$LAB_LOGDIR/$tag-ready$k" ]] || lab_fail "receiver $tag$k did not start: $(lab_tail "$tag$k")"
    done
    "$NETLAB" exec srv python3 "$PROBE" send 10.99.0.255 5000 "$COUNT" --pps 10000 --gso 20 >/dev/null
    local out=()
    for ((k = 1; k <= n; k++)); do
        lab_wait "$tag$k" 40 || lab_fail "receiver $tag$k failed: $(lab_tail "$tag$k")"
        out+=("$(sed -n 's/.*missing=\([0-9]*\).*/\1/p' "$LAB_LOGDIR/$tag$k.out")")
    done
    echo "${out[*]}"
}
# at_least A PCT / at_most A PCT: A missing datagrams of COUNT vs PCT percent
at_least() { awk -v m="$1" -v p="$2" -v n=$COUNT 'BEGIN { exit !(100 * m / n >= p) }'; }
at_most() { awk -v m="$1" -v p="$2" -v n=$COUNT 'BEGIN { exit !(100 * m / n <= p) }'; }

# 1. one client's link: client 1 at 20 Mbit/s loses most of an 80 Mbit/s stream, client 2
#    (unshaped) loses nothing; after `rate 1 off` client 1 loses nothing either.
lab_up 2
"$NETLAB" rate 1 20mbit
read -r m1 m2 <<<"$(blast r 2)"
echo "client 1 at 20 Mbit/s: missing $m1/$COUNT; client 2 unshaped: missing $m2/$COUNT"
at_least "$m1" 30 || lab_fail "client 1's 20 Mbit/s link let through too much: missing only $m1/$COUNT"
at_most "$m2" 1 || lab_fail "unshaped client 2 lost $m2/$COUNT (the rate leaked to another port?)"
"$NETLAB" rate 1 off
read -r m1 m2 <<<"$(blast o 2)"
echo "after rate 1 off: missing $m1 and $m2"
at_most "$m1" 1 || lab_fail "client 1 still shaped after 'rate 1 off': missing $m1/$COUNT"
lab_down

# 2. a shared 20 Mbit/s bottleneck: both clients lose most, and the same datagrams.
lab_up 2 --bottleneck 20mbit
read -r m1 m2 <<<"$(blast b 2)"
echo "behind one 20 Mbit/s bottleneck: missing $m1 and $m2 of $COUNT"
at_least "$m1" 30 || lab_fail "the bottleneck let through too much: client 1 missing only $m1/$COUNT"
diff=$(( m1 > m2 ? m1 - m2 : m2 - m1 ))
(( diff <= COUNT / 1000 )) || lab_fail "clients behind one bottleneck lost different amounts ($m1 vs $m2): not a shared queue"
echo "ok"
