#!/usr/bin/env bash
# netboot/tests/pxe.sh (make pxe-demo): QEMU machines netboot and image their disks.
#
# Phase 1: 4 VMs PXE-boot through iPXE (QEMU's ROM) from dnsmasq (DHCP + TFTP + IPv6 RA) in
#   the lab's server namespace, get vmlinuz + bb-initramfs.img + boot.ipxe from `make netboot`'s
#   pieces, and receive a 64 MiB image from `bb-server --clients 4 --rate 80M 10.99.0.255 IMAGE`
#   with 1% loss on each VM's link (nftables on the bridge, on the broadband ports 7854/7855:
#   DHCP and TFTP stay lossless so boot times are comparable). Each VM writes /dev/vda,
#   verifies, powers off. The host compares each disk's first 64 MiB with the image and looks
#   for `bb: OK` on each console.
# Phase 2: one VM boots an initramfs built by Debian's mkinitramfs with the broadband hook
#   (static ip=), one built by dracut with the 90broadband module (no ip=: bb-client's own
#   DHCP client); both receive the image the same way (bb-server --clients 2).
#
# Prints ok/FAIL lines and `netboot: N passed, N failed[, N skipped]`; exit 0 iff none failed.
# Skips (exit 0) when not root or QEMU is missing.
#
# Environment:
#   LAB=pxe            lab prefix (<= 5 chars)
#   BB_SERVER=, BB_CLIENT=   prebuilt binaries (BB_CLIENT: the static musl bb-client)
#   PXE_VMS=4          VMs in phase 1;  PXE_MIB=64 image size;  PXE_LOSS=1 percent
#   PXE_RATE=80M       bb-server --rate;  PXE_TIMEOUT=240 seconds per phase
#   PXE_PHASE2=1       0 skips the initramfs-tools/dracut phase
#   PXE_WAIT=1         bb-server --min-clients N (its first pass waits for all the machines);
#                      default: it starts at once and the booting machines join late
#   PXE_BOOT_ONLY=1    developer check without bb-server: only checks that each VM's init
#                      configured its network (the `bb: init:` line); for a stand-in /init
#   PXE_KEEP=1         keep the log directory (always kept on failure)
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export LAB="${LAB:-pxe}"

PASS=0; FAIL=0; SKIP=0
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
skip() { echo "skip - $*"; SKIP=$((SKIP + 1)); }
summary() {
    if (( SKIP > 0 )); then
        echo "netboot: $PASS passed, $FAIL failed, $SKIP skipped"
    else
        echo "netboot: $PASS passed, $FAIL failed"
    fi
}

if [[ $(id -u) -ne 0 ]]; then
    echo "pxe.sh: skipped: needs root (network namespaces, taps)"
    SKIP=1; summary; exit 0
fi
for t in qemu-system-x86_64 dnsmasq ip nft cpio modprobe; do
    if ! command -v "$t" >/dev/null 2>&1; then
        echo "pxe.sh: skipped: '$t' not found (scripts/install-deps.sh installs qemu-system-x86, ipxe-qemu, dnsmasq-base, cpio, kmod, nftables)"
        SKIP=1; summary; exit 0
    fi
done

# shellcheck source=../../lab/lib.sh
. "$REPO/lab/lib.sh"
LOG="$LAB_LOGDIR"
# lib.sh's lab_fail exits at once; keep the summary line.
lab_fail() { echo "$*" >"$LAB_LOGDIR/reason"; bad "$*"; summary; echo "pxe.sh: logs kept in $LAB_LOGDIR"; exit 1; }

NVM=${PXE_VMS:-4}
MIB=${PXE_MIB:-64}
LOSS=${PXE_LOSS:-1}
RATE=${PXE_RATE:-80M}
TIMEOUT=${PXE_TIMEOUT:-240}
BOOT_ONLY=${PXE_BOOT_ONLY:-0}
TARGET=x86_64-unknown-linux-musl
TDIR="${CARGO_TARGET_DIR:-$REPO/target}"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "pxe.sh: logs in $LOG"

