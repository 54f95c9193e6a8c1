#!/usr/bin/env bash
# bench-images.sh: issue 8's image benchmark, all in one lab run (root).
#   1. an ext4 image: a 2 GiB file, mkfs.ext4, about 520 MiB of files from /usr; 4 clients at
#      1 % loss: bb-server (default compression) vs udpcast with `zstd -3` pipes on both ends
#      (udp-sender --pipe / udp-receiver --pipe, as Clonezilla-style tools ship images).
#      Targets: bb tx bytes <= 1.15 x `zstd -3` of the image; bb time <= 0.5 x udpcast's.
#   2. a 2 GiB sparse file holding 64 MiB of random data in 64 extents: tx <= 1.1 x 64 MiB.
#   3. a random (incompressible) image, bb default vs --compress off: time ratio <= 1.05.
# Time = from the server's start until the last client ended (bb clients end after verifying
# the digest); every output is then compared with the image (cmp). Prints one summary table.
#
# env: BENCH_CLIENTS (4), BENCH_LOSS (1), BENCH_RATE (bb-server --rate; default: the server's
#      own default), BENCH_EXT4_MIB (2048), BENCH_FILES_MIB (520), BENCH_SPARSE_MIB (2048),
#      BENCH_SPARSE_DATA_MIB (64), BENCH_RANDOM_MIB (512), BENCH_UDPCAST_ARGS (extra
#      udp-sender arguments), BENCH_PHASES (default "ext4-bb ext4-udpcast sparse random":
#      the runs to do; rows of runs not done show "-"), BB_SERVER / BB_CLIENT, LAB (bimg)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export LAB="${LAB:-bimg}"
. "$HERE/lib.sh"
. "$HERE/images.sh"

N="${BENCH_CLIENTS:-4}"
LOSS="${BENCH_LOSS:-1}"
EXT4_MIB="${BENCH_EXT4_MIB:-2048}"
FILES_MIB="${BENCH_FILES_MIB:-520}"
SPARSE_MIB="${BENCH_SPARSE_MIB:-2048}"
SPARSE_DATA_MIB="${BENCH_SPARSE_DATA_MIB:-64}"
RANDOM_MIB="${BENCH_RANDOM_MIB:-512}"
PHASES="${BENCH_PHASES:-ext4-bb ext4-udpcast sparse random}"
RATE_ARGS=()
[[ -n "${BENCH_RATE:-}" ]] && RATE_ARGS=(--rate "$BENCH_RATE")
# udp-sender drops a receiver after this many unanswered retries (its default, 200, drops
# receivers at 1 % loss at the start of a transfer).
read -r -a UDPCAST_ARGS <<<"${BENCH_UDPCAST_ARGS:---retries-until-drop 2000}"
BB_SERVER_TIMEOUT=600
BB_CLIENT_TIMEOUT=60

lab_require_root
lab_require_bins
for t in udp-sender udp-receiver zstd mkfs.ext4; do
    command -v "$t" >/dev/null || { echo "bench-images: $t not found (make deps)" >&2; exit 1; }
done
v2=0; bb_is_v2 && v2=1
say() { echo "==> $*" >&2; }

d=$(lab_tmpdir)
say "building the images in $d"
img="$d/ext4.img"
files=$(img_ext4 "$img" "$EXT4_MIB" "$FILES_MIB")
isz=$(stat -c %s "$img")
nonzero=$(img_nonzero_bytes "$img")
zst=$(img_zstd_bytes "$img")
say "ext4: $isz bytes, $files bytes of files, $(ratio $((isz - nonzero)) "$isz") of its 720 KiB blocks zero, zstd -3: $zst bytes"
sparse="$d/sparse.img"
img_sparse "$sparse" "$SPARSE_MIB" "$SPARSE_DATA_MIB" 64
rnd="$d/random.img"
img_random "$rnd" "$RANDOM_MIB"

lab_up "$N" --loss "$LOSS"
declare -A TX SECS OK

# verify NAME IMAGE OUTPUT...: cmp every output with the image (2 at a time), then delete them
verify() {
    local name="$1" image="$2"; shift 2
    if printf '%s\n' "$@" | xargs -P 2 -I{} sh -c 'test "$(stat -c %s "{}")" = "$1" && cmp -s "{}" "$0"' "$image" "$(stat -c %s "$image")"; then
        OK[$name]=yes
    else
        OK[$name]=NO
    fi
    rm -f "$@"
}

# run_bb NAME IMAGE [server args...]
run_bb() {
    local name="$1" image="$2" k outs=() names=(); shift 2
    sync # no writeback of earlier runs' outputs during this one
    say "$name: bb-server ${*} -> $N clients at $LOSS% loss"
    for ((k = 1; k <= N; k++)); do
        bb_client "$name.c$k" "$k" 10.99.0.1 "$d/$name.c$k"
        outs+=("$d/$name.c$k"); names+=("$name.c$k")
    done
    local tx0; tx0=$("$NETLAB" txbytes)
    bb_server "$name" "${RATE_ARGS[@]}" --clients "$N" --summary-json "$d/$name.json" "$@" 10.99.0.255 "$image"
    lab_wait "$name" 900 || say "$name: bb-server $(bb_why "$name")"
    for n in "${names[@]}"; do lab_wait "$n" 60 || true; done
    TX[$name]=$(( $("$NETLAB" txbytes) - tx0 ))
    SECS[$name]=$(bb_span "$name" "${names[@]}")
    for n in "${names[@]}"; do [[ $(lab_rc "$n") == 0 ]] || say "$name: $n exit $(lab_rc "$n") ($(lab_tail "$n" 1))"; done
    verify "$name" "$image" "${outs[@]}"
}

