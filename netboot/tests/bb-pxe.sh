#!/usr/bin/env bash
# netboot/tests/bb-pxe.sh: QEMU machines PXE-boot from `bb-pxe` (one command: dnsmasq + TFTP
# + bb-server) and image their disks with bb.dev=auto, in both DHCP modes.
#
# Lab: bridge ${LAB}sw; bb-pxe runs in ${LAB}srv (10.99.0.1/24, eth0); ${LAB}c1 (10.99.0.11)
# plays the site's network: its own dnsmasq sends IPv6 router advertisements (iPXE waits
# ~13 s for IPv6 autoconfiguration without one) and, in phase A, hands out the IPv4
# addresses. Every VM's link drops PXE_LOSS % of broadband's UDP ports (as pxe.sh does).
#
# Phase A, proxy DHCP: c1's dnsmasq is the DHCP server (10.99.0.100-199), bb-pxe runs with
#   its default proxy DHCP: `bb-pxe --clients 4 eth0 IMAGE`. 4 VMs, two with a virtio disk,
#   two with an NVMe disk (the same kernel command line, bb.dev=auto). Checks: bb-pxe exits
#   0, each console says `bb: OK`, each disk holds the image, the addresses came from c1.
#   Prints the time from bb-pxe's start to its exit (the last of 4 machines verified).
# Phase B, full DHCP: `bb-pxe --dhcp-range ... --done reboot --clients 6`: the same 4 VMs
#   (blank disks) may reboot; a 5th VM has two disks (virtio + NVMe) that both hold the
#   image, so bb.dev=auto refuses, names both, writes neither and halts. Checks: 4 OK +
#   images; each verified VM rebooted, was served its per-MAC script and fetched the
#   imaging kernel only once (it left the loop); the 5th's refusal; then SIGINT to bb-pxe:
#   exit 130 and no process left in the server namespace. (--clients 6, one more than the
#   machines: with 5 the session ends once 4 verified and 1 failed, before the reboots.)
#
# Prints ok/FAIL lines and `bb-pxe test: N passed, N failed`; exit 0 iff none failed.
# Skips (exit 0) when not root or QEMU/dnsmasq/iPXE are missing.
# Environment: LAB=pxp, BB_PXE=, BB_SERVER=, BB_CLIENT= (prebuilt; BB_CLIENT static musl),
#   PXE_MIB=64, PXE_LOSS=1, PXE_RATE=80M, PXE_TIMEOUT=900 (seconds per phase), PXE_KEEP=1,
#   PXE_PHASES="A B" (the phases to run)
# The kernel gets no_timer_check: on a starved host, TCG guests failed the IO-APIC timer
# check and panicked ("IO-APIC + timer doesn't work!", seen here with 8 TCG VMs on 2 cores).
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export LAB="${LAB:-pxp}"

PASS=0; FAIL=0
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
summary() { echo "bb-pxe test: $PASS passed, $FAIL failed"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "bb-pxe.sh: skipped: needs root (network namespaces, taps)"; summary; exit 0
fi
for t in qemu-system-x86_64 dnsmasq ip nft cpio modprobe; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "bb-pxe.sh: skipped: '$t' not found (scripts/install-deps.sh installs it)"; summary; exit 0; }
done
[[ -f /usr/lib/ipxe/undionly.kpxe && -f /usr/lib/ipxe/ipxe.efi ]] || {
    echo "bb-pxe.sh: skipped: iPXE loaders missing (apt-get install ipxe)"; summary; exit 0; }

# shellcheck source=../../lab/lib.sh
. "$REPO/lab/lib.sh"
LOG="$LAB_LOGDIR"
lab_fail() { echo "$*" >"$LAB_LOGDIR/reason"; bad "$*"; summary; echo "bb-pxe.sh: logs kept in $LAB_LOGDIR"; exit 1; }

MIB=${PXE_MIB:-64}
LOSS=${PXE_LOSS:-1}
RATE=${PXE_RATE:-80M}
TIMEOUT=${PXE_TIMEOUT:-900}
TARGET=x86_64-unknown-linux-musl
TDIR="${CARGO_TARGET_DIR:-$REPO/target}"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
echo "bb-pxe.sh: logs in $LOG"

# ---- binaries and the netboot files (what `make netboot` makes) ------------------------------
if [[ -z "${BB_CLIENT:-}" ]]; then
    (cd "$REPO" && cargo build --release -q -p bb-client --target $TARGET) >"$LOG/build.log" 2>&1 \
        || { cat "$LOG/build.log" >&2; lab_fail "build bb-client (musl)"; }
    BB_CLIENT="$TDIR/$TARGET/release/bb-client"
