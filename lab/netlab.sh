#!/usr/bin/env bash
# netlab.sh: a network-namespace lab for broadband.
#
# One bridge in its own namespace (the "switch"), one server namespace and N client
# namespaces, each joined to the bridge by a veth pair. Nothing is created in the root
# namespace. Per-client loss with nftables (netem is not in every kernel); per-client rate
# with tbf on the bridge port toward the client; optionally a shared bottleneck: the clients
# on a second bridge behind one shaped uplink.
#
# Everything is keyed by $LAB (default "bb", at most 5 characters of [a-z0-9]) so that
# several labs can coexist:
#   ${LAB}sw   bridge ${LAB}br0; ports ${LAB}srv-p, ${LAB}cK-p, taps
#              (--bottleneck: clients on bridge ${LAB}br1, joined to ${LAB}br0 by the uplink
#              veth ${LAB}upa (in br0, shaped toward the clients) - ${LAB}upb (in br1))
#   ${LAB}srv  eth0 = 10.99.0.1/24
#   ${LAB}cK   eth0 = 10.99.0.(10+K)/24
#
# Usage: see `netlab.sh help`.
set -euo pipefail

LAB="${LAB:-bb}"
SUBNET_PREFIX="10.99.0"
STATE_DIR="/run/netlab"
STATE="$STATE_DIR/$LAB.conf"
NFT_TABLE="lab_loss"

die() { echo "netlab: $*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: [LAB=prefix] netlab.sh COMMAND [ARGS]

  up N [--loss PCT] [--rate RATE] [--bottleneck RATE] [--mtu MTU] [--gro]
                      create the lab: switch ns ${LAB}sw (bridge ${LAB}br0), server ns ${LAB}srv
                      (10.99.0.1), clients ${LAB}c1..${LAB}cN (10.99.0.11..). --loss: per-client
                      independent IPv4 loss in percent (nftables, client ingress); --rate: tbf on
                      the bridge port toward each client (e.g. 200mbit, 200M, 1gbit);
                      --bottleneck: every client sits behind one uplink of RATE toward them
                      (a second bridge ${LAB}br1; tbf on the uplink, shared by all traffic to
                      the clients, excess dropped as by a switch port); --gro: the clients'
                      links coalesce datagrams as a physical NIC does (GRO on their eth0, TSO
                      off on their bridge ports; needs ethtool; loss 0 only, since the loss
                      rule sits after GRO)
  down                kill every process in the lab's namespaces and delete them (idempotent)
  loss K PCT          set client K's loss (resets its drop counter)
  rate K RATE|off     set (or remove) client K's link rate: tbf on its bridge port
  drops K             print client K's nft drop counter (packets)
  exec NODE CMD...    run CMD in NODE (srv | sw | cK | a full namespace name)
  tap NAME            add tap device NAME in ${LAB}sw, enslaved to ${LAB}br0 and up (for QEMU)
  addclient K         add client K (same loss/rate/mtu as given to up)
  txbytes             print the server eth0 tx byte counter
  status              show namespaces, addresses, loss, drops and qdiscs
  list                print the lab's namespace names

env: LAB (default bb, <= 5 chars [a-z0-9]), LAB_MCAST_SNOOPING=0|1 (default 0),
     LAB_GSO=0|1 (default 0: GSO packets are segmented at the bridge ports, so loss is
     per datagram; 1: whole GSO batches cross the bridge and are dropped together),
     LAB_TBF_BURST (default: max(64kb, rate/250)), LAB_TBF_LATENCY (default 20ms);
     LAB_GSO applies to the uplink's two ends too
EOF
}

check_lab() {
    [[ "$LAB" =~ ^[a-z][a-z0-9]{0,4}$ ]] || die "LAB='$LAB' must be 1-5 characters [a-z0-9], starting with a letter"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root (ip netns)"
}

# ns name of a node: srv | sw | cK | full name
ns_of() {
    case "$1" in
        srv|server) echo "${LAB}srv" ;;
        sw|switch) echo "${LAB}sw" ;;
        c[0-9]*) echo "${LAB}$1" ;;
        client[0-9]*) echo "${LAB}c${1#client}" ;;
        *) echo "$1" ;;
    esac
}