# run_udpcast NAME IMAGE: udp-sender/udp-receiver, each end through a zstd pipe
run_udpcast() {
    local name="$1" image="$2" k outs=() names=()
    sync # no writeback of earlier runs' outputs during this one
    printf '#!/bin/sh\nexec zstd -3 -T1 -q -c\n' >"$d/zc"
    printf '#!/bin/sh\nexec zstd -d -q -c\n' >"$d/zd"
    chmod +x "$d/zc" "$d/zd"
    say "$name: udp-sender --pipe 'zstd -3' -> $N udp-receivers --pipe 'zstd -d' at $LOSS% loss"
    # udpcast's connection handshake has no retry: a receiver whose "connected" reply is lost
    # waits forever while the sender counts it in. So the loss starts once every receiver is
    # connected (a head start for the baseline, never a handicap).
    for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" 0 >/dev/null; done
    for ((k = 1; k <= N; k++)); do
        lab_bg "$name.c$k" "c$k" udp-receiver --interface eth0 --nokbd --no-progress \
            --file "$d/$name.c$k" --pipe "$d/zd"
        outs+=("$d/$name.c$k"); names+=("$name.c$k")
    done
    sleep 0.5
    local tx0; tx0=$("$NETLAB" txbytes)
    lab_bg "$name" srv udp-sender --interface eth0 --nokbd --no-progress --file "$image" --pipe "$d/zc" \
        --min-receivers "$N" --max-wait 30 "${UDPCAST_ARGS[@]}"
    local deadline=$((SECONDS + 20))
    while (( SECONDS < deadline )) && (( $(cat "$LAB_LOGDIR/$name".c*.err 2>/dev/null | grep -c '^Connected as') < N )); do
        sleep 0.01
    done
    for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" "$LOSS" >/dev/null; done
    lab_wait "$name" 900 || say "$name: udp-sender exit $(lab_rc "$name") ($(lab_tail "$name" 2))"
    for n in "${names[@]}"; do lab_wait "$n" 60 || true; done
    TX[$name]=$(( $("$NETLAB" txbytes) - tx0 ))
    SECS[$name]=$(bb_span "$name" "${names[@]}")
    verify "$name" "$image" "${outs[@]}"
}

phase() { [[ " $PHASES " == *" $1 "* ]]; }
phase ext4-bb && run_bb ext4-bb "$img"
phase ext4-udpcast && run_udpcast ext4-udpcast "$img"
phase sparse && run_bb sparse-bb "$sparse"
phase random && run_bb random-bb "$rnd"
phase random && (( v2 )) && run_bb random-off "$rnd" --compress off

data=$((SPARSE_DATA_MIB << 20))
rsz=$(stat -c %s "$rnd")
for n in ext4-bb ext4-udpcast sparse-bb random-bb random-off; do
    TX[$n]=${TX[$n]:--}; SECS[$n]=${SECS[$n]:--}; OK[$n]=${OK[$n]:--}
done
# q A B: A / B, or "-" when a run was not done
q() { if [[ $1 == - || $2 == - ]]; then echo -; else ratio "$1" "$2"; fi; }
verdict() { if [[ $1 == - ]]; then echo "-"; elif le "$1" "$2"; then echo "meets"; else echo "MISSES"; fi; }
row() { printf '%-30s %12s %7s %-8s %8s %7s %-9s %-6s %s\n' "$@"; }
e_ratio=$(q "${TX[ext4-bb]}" "$zst")
e_time=$(q "${SECS[ext4-bb]}" "${SECS[ext4-udpcast]}")
s_ratio=$(q "${TX[sparse-bb]}" "$data")
r_time=$(q "${SECS[random-bb]}" "${SECS[random-off]}")
echo
echo "bench-images: $N clients, $LOSS% loss each, bb-server ${RATE_ARGS[*]:-(default rate)}, protocol $( ((v2)) && echo v2 || echo 'v1 (predates issue 8)')"
echo "ext4: $((isz >> 20)) MiB file, $((files >> 20)) MiB of files, $(ratio $((isz - nonzero)) "$isz") of its 720 KiB blocks zero, zstd -3 of the image: $zst bytes"
row case "tx bytes" "tx" "x of" "time s" "time" "x of" exact "target"
row "ext4, bb-server" "${TX[ext4-bb]}" "$e_ratio" zstd-3 "${SECS[ext4-bb]}" "$e_time" udpcast "${OK[ext4-bb]}" \
    "tx<=1.15: $(verdict "$e_ratio" 1.15), time<=0.5: $(verdict "$e_time" 0.5)"
row "ext4, udpcast + zstd -3 pipes" "${TX[ext4-udpcast]}" "$(q "${TX[ext4-udpcast]}" "$zst")" zstd-3 \
    "${SECS[ext4-udpcast]}" "" "" "${OK[ext4-udpcast]}" "(baseline)"
row "sparse ${SPARSE_MIB}M/${SPARSE_DATA_MIB}M, bb" "${TX[sparse-bb]}" "$s_ratio" data "${SECS[sparse-bb]}" "" "" \
    "${OK[sparse-bb]}" "tx<=1.1: $(verdict "$s_ratio" 1.1)"
row "random ${RANDOM_MIB}M, bb default" "${TX[random-bb]}" "$(q "${TX[random-bb]}" "$rsz")" image \
    "${SECS[random-bb]}" "$r_time" "off" "${OK[random-bb]}" \
    "time<=1.05: $(verdict "$r_time" 1.05)$( ((v2)) || echo ' (no --compress off in this build)')"
row "random ${RANDOM_MIB}M, --compress off" "${TX[random-off]}" "$(q "${TX[random-off]}" "$rsz")" image \
    "${SECS[random-off]}" "" "" "${OK[random-off]}" "(baseline)"
for n in "${!OK[@]}"; do [[ ${OK[$n]} != NO ]] || exit 1; done