fi
if [[ -z "${BB_PXE:-}" ]]; then
    (cd "$REPO" && cargo build --release -q -p bb-server -p bb-pxe) >"$LOG/build.log" 2>&1 \
        || { cat "$LOG/build.log" >&2; lab_fail "build bb-server, bb-pxe"; }
    BB_PXE="$TDIR/release/bb-pxe"
fi
SERVER_OPT=()
[[ -n "${BB_SERVER:-}" ]] && SERVER_OPT=(--bb-server "$BB_SERVER")
kinfo=$("$REPO/netboot/fetch-kernel.sh" "$REPO/build/netboot-cache" 2>"$LOG/fetch-kernel.log") \
    || { cat "$LOG/fetch-kernel.log" >&2; lab_fail "fetch the Debian kernel"; }
KVER=$(sed -n 's/^KVER=//p' <<<"$kinfo")
KROOT=$(sed -n 's/^ROOT=//p' <<<"$kinfo")
NB=$LOG/netboot
mkdir -p "$NB"
cp "$KROOT/boot/vmlinuz-$KVER" "$NB/vmlinuz"
KVER=$KVER MODDIR=$KROOT/lib/modules/$KVER CLIENT=$BB_CLIENT "$REPO/initramfs/build.sh" "$NB/bb-initramfs.img" \
    2>"$LOG/initramfs.log" || { cat "$LOG/initramfs.log" >&2; lab_fail "initramfs/build.sh"; }

IMG=$LOG/image.bin
lab_make_image "$IMG" "$MIB"

# ---- lab ----------------------------------------------------------------------------------------
lab_up 1
SW="${LAB}sw"
ip -n "${LAB}srv" link set eth0 gso_max_segs 1   # single datagrams on the bridge (see pxe.sh)
ip -n "${LAB}c1" addr add fd99::2/64 dev eth0 nodad
loss_ppm=$(awk -v p="$LOSS" 'BEGIN { printf "%d", p * 10000 + 0.5 }')
ip netns exec "$SW" nft add table bridge bb_pxe_loss
ip netns exec "$SW" nft add chain bridge bb_pxe_loss forward '{ type filter hook forward priority 0; policy accept; }'
add_vm_tap() {
    "$NETLAB" tap "$1" >/dev/null || lab_fail "netlab tap $1"
    ip netns exec "$SW" nft add rule bridge bb_pxe_loss forward oifname "$1" udp dport '{ 7854, 7855 }' numgen random mod 1000000 '<' "$loss_ppm" counter drop
    ip netns exec "$SW" nft add rule bridge bb_pxe_loss forward iifname "$1" udp dport '{ 7854, 7855 }' numgen random mod 1000000 '<' "$loss_ppm" counter drop
}
for k in 1 2 3 4 5; do add_vm_tap "${LAB}t$k"; done

# The site's network in c1: router advertisements always, DHCPv4 when $1 = dhcp.
start_site() {
    local v4=()
    [[ $1 == dhcp ]] && v4=(--dhcp-range=10.99.0.100,10.99.0.199,255.255.255.0,1h --no-ping)
    lab_bg "site-$2" c1 dnsmasq --keep-in-foreground --port=0 --interface=eth0 --bind-interfaces \
        --enable-ra --dhcp-range=::,constructor:eth0,ra-only "${v4[@]}" \
        --dhcp-leasefile="$LOG/site-$2.leases" --log-dhcp --log-facility="$LOG/site-$2.log" \
        --pid-file="$LOG/site-$2.pid" --user=root --group=root
    sleep 0.3
    lab_running "site-$2" || lab_fail "site dnsmasq: $(lab_tail "site-$2" 2>/dev/null || cat "$LOG/site-$2.err")"
}

# start_vm NAME TAP MAC REBOOT(0|1) DISKS... (virtio | nvme: one disk of MIB+16 MiB each)
start_vm() {
    local name=$1 tap=$2 mac=$3 reboot=$4; shift 4
    local args=() i=0 kind
    for kind in "$@"; do
        rm -f "$LOG/$name.d$i"; truncate -s $((MIB + 16))M "$LOG/$name.d$i"
        if [[ $kind == nvme ]]; then
            args+=(-drive "file=$LOG/$name.d$i,format=raw,if=none,id=d$i" -device "nvme,drive=d$i,serial=bb${name}n$i")
        else
            args+=(-drive "file=$LOG/$name.d$i,format=raw,if=none,id=d$i" -device "virtio-blk-pci,drive=d$i,serial=bb${name}v$i")
        fi
        i=$((i + 1))
    done
    [[ $reboot == 1 ]] || args+=(-no-reboot)
    # SeaBIOS mirrors its and iPXE's screen output to the serial console (for the logs).
    printf '\xf8\x03' >"$LOG/sercon"
    args+=(-fw_cfg "name=etc/sercon-port,file=$LOG/sercon")
    lab_bg "$name" sw qemu-system-x86_64 -accel tcg -m 256 -smp 1 -display none \
        -monitor none -serial "file:$LOG/$name.console" -boot n "${args[@]}" \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$mac"
}
mac_of() { printf '52:54:00:98:%02x:%02x' "$1" "$2"; }
KINDS=(virtio nvme virtio nvme)