ns_exists() { [[ -e "/run/netns/$1" ]]; }

# Namespaces belonging to this lab, exactly: ${LAB}sw, ${LAB}srv, ${LAB}c<digits>
# (order: sw, srv, c1, c2, ...)
lab_namespaces() {
    local n
    for n in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        if [[ "$n" == "${LAB}sw" ]]; then echo "0 $n"
        elif [[ "$n" == "${LAB}srv" ]]; then echo "1 $n"
        elif [[ "$n" =~ ^${LAB}c([0-9]+)$ ]]; then echo "$((BASH_REMATCH[1] + 1)) $n"
        fi
    done | sort -n | awk '{print $2}'
}

# PCT (may be fractional) -> parts per million
pct_to_ppm() {
    awk -v p="$1" 'BEGIN { if (p !~ /^[0-9]*\.?[0-9]+$/ || p+0 > 100) exit 1; printf "%d\n", p * 10000 + 0.5 }' \
        || die "bad loss percentage '$1' (0..100)"
}

# 200M -> 200mbit, 1G -> 1gbit, 500K -> 500kbit; tc syntax passes through.
norm_rate() {
    local r="$1"
    case "$r" in
        *[0-9][kK]) echo "${r%?}kbit" ;;
        *[0-9][mM]) echo "${r%?}mbit" ;;
        *[0-9][gG]) echo "${r%?}gbit" ;;
        *) echo "$r" ;;
    esac
}

# rate -> bits per second (for the tbf burst size)
rate_bps() {
    awk -v r="$1" 'BEGIN {
        r = tolower(r); n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
        m = 1
        if (u == "kbit") m = 1e3; else if (u == "mbit") m = 1e6; else if (u == "gbit") m = 1e9
        else if (u == "kbps") m = 8e3; else if (u == "mbps") m = 8e6; else if (u == "gbps") m = 8e9
        else if (u == "bit" || u == "") m = 1; else if (u == "bps") m = 8
        printf "%d\n", n * m }'
}

save_state() {
    mkdir -p "$STATE_DIR"
    printf 'LOSS_PCT=%q\nRATE=%q\nMTU=%q\nBOTTLENECK=%q\nGRO=%q\n' "$LOSS_PCT" "$RATE" "$MTU" "$BOTTLENECK" "$GRO" >"$STATE"
}

load_state() {
    LOSS_PCT=0; RATE=""; MTU=1500; BOTTLENECK=""; GRO=0
    if [[ -f "$STATE" ]]; then
        # shellcheck disable=SC1090
        . "$STATE"
    fi
}

set_loss() { # ns pct
    local ns="$1" ppm
    ppm=$(pct_to_ppm "$2")
    ip netns exec "$ns" nft -f - <<EOF
table netdev $NFT_TABLE
delete table netdev $NFT_TABLE
table netdev $NFT_TABLE {
    chain ingress {
        type filter hook ingress device "eth0" priority 0; policy accept;
        meta protocol ip numgen random mod 1000000 < $ppm counter drop
    }
}
EOF
}

set_rate() { # port-dev rate
    local dev="$1" rate burst bps
    rate=$(norm_rate "$2")
    bps=$(rate_bps "$rate")
    if [[ -n "${LAB_TBF_BURST:-}" ]]; then
        burst="$LAB_TBF_BURST"
    else
        burst=$(( bps / 8 / 250 ))
        (( burst < 65536 )) && burst=65536
    fi
    ip -n "${LAB}sw" link set "$dev" txqueuelen 1000
    tc -n "${LAB}sw" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" \
        latency "${LAB_TBF_LATENCY:-20ms}"
}

# The bridge clients join: ${LAB}br1 behind the uplink with --bottleneck, else ${LAB}br0.
client_bridge() { if [[ -n "$BOTTLENECK" ]]; then echo "${LAB}br1"; else echo "${LAB}br0"; fi; }