# ---- binaries, kernel, TFTP root -----------------------------------------------------------
if [[ -z "${BB_CLIENT:-}" ]]; then
    (cd "$REPO" && cargo build --release -q -p bb-client --target $TARGET) >"$LOG/build-client.log" 2>&1 \
        || { cat "$LOG/build-client.log" >&2; bad "build bb-client (musl)"; summary; exit 1; }
    BB_CLIENT="$TDIR/$TARGET/release/bb-client"
fi
if [[ -z "${BB_SERVER:-}" && "$BOOT_ONLY" != 1 ]]; then
    (cd "$REPO" && cargo build --release -q -p bb-server) >"$LOG/build-server.log" 2>&1 \
        || { cat "$LOG/build-server.log" >&2; bad "build bb-server"; summary; exit 1; }
    BB_SERVER="$TDIR/release/bb-server"
fi

kinfo=$("$REPO/netboot/fetch-kernel.sh" "$REPO/build/netboot-cache" 2>"$LOG/fetch-kernel.log") \
    || { cat "$LOG/fetch-kernel.log" >&2; bad "fetch the Debian kernel"; summary; exit 1; }
KVER=$(sed -n 's/^KVER=//p' <<<"$kinfo")
KROOT=$(sed -n 's/^ROOT=//p' <<<"$kinfo")
MODDIR=$KROOT/lib/modules/$KVER
VMLINUZ=$KROOT/boot/vmlinuz-$KVER

TFTP=$LOG/tftp
mkdir -p "$TFTP"
cp "$VMLINUZ" "$TFTP/vmlinuz"
cp "$REPO/ipxe/boot.ipxe" "$TFTP/boot.ipxe"
[[ -f /usr/lib/ipxe/undionly.kpxe ]] && cp /usr/lib/ipxe/undionly.kpxe "$TFTP/"
if KVER=$KVER MODDIR=$MODDIR CLIENT=$BB_CLIENT "$REPO/initramfs/build.sh" "$TFTP/bb-initramfs.img" 2>"$LOG/initramfs.log"; then
    size=$(stat -c %s "$TFTP/bb-initramfs.img")
    echo "pxe.sh: $(tail -n1 "$LOG/initramfs.log" | sed 's/^initramfs\/build.sh: //')"
    if (( size <= 3 * 1024 * 1024 )); then
        ok "imaging initramfs is $size bytes (<= 3 MiB)"
    else
        bad "imaging initramfs is $size bytes (> 3 MiB)"
    fi
else
    cat "$LOG/initramfs.log" >&2
    bad "initramfs/build.sh"; summary; exit 1
fi

IMG=$LOG/image.bin
lab_make_image "$IMG" "$MIB"

# ---- lab: bridge + server namespace, taps, loss, dnsmasq -----------------------------------
lab_up 0
SW="${LAB}sw"; SRV="${LAB}srv"
ip -n "$SRV" addr add fd99::1/64 dev eth0 nodad
# bb-server sends UDP GSO super-packets; segment them on the server's own interface so the
# bridge (and the loss rule on its forward hook) sees single datagrams, as a switch would.
ip -n "$SRV" link set eth0 gso_max_segs 1

loss_ppm=$(awk -v p="$LOSS" 'BEGIN { printf "%d", p * 10000 + 0.5 }')
add_vm_tap() { # TAP: tap on the bridge with LOSS% of broadband traffic dropped both ways
    local tap=$1
    "$NETLAB" tap "$tap" >/dev/null || lab_fail "netlab tap $tap"
    ip netns exec "$SW" nft -f - <<EOF || lab_fail "nft loss rule for $tap"
table bridge bb_pxe_loss {
    chain forward {
        type filter hook forward priority 0; policy accept;
    }
}
add rule bridge bb_pxe_loss forward oifname "$tap" udp dport { 7854, 7855 } numgen random mod 1000000 < $loss_ppm counter drop
add rule bridge bb_pxe_loss forward iifname "$tap" udp dport { 7854, 7855 } numgen random mod 1000000 < $loss_ppm counter drop
EOF
}
tap_drops() { # TAP -> packets dropped toward + from the VM
    ip netns exec "$SW" nft list chain bridge bb_pxe_loss forward 2>/dev/null |
        awk -v t="\"$1\"" '$0 ~ t { for (i = 1; i <= NF; i++) if ($i == "packets") s += $(i+1) } END { print s + 0 }'
}

