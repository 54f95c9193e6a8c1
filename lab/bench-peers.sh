#!/usr/bin/env bash
# bench-peers.sh: issue 10's race (root): broadband against udpcast and uftp, one tool after
# the other, on the same image in the same namespace lab, plus a raw UDP GSO blaster as the
# lab's ceiling. Prints one table; writes results.csv, results.json and chart.svg to
# build/bench-peers/ (BENCH_OUT). `make bench-peers [SCENARIOS="2x1g 48x20m"]`.
#
# Scenarios (SCENARIOS, default: all, in this order):
#   8u-0        8 clients, unshaped, 0 % loss, 256 MiB random image        (+ GSO blasters)
#   8u-1        8 clients, unshaped, 1 % loss, 256 MiB                      (+ GSO blasters)
#   2x1g        2 clients on 1 Gbit/s links, 128 MiB
#   8x100m      8 clients on 100 Mbit/s links, 1 % loss, 64 MiB
#   48x20m      48 clients on 20 Mbit/s links, 1 % loss, 16 MiB
#   8u-1slow    8 clients at 1 % loss, unshaped but client 8 on a 50 Mbit/s link, 64 MiB
#   7u-1        the same without the slow client: 7 clients at 1 % loss, unshaped, 64 MiB
#   2x300m-tcp  2 clients behind one 300 Mbit/s bottleneck shared with an iperf3 TCP flow
#               (server -> client 1), 64 MiB; bb also with --fair when bb-server has it, and
#               as the reference for --fair, "tcp": a second TCP flow of the same congestion
#               control carrying the image's bytes to client 2 beside the first
#   ext4        4 clients at 1 % loss, an ext4 file system with real files from /usr:
#               bb (its own compression) vs udpcast with a zstd pipe on both ends
# Tools: bb (bb-server defaults, no --rate), udpcast (udp-sender defaults), udpcast-cap
# (--max-bitrate 0.95 x the slowest link, or the fair share of the bottleneck), uftp
# (-R -1: as fast as the interface allows), uftp-tfmcc (-C tfmcc), blast (bb-gso-blast: the
# receivers count datagrams), blast-write (the same, the receivers also write each payload to
# their output file, as a receiver that keeps the image must: the ceiling for such a tool),
# blast-verify (blast-write whose receivers also check what they keep as bb-client must at
# the least: each datagram's CRC32 and each written run's BLAKE3 content hash: the ceiling
# for a tool that verifies).
#
# Columns: verified = from the sender's start until every client's output was compared with
# the image (cmp, started as soon as that client ended); last = until the last client had its
# image (bb-client / udp-receiver exited, uftpd's post-receive script ran); floor = image
# bits / slowest link (or bottleneck) rate; fast = 8u-1slow: until the last of the seven
# fast clients had its image (last is then the slow one); tcp Mbit/s = 2x300m-tcp: the
# iperf3 flow's throughput while the tool ran; tx/img = the server namespace's eth0 tx bytes
# during the run / image size; cpu = sender user+system seconds (/usr/bin/time, children
# included: udp-sender's zstd pipe counts); clients cpu = the receivers' user+system seconds
# summed (the same, from each receiver's /usr/bin/time: on the lab's two cores they share the
# CPU with the sender); rss = largest client peak RSS (/usr/bin/time %M; uftpd: the same, it
# is stopped with SIGTERM after the run); Mbit/s = image bits / last.
# A tool that fails or times out is a row saying so.
#
# Runs: each scenario runs every tool BENCH_RUNS times (3), one tool after the other in each
# round, so that a swing of the shared host falls on every tool alike. The table gives, per
# scenario and tool, the median of each column over the runs (a failed run counts as the
# longest time: a failure is never averaged away, and its status says in how many runs it
# failed), every run's last time, and the note of the run with the median last time.
# results.csv holds every run; results.md both tables.
#
# env: SCENARIOS, BENCH_RUNS (3), BENCH_OUT (build/bench-peers), BENCH_TIMEOUT_SCALE (1: multiplies every
#      run's time bound), BB_SERVER / BB_CLIENT (default: the tree's release build and
#      build/bb-client), LAB (peer), BENCH_NO_BUILD=1 (use the binaries as they are),
#      BENCH_TOOLS (only these tools, e.g. "bb uftp"; default: every tool of a scenario),
#      BENCH_TCP_CC (the TCP flow's congestion control, e.g. cubic; default: the kernel's,
#      named in the row's note), BENCH_GRO=1 (the clients' links coalesce datagrams as a
#      physical NIC does: netlab's --gro, and the blaster's receivers read with --gro; the
#      scenarios with loss are skipped, since the lab's loss rule sits after GRO)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export LAB="${LAB:-peer}"
. "$HERE/lib.sh"
. "$HERE/images.sh"