# Segment UDP GSO super-packets (bb-server sends 32 datagrams per GSO send) on a veth in the
# switch, so that the clients' nft loss rule and the tbf queues drop single datagrams, as a
# switch drops single frames, instead of whole 32-datagram bursts. LAB_GSO=1 keeps GSO.
split_gso() { [[ "${LAB_GSO:-0}" == 1 ]] || ip -n "${LAB}sw" link set "$1" gso_max_segs 1; }

# Let client namespace $2's eth0 coalesce datagrams (GRO), as a physical NIC does: veth hands
# a packet to its peer's GRO only when the sending end ($1, the switch port) has no TSO.
# Sockets that ask for UDP GRO then read a batch at once; others still get one datagram a read.
enable_gro() { # port ns
    ip netns exec "${LAB}sw" ethtool -K "$1" tso off >/dev/null
    ip netns exec "$2" ethtool -K eth0 gro on >/dev/null
}

# Create a node namespace joined to a bridge. $1 = ns, $2 = bridge port name, $3 = addr,
# $4 = bridge (default ${LAB}br0)
add_node() {
    local ns="$1" port="$2" addr="$3" sw="${LAB}sw" br="${4:-${LAB}br0}"
    ns_exists "$ns" && die "namespace $ns already exists (run: LAB=$LAB $0 down)"
    ip netns add "$ns"
    ip -n "$sw" link add "$port" mtu "$MTU" type veth peer name eth0 mtu "$MTU" netns "$ns"
    ip -n "$sw" link set "$port" master "$br"
    split_gso "$port"
    ip -n "$sw" link set "$port" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" brd "${SUBNET_PREFIX}.255" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 224.0.0.0/4 dev eth0
}

add_client() { # K
    local k="$1"
    [[ "$k" =~ ^[0-9]+$ ]] && (( k >= 1 && k <= 240 )) || die "client number must be 1..240"
    add_node "${LAB}c$k" "${LAB}c$k-p" "${SUBNET_PREFIX}.$((10 + k))" "$(client_bridge)"
    set_loss "${LAB}c$k" "$LOSS_PCT"
    [[ -n "$RATE" ]] && set_rate "${LAB}c$k-p" "$RATE"
    [[ "$GRO" == 1 ]] && enable_gro "${LAB}c$k-p" "${LAB}c$k"
    return 0
}