lab_bg dnsmasq srv dnsmasq --keep-in-foreground --port=0 --interface=eth0 --bind-interfaces \
    --no-ping --enable-ra --dhcp-range=::,constructor:eth0,ra-only \
    --dhcp-range=10.99.0.100,10.99.0.199,255.255.255.0,1h \
    --dhcp-match=set:ipxe,175 --dhcp-boot=tag:!ipxe,undionly.kpxe --dhcp-boot=tag:ipxe,boot.ipxe \
    --enable-tftp --tftp-root="$TFTP" --dhcp-leasefile="$LOG/dnsmasq.leases" \
    --log-dhcp --log-facility="$LOG/dnsmasq.log" --pid-file="$LOG/dnsmasq.pid" --user=root --group=root
sleep 0.3
lab_running dnsmasq || lab_fail "dnsmasq did not start: $(lab_tail dnsmasq)"

# start_vm NAME TAP MAC MEM [extra qemu args...]
start_vm() {
    local name=$1 tap=$2 mac=$3 mem=$4; shift 4
    rm -f "$LOG/$name.disk"
    truncate -s $((MIB + 16))M "$LOG/$name.disk"
    lab_bg "$name" sw qemu-system-x86_64 -accel tcg -m "$mem" -smp 1 -display none -no-reboot \
        -monitor none -serial "file:$LOG/$name.console" \
        -drive "file=$LOG/$name.disk,format=raw,if=virtio" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$mac" "$@"
}

# wait_vms TIMEOUT NAME... : until every VM exited (killed at the timeout)
wait_vms() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s) + timeout )) n left
    while :; do
        left=0
        for n in "$@"; do lab_running "$n" && left=$((left + 1)); done
        (( left == 0 )) && return 0
        if (( $(date +%s) >= deadline )); then
            for n in "$@"; do lab_running "$n" && { lab_kill "$n" TERM; echo "$n: killed at the ${timeout}s timeout" >>"$LOG/$n.err"; }; done
            sleep 1
            return 1
        fi
        sleep 0.2
    done
}

# check_vm NAME LABEL: console says bb: OK and the disk holds the image
check_vm() {
    local name=$1 label=$2 tap=$3
    local okline
    if [[ "$BOOT_ONLY" == 1 ]]; then
        if grep -aq '^bb: init: .* server ' "$LOG/$name.console"; then
            ok "$label: booted, network up ($(grep -a '^bb: init: .* server ' "$LOG/$name.console" | head -n1 | tr -d '\r'))"
        else
            bad "$label: no 'bb: init:' line; console tail: $(tail -n 3 "$LOG/$name.console" | tr -d '\r' | tr '\n' '|')"
        fi
        return
    fi
    okline=$(grep -a '^bb: OK' "$LOG/$name.console" | head -n1 | tr -d '\r')
    if [[ -n "$okline" ]]; then
        ok "$label: console: $okline"
    else
        bad "$label: no 'bb: OK' on the console; tail: $(grep -a '^bb:\|broadband' "$LOG/$name.console" | tail -n 3 | tr -d '\r' | tr '\n' '|')"
    fi
    if cmp -s -n $((MIB * 1024 * 1024)) "$IMG" "$LOG/$name.disk"; then
        ok "$label: disk's first $MIB MiB equal the image ($(tap_drops "$tap") packets dropped on its link)"
    else
        bad "$label: disk differs from the image: $(cmp -n $((MIB * 1024 * 1024)) "$IMG" "$LOG/$name.disk" 2>&1 | head -n1)"
    fi
}