ALL_SCENARIOS="8u-0 8u-1 2x1g 8x100m 48x20m 8u-1slow 7u-1 2x300m-tcp ext4"
SCENARIOS="${SCENARIOS:-$ALL_SCENARIOS}"
OUT="${BENCH_OUT:-$LAB_REPO/build/bench-peers}"
SCALE="${BENCH_TIMEOUT_SCALE:-1}"
RUNS="${BENCH_RUNS:-3}"
say() { echo "==> $*" >&2; }
die() { echo "bench-peers: $*" >&2; exit 1; }

for s in $SCENARIOS; do
    [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario '$s' (known: $ALL_SCENARIOS)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a whole number of runs, 1 or more (got '$RUNS')"
lab_require_root
for t in udp-sender udp-receiver uftp uftpd iperf3 zstd mkfs.ext4 cmp python3; do
    command -v "$t" >/dev/null || die "$t not found: run make deps (scripts/install-deps.sh)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: run make deps (package time)"

# ---- binaries: what this tree builds ---------------------------------------------------
TDIR="${CARGO_TARGET_DIR:-$LAB_REPO/target}"
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    say "building bb-server, bb-gso-blast (release) and the static bb-client (make client)"
    # Two builds: with --bin, cargo builds only that binary of all the packages named.
    (cd "$LAB_REPO" && cargo build --release -q -p bb-server \
        && cargo build --release -q -p bb-bench --bin bb-gso-blast) || die "cargo build failed"
    make -s -C "$LAB_REPO" client >/dev/null || die "make client failed"
fi
BLAST="$TDIR/release/bb-gso-blast"
[[ -x "$BLAST" ]] || die "bb-gso-blast not built ($BLAST)"
lab_require_bins
HAVE_FAIR=0
"$BB_SERVER" --help 2>&1 | grep -q -- '--fair' && HAVE_FAIR=1

mkdir -p "$OUT"
CSV="$OUT/results.csv"
echo "scenario,tool,run,status,verified_s,last_s,floor_s,tx_ratio,sender_cpu_s,clients_cpu_s,client_rss_mib,mbit_s,fast_s,tcp_mbit_s,note" >"$CSV"


d=$(lab_tmpdir)

# ---- helpers ----------------------------------------------------------------------------

# A client's command, then: when it ended, whether its output equals the image, when that
# comparison ended. Every receiver's /usr/bin/time writes MARK.time: its user and system
# seconds on the first line, its peak RSS (KiB) on the last. The comparison runs at the
# lowest priority: the lab has two cores, and the first clients' cmp took them from the
# clients still receiving (48x20m: the last client 50-100 ms later, alternated runs).
# For every tool alike.
cat >"$d/client-wrap" <<'EOF'
#!/bin/sh
# client-wrap MARK OUTPUT IMAGE CMD...
mark=$1 out=$2 img=$3; shift 3
/usr/bin/time -f '%U %S\n%M' -o "$mark.time" "$@"
rc=$?
date +%s.%N >"$mark.got"
if [ $rc -eq 0 ] && nice -n 19 cmp "$out" "$img" >"$mark.cmp" 2>&1; then echo 1 >"$mark.ok"; else echo 0 >"$mark.ok"; fi
date +%s.%N >"$mark.ver"
exit $rc
EOF
chmod +x "$d/client-wrap"
printf '#!/bin/sh\nexec zstd -3 -T1 -q -c\n' >"$d/zc"
printf '#!/bin/sh\nexec zstd -d -q -c\n' >"$d/zd"
chmod +x "$d/zc" "$d/zd"

# sender NAME CMD...: the sender in the server namespace, under /usr/bin/time
sender() { local n="$1"; shift; lab_bg "$n" srv /usr/bin/time -f '%U %S' -o "$LAB_LOGDIR/$n.cpu" "$@"; }

# max of numbers on stdin ("-" if none)
maxof() { awk 'NF { if (!n++ || $1 > m) m = $1 } END { if (n) print m; else print "-" }'; }
sub() { if [[ $1 == - || $2 == - ]]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; fi; }

# Scenario settings: N LOSS RATE (per client link) SLOW (client 8's link) BOTTLENECK MIB
# KIND (random | ext4) FLOOR_RATE (bits/s) CAP (udpcast --max-bitrate) TOOLS TIMEOUT (per run)
scenario() {
    N=8 LOSS=0 RATE="" SLOW="" BOTTLENECK="" MIB=256 KIND=random FLOOR_RATE=0 CAP=1000m TIMEOUT=60
    TOOLS="bb udpcast udpcast-cap uftp uftp-tfmcc"
    case "$1" in
        8u-0) TOOLS+=" blast blast-write blast-verify" ;;
        8u-1) LOSS=1; TOOLS+=" blast blast-write blast-verify" ;;
        2x1g) N=2 RATE=1gbit MIB=128 FLOOR_RATE=1000000000 CAP=950m ;;
        8x100m) LOSS=1 RATE=100mbit MIB=64 FLOOR_RATE=100000000 CAP=95m TIMEOUT=90 ;;
        48x20m) N=48 LOSS=1 RATE=20mbit MIB=16 FLOOR_RATE=20000000 CAP=19m TIMEOUT=120 ;;
        8u-1slow) LOSS=1 SLOW=50mbit MIB=64 FLOOR_RATE=50000000 CAP=47m TIMEOUT=90 ;;
        7u-1) N=7 LOSS=1 MIB=64 ;;
        2x300m-tcp) N=2 BOTTLENECK=300mbit MIB=64 FLOOR_RATE=300000000 CAP=150m TIMEOUT=90
            TOOLS="bb bb-fair tcp udpcast udpcast-cap uftp uftp-tfmcc" ;;
        ext4) N=4 LOSS=1 MIB=1024 KIND=ext4 TOOLS="bb udpcast-zstd" TIMEOUT=180 ;;
    esac
    TIMEOUT=$(awk -v t="$TIMEOUT" -v s="$SCALE" 'BEGIN { printf "%d", t * s }')
}