cmd_up() {
    local n="${1:-}"; shift || true
    [[ "$n" =~ ^[0-9]+$ ]] || die "usage: up N [--loss PCT] [--rate RATE] [--bottleneck RATE] [--mtu MTU] [--gro]"
    LOSS_PCT=0; RATE=""; MTU=1500; BOTTLENECK=""; GRO=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --loss) LOSS_PCT="$2"; shift 2 ;;
            --loss=*) LOSS_PCT="${1#*=}"; shift ;;
            --rate) RATE="$2"; shift 2 ;;
            --rate=*) RATE="${1#*=}"; shift ;;
            --bottleneck) BOTTLENECK="$2"; shift 2 ;;
            --bottleneck=*) BOTTLENECK="${1#*=}"; shift ;;
            --mtu) MTU="$2"; shift 2 ;;
            --mtu=*) MTU="${1#*=}"; shift ;;
            --gro) GRO=1; shift ;;
            *) die "unknown option '$1'" ;;
        esac
    done
    pct_to_ppm "$LOSS_PCT" >/dev/null
    [[ "$MTU" =~ ^[0-9]+$ ]] || die "bad MTU '$MTU'"
    command -v nft >/dev/null || die "nft not found (apt-get install nftables, or scripts/install-deps.sh)"
    if [[ "$GRO" == 1 ]]; then
        command -v ethtool >/dev/null || die "--gro needs ethtool (apt-get install ethtool, or scripts/install-deps.sh)"
        no_loss_with_gro "$LOSS_PCT"
    fi
    [[ -n "$(lab_namespaces)" ]] && die "lab '$LAB' is already up (run: LAB=$LAB $0 down)"

    # On any failure part-way, leave nothing behind.
    UP_OK=0
    trap '[[ $UP_OK == 1 ]] || { echo "netlab: up failed, tearing down" >&2; cmd_down >/dev/null 2>&1; }' EXIT

    local sw="${LAB}sw" br="${LAB}br0"
    ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link add "$br" mtu "$MTU" type bridge stp_state 0 forward_delay 0 \
        mcast_snooping "${LAB_MCAST_SNOOPING:-0}"
    ip -n "$sw" link set "$br" up
    if [[ -n "$BOTTLENECK" ]]; then
        local br1="${LAB}br1" end
        ip -n "$sw" link add "$br1" mtu "$MTU" type bridge stp_state 0 forward_delay 0 \
            mcast_snooping "${LAB_MCAST_SNOOPING:-0}"
        ip -n "$sw" link set "$br1" up
        ip -n "$sw" link add "${LAB}upa" mtu "$MTU" type veth peer name "${LAB}upb" mtu "$MTU"
        ip -n "$sw" link set "${LAB}upa" master "$br"
        ip -n "$sw" link set "${LAB}upb" master "$br1"
        for end in "${LAB}upa" "${LAB}upb"; do split_gso "$end"; ip -n "$sw" link set "$end" up; done
        set_rate "${LAB}upa" "$BOTTLENECK"
    fi
    add_node "${LAB}srv" "${LAB}srv-p" "${SUBNET_PREFIX}.1"
    local k
    for ((k = 1; k <= n; k++)); do add_client "$k"; done
    save_state
    UP_OK=1
    local gro=""; [[ "$GRO" == 1 ]] && gro=", client links with GRO"
    echo "netlab: lab '$LAB' up: server ${LAB}srv (10.99.0.1), $n clients, loss ${LOSS_PCT}%, rate ${RATE:-unlimited}, mtu $MTU${BOTTLENECK:+, behind a $BOTTLENECK bottleneck}$gro"
}

cmd_down() {
    local nss n pids i
    nss=$(lab_namespaces)
    if [[ -n "$nss" ]]; then
        for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            pids=""
            for n in $nss; do pids+=" $(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')"; done
            pids=$(echo $pids)
            [[ -z "$pids" ]] && break
            if (( i == 1 )); then kill -TERM $pids 2>/dev/null || true
            elif (( i >= 10 )); then kill -KILL $pids 2>/dev/null || true
            fi
            sleep 0.1
        done
        for n in $nss; do ip netns del "$n" 2>/dev/null || true; done
    fi
    rm -f "$STATE"
    rmdir "$STATE_DIR" 2>/dev/null || true
    echo "netlab: lab '$LAB' down"
}

# The loss rule sits at the client's ingress, after GRO: with --gro it would drop whole
# coalesced batches, not single datagrams.
no_loss_with_gro() { # pct
    local ppm
    ppm=$(pct_to_ppm "$1") || exit 1
    [[ "$ppm" == 0 ]] || die "--gro with loss: the loss rule (client ingress, after GRO) would drop coalesced batches, not single datagrams; use loss 0"
}

cmd_loss() {
    local k="${1:-}" pct="${2:-}"
    [[ -n "$k" && -n "$pct" ]] || die "usage: loss K PCT"
    ns_exists "${LAB}c$k" || die "no client $k in lab '$LAB'"
    load_state
    [[ "$GRO" == 1 ]] && no_loss_with_gro "$pct"
    set_loss "${LAB}c$k" "$pct"
}

cmd_rate() {
    local k="${1:-}" rate="${2:-}"
    [[ -n "$k" && -n "$rate" ]] || die "usage: rate K RATE|off"
    ns_exists "${LAB}c$k" || die "no client $k in lab '$LAB'"
    if [[ "$rate" == off ]]; then
        tc -n "${LAB}sw" qdisc del dev "${LAB}c$k-p" root 2>/dev/null || true
    else
        set_rate "${LAB}c$k-p" "$rate"
    fi
}

cmd_drops() {
    local k="${1:-}"
    ns_exists "${LAB}c$k" || die "no client '$k' in lab '$LAB'"
    ip netns exec "${LAB}c$k" nft list chain netdev "$NFT_TABLE" ingress 2>/dev/null \
        | awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") { print $(i+1); found=1 } }
               END { if (!found) print 0 }'
}