check_disk() { # NAME LABEL
    if cmp -s -n $((MIB * 1024 * 1024)) "$IMG" "$LOG/$1.d0"; then ok "$2: disk holds the image"
    else bad "$2: disk differs from the image: $(cmp -n $((MIB * 1024 * 1024)) "$IMG" "$LOG/$1.d0" 2>&1 | head -n1)"; fi
}
console_ok() { grep -a '^bb: OK' "$LOG/$1.console" 2>/dev/null | head -n1 | tr -d '\r'; }
count_ok() { local n c=0; for n in "$@"; do [[ -n $(console_ok "$n") ]] && c=$((c + 1)); done; echo $c; }

PHASES=${PXE_PHASES:-A B}
# ---- phase A: proxy DHCP beside the site's DHCP server ---------------------------------------
if [[ $PHASES == *A* ]]; then
start_site dhcp A
t0=$(now)
lab_bg pxeA srv "$BB_PXE" "${SERVER_OPT[@]}" --clients 4 --rate "$RATE" --append "console=ttyS0 no_timer_check" \
    --state "$LOG/stateA" --netboot "$NB" eth0 "$IMG"
sleep 0.5
lab_running pxeA || lab_fail "bb-pxe (proxy) did not start: $(tail -n 3 "$LOG/pxeA.err")"
vmsA=()
for k in 1 2 3 4; do start_vm "a$k" "${LAB}t$k" "$(mac_of 10 "$k")" 0 "${KINDS[k-1]}"; vmsA+=("a$k"); done
last_ok=""
deadline=$(( $(date +%s) + TIMEOUT ))
while lab_running pxeA && (( $(date +%s) < deadline )); do
    [[ -z $last_ok && $(count_ok "${vmsA[@]}") == 4 ]] && last_ok=$(now)
    sleep 0.2
done
if lab_wait pxeA 5; then
    tA=$(secs "$t0" "$(lab_end pxeA)")
    ok "proxy DHCP: bb-pxe exited 0 after 4 machines verified (virtio + NVMe, bb.dev=auto)"
    echo "bb-pxe.sh: proxy DHCP: bb-pxe start -> exit (last of 4 verified): $tA s; last 'bb: OK' on a console: $( [[ -n $last_ok ]] && secs "$t0" "$last_ok" || echo '?') s"
else
    bad "proxy DHCP: bb-pxe exit $(lab_rc pxeA): $(tail -n 5 "$LOG/pxeA.err" | tr '\n' '|')"
fi
for n in "${vmsA[@]}"; do lab_kill "$n" TERM; done
sleep 1
for k in 1 2 3 4; do
    n=a$k
    line=$(console_ok "$n")
    if [[ -n $line ]]; then ok "proxy $n (${KINDS[k-1]}): $line"; else bad "proxy $n: no 'bb: OK'; tail: $(grep -a '^bb' "$LOG/$n.console" | tail -n 3 | tr -d '\r' | tr '\n' '|')"; fi
    check_disk "$n" "proxy $n (${KINDS[k-1]})"
done
if grep -aq 'auto: target /dev/nvme0n1' "$LOG"/a*.console && grep -aq 'auto: target /dev/vda' "$LOG"/a*.console; then
    ok "bb.dev=auto chose /dev/vda and /dev/nvme0n1 on the two kinds of machine"
else
    bad "bb.dev=auto: no 'auto: target /dev/vda' and '/dev/nvme0n1' lines on the consoles"
fi
acks=$(grep -c 'DHCPACK' "$LOG/site-A.log" 2>/dev/null)
if (( acks >= 4 )) && ! grep -q 'DHCPACK' "$LOG/stateA/dnsmasq.log" && grep -q 'proxy' "$LOG/stateA/dnsmasq.log"; then
    ok "proxy DHCP: the site's dnsmasq gave the addresses ($acks DHCPACKs), bb-pxe's only boot information"
else
    bad "proxy DHCP: site DHCPACKs $acks; bb-pxe's dnsmasq log: $(grep -c DHCPACK "$LOG/stateA/dnsmasq.log" 2>/dev/null) DHCPACKs"
fi
lab_kill site-A TERM; lab_wait site-A 5 >/dev/null
fi

# ---- phase B: full DHCP, done=reboot, a machine with two disks ----------------------------------
if [[ $PHASES == *B* ]]; then
start_site ra B
t0=$(now)
lab_bg pxeB srv "$BB_PXE" "${SERVER_OPT[@]}" --clients 6 --rate "$RATE" --done reboot --append "console=ttyS0 no_timer_check" \
    --dhcp-range 10.99.0.100,10.99.0.199,255.255.255.0 --state "$LOG/stateB" --netboot "$NB" eth0 "$IMG"