outdir="$d/out"
# The clients' outputs live in RAM (no disk writeback in the timings): room for the largest
# scenario's N full copies (udpcast writes zero blocks too).
tmpfs_mib=0
for s in $SCENARIOS; do
    scenario "$s"
    (( N * MIB + 256 > tmpfs_mib )) && tmpfs_mib=$((N * MIB + 256))
done
lab_mount_tmpfs "$outdir" "$tmpfs_mib" || die "cannot mount a tmpfs of $tmpfs_mib MiB for the clients' outputs"

# image_for KIND MIB: path of the scenario's image (built once per kind and size)
declare -A IMAGES
image_for() {
    local key="$1-$2" f
    if [[ -z "${IMAGES[$key]:-}" ]]; then
        f="$d/$key.img"
        if [[ $1 == ext4 ]]; then
            say "building an ext4 image of $2 MiB with about $(($2 / 4)) MiB of files from /usr"
            img_ext4 "$f" "$2" "$(($2 / 4))" >/dev/null
        else
            img_random "$f" "$2"
        fi
        IMAGES[$key]="$f"
    fi
    echo "${IMAGES[$key]}"
}

# The TCP flow of the bottleneck scenario: iperf3 from the server to client 1, started
# 2 s before the sender and stopped after the run; Mbit/s over the intervals that lie in
# [FROM, TO] (epoch seconds) and over the 2 s before FROM (alone).
tcp_start() {
    lab_bg "$1.iperfd" c1 iperf3 -s -1
    sleep 0.3
    lab_bg "$1.iperf" srv iperf3 -c 10.99.0.11 -t 600 -i 0.2 --forceflush -C "$TCP_CC"
    sleep 2
}
# The congestion control the TCP flow runs: competing with BBR (which paces by the least
# round trip it saw) and with CUBIC (which fills the queue until it drops) differ.
TCP_CC="${BENCH_TCP_CC:-$(sysctl -n net.ipv4.tcp_congestion_control)}"
tcp_stop() {
    lab_kill "$1.iperf" INT
    lab_wait "$1.iperf" 5 >/dev/null 2>&1 || true
    lab_wait "$1.iperfd" 5 >/dev/null 2>&1 || true
}
# The TCP flow's bytes leave through the server's eth0 too: an nft counter on its egress
# lets tx/img count the tool's traffic only.
tcp_counter_install() {
    ip netns exec "$(lab_ns srv)" nft -f - <<'EOF'
table netdev bench_tcp {
    chain egress {
        type filter hook egress device "eth0" priority 0; policy accept;
        meta l4proto tcp counter
    }
}
EOF
}
tcp_tx_bytes() {
    ip netns exec "$(lab_ns srv)" nft list chain netdev bench_tcp egress \
        | awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "bytes") print $(i + 1) }'
}
tcp_mbit() { # NAME FROM TO
    awk -v s0="$(cat "$LAB_LOGDIR/$1.iperf.start")" -v from="$2" -v to="$3" '
        $1 == "[" && $3 ~ /^[0-9.]+-[0-9.]+$/ && $4 == "sec" && $NF != "sender" && $NF != "receiver" {
            split($3, t, "-"); mid = s0 + (t[1] + t[2]) / 2
            v = $7; u = $8
            if (u ~ /^Kbits/) v /= 1000; else if (u ~ /^Gbits/) v *= 1000; else if (u ~ /^bits/) v /= 1e6
            if (mid >= from && mid <= to) { a += v; na++ }
            if (mid < from && mid >= from - 2) { b += v; nb++ }
        }
        END { printf "%.0f %.0f\n", na ? a / na : 0, nb ? b / nb : 0 }' "$LAB_LOGDIR/$1.iperf.out"
}