cmd_exec() {
    local node="${1:-}"; shift || true
    [[ -n "$node" && $# -gt 0 ]] || die "usage: exec NODE CMD..."
    local ns; ns=$(ns_of "$node")
    ns_exists "$ns" || die "no namespace '$ns'"
    exec ip netns exec "$ns" "$@"
}

cmd_tap() {
    local name="${1:-}"
    [[ -n "$name" ]] || die "usage: tap NAME"
    (( ${#name} <= 15 )) || die "interface name '$name' longer than 15 characters"
    ns_exists "${LAB}sw" || die "lab '$LAB' is not up"
    load_state
    ip -n "${LAB}sw" tuntap add dev "$name" mode tap
    ip -n "${LAB}sw" link set "$name" mtu "$MTU"
    ip -n "${LAB}sw" link set "$name" master "${LAB}br0"
    ip -n "${LAB}sw" link set "$name" up
    echo "$name"
}

cmd_addclient() {
    local k="${1:-}"
    ns_exists "${LAB}sw" || die "lab '$LAB' is not up"
    load_state
    add_client "$k"
}

cmd_txbytes() {
    ns_exists "${LAB}srv" || die "lab '$LAB' is not up"
    ip netns exec "${LAB}srv" cat /sys/class/net/eth0/statistics/tx_bytes
}

cmd_status() {
    local nss; nss=$(lab_namespaces)
    if [[ -z "$nss" ]]; then echo "lab '$LAB': down"; return 0; fi
    load_state
    local gro=""; [[ "$GRO" == 1 ]] && gro=", client links with GRO"
    echo "lab '$LAB': loss ${LOSS_PCT}% (default), rate ${RATE:-unlimited}, mtu $MTU$gro"
    local n k addr pids
    for n in $nss; do
        [[ "$n" == "${LAB}sw" ]] && continue
        addr=$(ip -n "$n" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
        pids=$(ip netns pids "$n" 2>/dev/null | wc -l)
        if [[ "$n" =~ ^${LAB}c([0-9]+)$ ]]; then
            k="${BASH_REMATCH[1]}"
            local ppm
            ppm=$(ip netns exec "$n" nft list chain netdev "$NFT_TABLE" ingress 2>/dev/null \
                | sed -n 's/.*mod 1000000 < \([0-9]*\).*/\1/p')
            printf '  %-10s %-15s loss %6s%%  drops %-8s procs %s\n' "$n" "$addr" \
                "$(awk -v p="${ppm:-0}" 'BEGIN{printf "%.2f", p/10000}')" "$(cmd_drops "$k")" "$pids"
        else
            printf '  %-10s %-15s procs %s  tx_bytes %s\n' "$n" "$addr" "$pids" "$(cmd_txbytes)"
        fi
    done
    echo "  ${LAB}sw bridge ports:"
    ip -n "${LAB}sw" -o link show master "${LAB}br0" | awk -F': ' '{print "    " $2}' | sed 's/@.*//'
    if [[ -n "$BOTTLENECK" ]]; then
        echo "  behind the $BOTTLENECK uplink (${LAB}br1):"
        ip -n "${LAB}sw" -o link show master "${LAB}br1" | awk -F': ' '{print "    " $2}' | sed 's/@.*//'
    fi
    tc -n "${LAB}sw" qdisc show | grep tbf | sed 's/^/    /' || true
}

main() {
    local cmd="${1:-help}"; shift || true
    case "$cmd" in
        help|-h|--help) usage; return 0 ;;
    esac
    check_lab
    need_root
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        loss) cmd_loss "$@" ;;
        rate) cmd_rate "$@" ;;
        drops) cmd_drops "$@" ;;
        exec) cmd_exec "$@" ;;
        tap) cmd_tap "$@" ;;
        addclient) cmd_addclient "$@" ;;
        txbytes) cmd_txbytes ;;
        status) cmd_status ;;
        list) lab_namespaces ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