sleep 0.5
lab_running pxeB || lab_fail "bb-pxe (full DHCP) did not start: $(tail -n 3 "$LOG/pxeB.err")"
vmsB=()
for k in 1 2 3 4; do start_vm "b$k" "${LAB}t$k" "$(mac_of 11 "$k")" 1 "${KINDS[k-1]}"; vmsB+=("b$k"); done
start_vm b5 "${LAB}t5" "$(mac_of 11 5)" 0 virtio nvme
# Done when 4 consoles say OK, each of the 4 fetched its per-MAC script after rebooting, and
# the 5th refused.
macsent() { grep -c "sent .*mac-$(mac_of 11 "$1" | tr : -)\.ipxe" "$LOG/stateB/dnsmasq.log" 2>/dev/null; }
last_ok=""
deadline=$(( $(date +%s) + TIMEOUT ))
while (( $(date +%s) < deadline )); do
    [[ -z $last_ok && $(count_ok "${vmsB[@]}") == 4 ]] && last_ok=$(now)
    done_all=1
    for k in 1 2 3 4; do (( $(macsent "$k") >= 1 )) || done_all=0; done
    grep -aq '^bb: FAILED' "$LOG/b5.console" 2>/dev/null || done_all=0
    (( done_all )) && break
    lab_running pxeB || break
    sleep 0.5
done
[[ -n $last_ok ]] && echo "bb-pxe.sh: full DHCP: bb-pxe start -> 4th 'bb: OK' on a console: $(secs "$t0" "$last_ok") s"
sleep 3   # a machine that were imaged again would be fetching the kernel now
for k in 1 2 3 4; do
    n=b$k
    line=$(console_ok "$n")
    if [[ -n $line ]]; then ok "full DHCP $n (${KINDS[k-1]}): $line"; else bad "full DHCP $n: no 'bb: OK'; tail: $(grep -a '^bb' "$LOG/$n.console" | tail -n 3 | tr -d '\r' | tr '\n' '|')"; fi
    check_disk "$n" "full DHCP $n (${KINDS[k-1]})"
    ip=$(awk -v m="$(mac_of 11 "$k")" '$2 == m { print $3 }' "$LOG/stateB/dnsmasq.leases")
    kernels=$(grep -c "sent .*/vmlinuz to ${ip:-none}\$" "$LOG/stateB/dnsmasq.log")
    if (( $(macsent "$k") >= 1 )) && [[ $kernels == 1 ]]; then
        ok "full DHCP $n ($ip) rebooted, got its per-MAC script, fetched the imaging kernel once: left the loop"
    else
        bad "full DHCP $n ($ip): per-MAC script sent $(macsent "$k") times, vmlinuz sent $kernels times"
    fi
done
if grep -aq '^bb: FAILED .*bb.dev=auto: 2 internal disks hold the' "$LOG/b5.console" \
    && grep -aq '/dev/nvme0n1 80 MiB' "$LOG/b5.console" && grep -aq '/dev/vda 80 MiB' "$LOG/b5.console"; then
    ok "two disks: bb.dev=auto refused: $(grep -a '^bb: FAILED' "$LOG/b5.console" | head -n1 | tr -d '\r' | cut -c1-160)..."
else
    bad "two disks: no refusal naming both disks; tail: $(grep -a '^bb' "$LOG/b5.console" | tail -n 2 | tr -d '\r' | tr '\n' '|')"
fi
if [[ -z $(tr -d '\0' <"$LOG/b5.d0" | head -c 1) && -z $(tr -d '\0' <"$LOG/b5.d1" | head -c 1) ]]; then
    ok "two disks: neither disk was written"
else
    bad "two disks: a disk was written although bb.dev=auto refused"
fi
lab_kill pxeB INT
lab_wait pxeB 15; rc=$?
left=$(ip netns pids "${LAB}srv" 2>/dev/null | wc -l)
if [[ $rc == 130 && $left == 0 ]]; then
    ok "SIGINT: bb-pxe exited 130 (bb-server's), nothing left running in the server namespace"
else
    bad "SIGINT: bb-pxe exit $rc, $left processes left in ${LAB}srv: $(ip netns pids "${LAB}srv" 2>/dev/null | xargs -r ps -o comm= -p | tr '\n' ' ')"
fi
for n in "${vmsB[@]}" b5; do lab_kill "$n" TERM; done
fi
lab_down
summary
if (( FAIL == 0 )) && [[ "${PXE_KEEP:-0}" != 1 ]]; then rm -rf "$LOG"; else echo "bb-pxe.sh: logs kept in $LOG"; fi
(( FAIL == 0 ))