# floor_of BYTES: seconds the slowest link (or the bottleneck) needs for them ("-": none)
floor_of() {
    if (( FLOOR_RATE > 0 )); then awk -v b="$1" -v r="$FLOOR_RATE" 'BEGIN { printf "%.3f", b * 8 / r }'; else echo -; fi
}
# mbit_of BYTES SECONDS: goodput in Mbit/s ("-" when the time is not known)
mbit_of() {
    awk -v b="$1" -v t="$2" 'BEGIN { if (t != "-" && t > 0) printf "%.0f", b * 8 / t / 1e6; else print "-" }'
}

# tcp_second_flow SCENARIO ROUND IMAGE: the reference for --fair: a second TCP flow (the same
# congestion control) carries the image's bytes to client 2 while the first one runs, as
# bb-fair does beside it; appends a row (last = the flow's time, Mbit/s = its goodput).
tcp_second_flow() {
    local scn="$1" round="$2" img="$3" name="$1.tcp.$2" isz t0 t1 secs during alone
    isz=$(stat -c %s "$img")
    rm -f "$LAB_LOGDIR/$name".*
    tcp_start "$name"
    say "$scn: tcp (a second $TCP_CC flow of $((isz >> 20)) MiB to c2, bound ${TIMEOUT}s)"
    lab_bg "$name.flow2d" c2 iperf3 -s -1 -p 5202
    sleep 0.3
    lab_bg "$name.flow2" srv iperf3 -c 10.99.0.12 -p 5202 -n "$isz" -C "$TCP_CC"
    local status=ok
    lab_wait "$name.flow2" "$TIMEOUT" >/dev/null 2>&1 || status="iperf3-exit-$(lab_rc "$name.flow2")"
    t0=$(cat "$LAB_LOGDIR/$name.flow2.start"); t1=$(lab_end "$name.flow2")
    tcp_stop "$name"
    lab_wait "$name.flow2d" 5 >/dev/null 2>&1 || true
    secs=$(sub "$t1" "$t0")
    read -r during alone < <(tcp_mbit "$name" "$t0" "$t1")
    local mbit floor; mbit=$(mbit_of "$isz" "$secs"); floor=$(floor_of "$isz")
    echo "$scn,tcp,$round,$status,-,$secs,$floor,-,-,-,-,$mbit,-,$during,TCP ($TCP_CC) ${alone} Mbit/s alone before; a second $TCP_CC flow of the image's bytes to c2" >>"$CSV"
    say "$scn: tcp (run $round/$RUNS): $status, ${secs} s, $mbit Mbit/s; the first flow ${during} Mbit/s during (${alone} alone)"
}