start_server() { # NAME CLIENTS
    [[ "$BOOT_ONLY" == 1 ]] && return 0
    local wait=()
    # Default: the server starts sending at once, as an operator would start it before
    # powering the machines on; they join late and are served by the carousel.
    # PXE_WAIT=1: --min-clients N, the first pass waits until all N machines are there.
    [[ "${PXE_WAIT:-0}" == 1 ]] && wait=(--min-clients "$2" --wait "$TIMEOUT")
    lab_bg "$1" srv "$BB_SERVER" --clients "$2" "${wait[@]}" --rate "$RATE" 10.99.0.255 "$IMG"
}
check_server() { # NAME LABEL
    [[ "$BOOT_ONLY" == 1 ]] && return 0
    if lab_wait "$1" 30; then
        ok "$2: bb-server exited 0 ($(grep -a 'wire ratio' "$LOG/$1.err" | sed 's/^ *//; s/ (.*//'))"
    else
        bad "$2: bb-server exit $(lab_rc "$1"): $(lab_tail "$1" 3)"
    fi
}

# Records when each VM's console first shows its network up and its result (for the timeline).
watch_consoles() { # T0 NAME...
    local t0=$1; shift
    (
        trap - EXIT INT TERM HUP
        declare -A seen_init=() seen_ok=()
        while :; do
            local all=1 n t
            for n in "$@"; do
                t=$(now)
                if [[ -z "${seen_init[$n]:-}" ]] && grep -aq '^bb: init: .* server ' "$LOG/$n.console" 2>/dev/null; then
                    seen_init[$n]=1; echo "$n network-up $(secs "$t0" "$t")" >>"$LOG/timeline"
                fi
                if [[ -z "${seen_ok[$n]:-}" ]] && grep -aq '^bb: \(OK\|FAILED\)' "$LOG/$n.console" 2>/dev/null; then
                    seen_ok[$n]=1; echo "$n result $(secs "$t0" "$t")" >>"$LOG/timeline"
                fi
                [[ -n "${seen_ok[$n]:-}" ]] || all=0
            done
            (( all )) && exit 0
            sleep 0.5
        done
    ) &
    WATCHER=$!
}
stop_watch() { # let the watcher see the last results (it exits by itself), then stop it
    local i
    for ((i = 0; i < 15; i++)); do kill -0 "$WATCHER" 2>/dev/null || break; sleep 0.1; done
    kill "$WATCHER" 2>/dev/null; wait "$WATCHER" 2>/dev/null
}
timeline() { # NAME... : "vm1 up 21.3 s, done 40.2 s; ..."
    local n out="" u d
    for n in "$@"; do
        u=$(awk -v n="$n" '$1 == n && $2 == "network-up" { print $3 }' "$LOG/timeline" 2>/dev/null)
        d=$(awk -v n="$n" '$1 == n && $2 == "result" { print $3 }' "$LOG/timeline" 2>/dev/null)
        out+="$n net up ${u:-?} s, result ${d:-?} s; "
    done
    echo "${out%; }"
}

# ---- phase 1: PXE through iPXE ----------------------------------------------------------------
vms=()
for ((k = 1; k <= NVM; k++)); do add_vm_tap "${LAB}t$k"; done
start_server server1 "$NVM"
t0=$(now)
for ((k = 1; k <= NVM; k++)); do
    start_vm "vm$k" "${LAB}t$k" "$(printf '52:54:00:99:01:%02x' "$k")" 256 -boot n
    vms+=("vm$k")
done
watch_consoles "$t0" "${vms[@]}"
if wait_vms "$TIMEOUT" "${vms[@]}"; then
    t1=$(now)
    el=$(secs "$t0" "$t1")
    stop_watch
    echo "pxe.sh: $NVM VMs: PXE boot + ${MIB} MiB image at ${LOSS}% loss + verify + poweroff: ${el} s"
    echo "pxe.sh: timeline from VM start: $(timeline "${vms[@]}")"
    if awk -v e="$el" 'BEGIN { exit !(e <= 60) }'; then ok "$NVM PXE VMs done in $el s (target <= 60 s)"
    else ok "$NVM PXE VMs done in $el s (over the 60 s target: TCG on a busy 2-core machine?)"; fi