# ---- one run ----------------------------------------------------------------------------

# run SCENARIO TOOL ROUND IMAGE: one tool's transfer; appends a row to $CSV
run() {
    local scn="$1" tool="$2" round="$3" img="$4" name="$1.$2.$3" k isz names=() marks=() note="" status=ok
    isz=$(stat -c %s "$img")
    rm -rf "${outdir:?}"/* 2>/dev/null || true
    # Every tool's receivers write into memory that was written just before: memory a
    # virtual machine touches for the first time costs several times more to write (2.4
    # against 5.8-7.8 GB/s here), and the tool that ran first in a fresh lab paid for it.
    dd if=/dev/zero of="$outdir/warm" bs=1M count=$(( N * ((isz + (1 << 20) - 1) >> 20) )) status=none 2>/dev/null || true
    rm -f "$outdir/warm"
    sync
    for ((k = 1; k <= N; k++)); do mkdir -p "$outdir/c$k"; marks+=("$LAB_LOGDIR/$name.c$k"); done
    rm -f "$LAB_LOGDIR/$name".*
    local tcp=0; [[ -n "$BOTTLENECK" ]] && tcp=1
    (( tcp )) && tcp_start "$name"
    local tx0 tcp0=0; tx0=$("$NETLAB" txbytes)
    (( tcp )) && tcp0=$(tcp_tx_bytes)
    say "$scn: $tool, run $round/$RUNS ($N clients, $((isz >> 20)) MiB, bound ${TIMEOUT}s)"

    case "$tool" in
    bb|bb-fair)
        local extra=(); [[ $tool == bb-fair ]] && extra=(--fair)
        for ((k = 1; k <= N; k++)); do
            lab_bg "$name.c$k" "c$k" "$d/client-wrap" "${marks[k-1]}" "$outdir/c$k/img" "$img" \
                "$BB_CLIENT" --timeout "$TIMEOUT" 10.99.0.1 "$outdir/c$k/img"
            names+=("$name.c$k")
        done
        # The same head start as every other tool's receivers: the clock starts with the
        # sender, and each tool's receivers are up and waiting by then.
        sleep 0.5
        sender "$name" "$BB_SERVER" --timeout "$TIMEOUT" --clients "$N" "${extra[@]}" 10.99.0.255 "$img"
        ;;
    udpcast|udpcast-cap|udpcast-zstd)
        local sargs=(--retries-until-drop 2000) rargs=()
        [[ $tool == udpcast-cap ]] && sargs+=(--max-bitrate "$CAP")
        [[ $tool == udpcast-zstd ]] && { sargs+=(--pipe "$d/zc"); rargs=(--pipe "$d/zd"); }
        # udpcast's connection handshake has no retry: a receiver whose "connected" reply is
        # lost waits forever. So the loss starts once every receiver is connected.
        for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" 0 >/dev/null; done
        for ((k = 1; k <= N; k++)); do
            lab_bg "$name.c$k" "c$k" "$d/client-wrap" "${marks[k-1]}" "$outdir/c$k/img" "$img" \
                udp-receiver --interface eth0 --nokbd --no-progress --file "$outdir/c$k/img" "${rargs[@]}"
            names+=("$name.c$k")
        done
        sleep 0.5
        sender "$name" udp-sender --interface eth0 --nokbd --no-progress --file "$img" \
            --min-receivers "$N" --max-wait 30 "${sargs[@]}"
        local deadline=$((SECONDS + 30))
        while (( SECONDS < deadline )) && (( $(cat "$LAB_LOGDIR/$name".c*.err 2>/dev/null | grep -c '^Connected as') < N )); do
            sleep 0.01
        done
        for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" "$LOSS" >/dev/null; done
        ;;
    uftp|uftp-tfmcc)
        local ids=() rate=(-R -1) base; base=$(basename "$img")
        [[ $tool == uftp-tfmcc ]] && rate=(-C tfmcc)
        for ((k = 1; k <= N; k++)); do
            local uid; uid=$(printf '0x0A6300%02X' $((10 + k)))
            ids+=("$uid")
            # Post-receive script: the same bookkeeping as client-wrap, minus the RSS.
            cat >"$d/post-c$k" <<EOF
#!/bin/sh
date +%s.%N >"${marks[k-1]}.got"
if nice -n 19 cmp -s "$outdir/c$k/$base" "$img"; then echo 1 >"${marks[k-1]}.ok"; else echo 0 >"${marks[k-1]}.ok"; fi
date +%s.%N >"${marks[k-1]}.ver"
EOF
            chmod +x "$d/post-c$k"
            lab_bg "$name.c$k" "c$k" /usr/bin/time -f '%U %S\n%M' -o "${marks[k-1]}.time" \
                uftpd -d -I eth0 -U "$uid" -D "$outdir/c$k" -s "$d/post-c$k" -q
            names+=("$name.c$k")
        done
        sleep 0.5
        sender "$name" uftp -I eth0 -H "$(IFS=,; echo "${ids[*]}")" "${rate[@]}" "$img"
        ;;
    blast|blast-write|blast-verify)
        for ((k = 1; k <= N; k++)); do
            local write=()
            [[ $tool == blast-write || $tool == blast-verify ]] && write=(--write "$outdir/c$k/img")
            [[ $tool == blast-verify ]] && write+=(--verify)
            [[ ${BENCH_GRO:-0} == 1 ]] && write+=(--gro)
            lab_bg "$name.c$k" "c$k" /usr/bin/time -f '%U %S\n%M' -o "${marks[k-1]}.time" \
                "$BLAST" recv 7900 --wait "$TIMEOUT" "${write[@]}"
            names+=("$name.c$k")
        done
        sleep 0.3
        sender "$name" "$BLAST" send 10.99.0.255:7900 "$isz"
        ;;
    esac

    # Bounded waits: the sender, then its clients in what is left of the bound.
    local t_start; t_start=$(cat "$LAB_LOGDIR/$name.start")
    lab_wait "$name" "$TIMEOUT" >/dev/null 2>&1 || {
        local rc; rc=$(lab_rc "$name")
        if [[ $rc == 124 || -z $rc ]]; then status=timeout; else status="sender-exit-$rc"; fi
    }
    local n
    if [[ $tool == uftp* ]]; then
        # uftpd never exits by itself: wait for every post-receive script (bounded), then stop it.
        local dl=$(( $(date +%s) + 15 ))
        while (( $(date +%s) < dl )); do
            local got=0; for m in "${marks[@]}"; do [[ -f $m.ver ]] && got=$((got + 1)); done
            (( got == N )) && break
            sleep 0.05
        done
        for n in "${names[@]}"; do
            local tpid; tpid=$(lab_pid "$n")
            [[ -n $tpid ]] && pkill -TERM -P "$tpid" 2>/dev/null || true
        done
        for n in "${names[@]}"; do lab_wait "$n" 5 >/dev/null 2>&1 || true; done
    else
        for n in "${names[@]}"; do lab_wait "$n" 30 >/dev/null 2>&1 || true; done
    fi
    local tx=$(( $("$NETLAB" txbytes) - tx0 ))
    (( tcp )) && tx=$(( tx - ($(tcp_tx_bytes) - tcp0) ))
    local t_end; t_end=$(date +%s.%N)
    (( tcp )) && tcp_stop "$name"

    # Collect. Any figure missing (a tool that failed) becomes "-", never an abort.
    set +e +o pipefail
    local okn=0 last ver rss cpu ccpu
    for m in "${marks[@]}"; do [[ $(cat "$m.ok" 2>/dev/null) == 1 ]] && okn=$((okn + 1)); done
    last=$(for m in "${marks[@]}"; do cat "$m.got" 2>/dev/null || true; done | maxof)
    ver=$(for m in "${marks[@]}"; do cat "$m.ver" 2>/dev/null || true; done | maxof)
    rss=$(for m in "${marks[@]}"; do tail -n 1 "$m.time" 2>/dev/null || true; done | { grep -E "^[0-9]+$" || true; } | maxof)
    [[ $rss != - ]] && rss=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
    cpu=$(tail -n 1 "$LAB_LOGDIR/$name.cpu" 2>/dev/null | awk 'NF == 2 { printf "%.2f", $1 + $2 }')
    [[ -z $cpu ]] && cpu=-
    # The receivers' user + system seconds, all together: on the lab's shared cores what they
    # spend is taken from the sender.
    ccpu=$(for m in "${marks[@]}"; do grep -hE '^[0-9.]+ [0-9.]+$' "$m.time" 2>/dev/null || true; done |
        awk 'NF == 2 { s += $1 + $2; n++ } END { if (n) printf "%.2f", s; else print "-" }')
    last=$(sub "$last" "$t_start"); ver=$(sub "$ver" "$t_start")
    if [[ $tool == blast* ]]; then
        # No repair: nobody gets the whole image. Time = the sender's; goodput per client.
        last=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) { sub(/seconds=/, "", $i); print $i } }' \
            "$LAB_LOGDIR/$name.out" 2>/dev/null); last=${last:--}
        ver=-
        note=$(cat "$LAB_LOGDIR/$name".c*.out 2>/dev/null | awk '{
                for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                g = v["goodput_mbit"]; n++; sum += g; if (n == 1 || g < min) min = g
                lost += v["lost"]; runs += v["runs"]; br += v["batch_runs"]; lp += v["loss_pct"] }
            END { if (n) printf "goodput/client %.0f Mbit/s (min %.0f); loss %.2f%%; mean loss run %.2f datagrams, %d runs >= 32",
                  sum / n, min, lp / n, runs ? lost / runs : 0, br }')
        local got; got=$(grep -c '^received=' "$LAB_LOGDIR/$name".c*.out 2>/dev/null | awk -F: '{ s += $2 } END { print s + 0 }')
        if [[ $status == ok && $got -lt $N ]]; then status="$got/$N receivers"; fi
    elif [[ $status == ok && $okn -lt $N ]]; then
        status="FAIL $okn/$N ok"
    elif [[ $status != ok ]]; then
        status="$status ($okn/$N ok)"
    fi
    if [[ $tool != blast* && $okn -lt $N ]]; then
        # Say why, briefly: the first failed client's comparison or last words, else the sender's.
        local why="" m k2
        for ((k2 = 1; k2 <= N; k2++)); do
            m=${marks[k2-1]}
            [[ $(cat "$m.ok" 2>/dev/null) == 1 ]] && continue
            why="c$k2 exit $(lab_rc "$name.c$k2"): $(head -c 120 "$m.cmp" 2>/dev/null | head -n 1)"
            [[ -s $m.cmp ]] || why+="$(lab_tail "$name.c$k2" 1 | cut -c1-80)"
            break
        done
        note="${why:-$(lab_tail "$name" 1 | cut -c1-80)}"
    fi
    local fast=- during=-
    if [[ -n $SLOW && $tool != blast* ]]; then
        local slow
        fast=$(for ((k = 1; k < N; k++)); do cat "${marks[k-1]}.got" 2>/dev/null || true; done | maxof)
        fast=$(sub "$fast" "$t_start")
        slow=$(cat "${marks[N-1]}.got" 2>/dev/null || echo -)
        [[ $(sub "$slow" "$t_start") == "$last" ]] || note="the slow client ended at $(sub "$slow" "$t_start") s${note:+; $note}"
    fi
    if (( tcp )); then
        local lastabs alone; lastabs=$(awk -v a="$t_start" -v l="$last" 'BEGIN { if (l == "-") print 0; else printf "%.3f", a + l }')
        [[ $lastabs == 0 ]] && lastabs=$t_end
        read -r during alone < <(tcp_mbit "$name" "$t_start" "$lastabs")
        note="TCP ($TCP_CC) ${alone} Mbit/s alone before${note:+; $note}"
    fi
    local floor; floor=$(floor_of "$isz")
    local ratio_; ratio_=$(ratio "$tx" "$isz")
    local mbit; mbit=$(mbit_of "$isz" "$last")
    local label="$tool"
    [[ $tool == udpcast-cap ]] && label="udpcast-cap $CAP"
    note=${note//,/;}
    echo "$scn,$label,$round,$status,$ver,$last,$floor,$ratio_,$cpu,$ccpu,$rss,$mbit,$fast,$during,$note" >>"$CSV"
    local figures=""
    [[ $fast != - ]] && figures+=", fast 7 last $fast s"
    [[ $during != - ]] && figures+=", TCP $during Mbit/s during"
    say "$scn: $label (run $round/$RUNS): $status, verified $ver s, last $last s, tx/img $ratio_$figures${note:+, $note}"
    rm -rf "${outdir:?}"/* 2>/dev/null
    set -e -o pipefail
}

# ---- the race -----------------------------------------------------------------------------

for scn in $SCENARIOS; do
    scenario "$scn"
    if [[ ${BENCH_GRO:-0} == 1 ]] && [[ $LOSS != 0 ]]; then
        say "$scn: skipped with BENCH_GRO=1: its ${LOSS}% loss would drop coalesced batches (the lab's loss rule sits after GRO)"
        continue
    fi
    img=$(image_for "$KIND" "$MIB")
    up=("$N" --loss "$LOSS")
    [[ ${BENCH_GRO:-0} == 1 ]] && up+=(--gro)
    [[ -n $RATE ]] && up+=(--rate "$RATE")
    [[ -n $BOTTLENECK ]] && up+=(--bottleneck "$BOTTLENECK")
    lab_up "${up[@]}"
    [[ -n $SLOW ]] && "$NETLAB" rate "$N" "$SLOW"
    [[ -n $BOTTLENECK ]] && tcp_counter_install
    for ((round = 1; round <= RUNS; round++)); do
        for tool in $TOOLS; do
            [[ -z ${BENCH_TOOLS:-} || " $BENCH_TOOLS " == *" $tool "* ]] || continue
            if [[ $tool == bb-fair ]] && (( ! HAVE_FAIR )); then
                (( round == 1 )) || continue
                echo "$scn,bb-fair,1,skipped,-,-,-,-,-,-,-,-,-,-,bb-server has no --fair in this build" >>"$CSV"
                say "$scn: bb-fair skipped: bb-server has no --fair in this build"
                continue
            fi
            if [[ $tool == tcp ]]; then tcp_second_flow "$scn" "$round" "$img"; else run "$scn" "$tool" "$round" "$img"; fi
        done
    done
    lab_down
done

# ---- report -------------------------------------------------------------------------------
# The binary is named by its digest as well as the tree's commit: with BENCH_NO_BUILD or
# BB_SERVER it need not be the commit's build (a variant left in target/, or the
# feature-unified bb-server that `cargo test --workspace --release` leaves there).
python3 "$HERE/bench-peers-report.py" "$CSV" "$OUT" \
    "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r), $(git -C "$LAB_REPO" describe --always --dirty 2>/dev/null || echo '?'), bb-server md5 $(md5sum <"$BB_SERVER" | cut -c1-8)$([[ ${BENCH_GRO:-0} == 1 ]] && echo ', client links with GRO (BENCH_GRO=1)')"