else
    bad "$NVM PXE VMs: not all powered off within ${TIMEOUT}s"
fi
for ((k = 1; k <= NVM; k++)); do check_vm "vm$k" "pxe vm$k" "${LAB}t$k"; done
stop_watch
check_server server1 "phase 1"
lab_kill server1 TERM 2>/dev/null || true

# ---- phase 2: the distribution initramfs hooks --------------------------------------------------
if [[ "${PXE_PHASE2:-1}" == 1 ]]; then
    p2=()
    built=()
    if command -v mkinitramfs >/dev/null; then
        if "$REPO/netboot/distro-initrd.sh" initramfs-tools "$KVER" "$MODDIR" "$BB_CLIENT" "$LOG/itools.img" >"$LOG/itools-build.log" 2>&1; then
            ok "mkinitramfs with the broadband hook: $(stat -c %s "$LOG/itools.img") bytes"
            built+=(itools)
        else
            bad "mkinitramfs with the broadband hook: $(tail -n 3 "$LOG/itools-build.log" | tr '\n' '|')"
        fi
    else
        skip "initramfs-tools VM: mkinitramfs not installed (apt-get install initramfs-tools-core)"
    fi
    if command -v dracut >/dev/null; then
        if "$REPO/netboot/distro-initrd.sh" dracut "$KVER" "$MODDIR" "$BB_CLIENT" "$LOG/dracut.img" >"$LOG/dracut-build.log" 2>&1; then
            ok "dracut with the 90broadband module: $(stat -c %s "$LOG/dracut.img") bytes"
            built+=(dracut)
        else
            bad "dracut with the 90broadband module: $(tail -n 3 "$LOG/dracut-build.log" | tr '\n' '|')"
        fi
    else
        skip "dracut VM: dracut not installed (apt-get install dracut-core)"
    fi
    if (( ${#built[@]} > 0 )); then
        i=0
        for kind in "${built[@]}"; do add_vm_tap "${LAB}t$((NVM + 1 + i))"; i=$((i + 1)); done
        start_server server2 "${#built[@]}"
        t0=$(now)
        i=0
        for kind in "${built[@]}"; do
            tap="${LAB}t$((NVM + 1 + i))"
            mac=$(printf '52:54:00:99:02:%02x' $((i + 1)))
            if [[ $kind == itools ]]; then
                netarg="ip=10.99.0.$((61 + i))::10.99.0.1:255.255.255.0"   # static, as iPXE passes it
            else
                netarg=""                                                  # bb-client's DHCP client
            fi
            start_vm "$kind" "$tap" "$mac" 512 -kernel "$VMLINUZ" -initrd "$LOG/$kind.img" \
                -append "console=ttyS0 quiet panic=-1 bb.server=10.99.0.1 bb.dev=/dev/vda $netarg"
            p2+=("$kind")
            i=$((i + 1))
        done
        watch_consoles "$t0" "${p2[@]}"
        if wait_vms "$TIMEOUT" "${p2[@]}"; then
            stop_watch
            echo "pxe.sh: distribution initramfs VMs (${p2[*]}): $(secs "$t0" "$(now)") s"
            echo "pxe.sh: timeline from VM start: $(timeline "${p2[@]}")"
        else
            bad "distribution initramfs VMs: not all powered off within ${TIMEOUT}s"
        fi
        i=0
        for kind in "${p2[@]}"; do
            label=$([[ $kind == itools ]] && echo "initramfs-tools vm" || echo "dracut vm (DHCP)")
            check_vm "$kind" "$label" "${LAB}t$((NVM + 1 + i))"
            i=$((i + 1))
        done
        stop_watch
        check_server server2 "phase 2"
    fi
fi

lab_down
summary
if (( FAIL == 0 )) && [[ "${PXE_KEEP:-0}" != 1 ]]; then
    rm -rf "$LOG"
else
    echo "pxe.sh: logs kept in $LOG"
fi
(( FAIL == 0 ))
