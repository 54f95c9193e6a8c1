#!/usr/bin/env bash
# bench-key.sh: what the pre-shared key costs (issue 9). One lab run, one client, no
# shaping and no loss: the same random image sent alternately without and with a key
# (--key-file on both ends), BENCH_ROUNDS times each. Prints each run's MB/s (the client's
# own figure: image bytes / time from binding to verified) and the CPU seconds (user+sys)
# the client and the server used, the median of each mode, and the ratio keyed / keyless
# (target: at least 0.9). On a machine whose cores are busy with other work the figures
# follow the CPU share the two processes get, so the CPU seconds say more than MB/s. The runs alternate, so a neighbour's
# load disturbs both modes alike; compare figures only within one run of this script.
#
# env: BENCH_MIB (image size, 256), BENCH_ROUNDS (3), BENCH_RATE (bb-server --rate, 10G:
#      above what the veth pair carries, so the client is the limit), BB_SERVER / BB_CLIENT,
#      LAB (bkey)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export LAB="${LAB:-bkey}"
. "$HERE/lib.sh"

MIB="${BENCH_MIB:-256}"
ROUNDS="${BENCH_ROUNDS:-3}"
RATE="${BENCH_RATE:-10G}"
BB_CLIENT_TIMEOUT=60
BB_SERVER_TIMEOUT=300

lab_require_root
lab_require_bins
lab_up 1
d=$(lab_tmpdir)
lab_make_image "$d/image" "$MIB"
"$BB_SERVER" --gen-key "$d/bench.key" 2>/dev/null || lab_fail "bb-server --gen-key failed"

# timed CMD...: runs CMD and prints "cpu USER+SYS" (seconds) on stderr at its end.
timed=(bash -c 'TIMEFORMAT="cpu %U %S"; time "$@"' timed)
# cpu NAME: the user+sys seconds of a timed job
cpu() { awk '/^cpu / { printf "%.2f", $2 + $3 }' "$LAB_LOGDIR/$1.err"; }

# run MODE I: one transfer; prints "MB/s client-cpu server-cpu"
run() {
    local mode="$1" i="$2" key=()
    [[ "$mode" == keyed ]] && key=(--key-file "$d/bench.key")
    rm -f "$d/out.img"
    lab_bg "c-$mode-$i" c1 "${timed[@]}" "$BB_CLIENT" --timeout "$BB_CLIENT_TIMEOUT" -q "${key[@]}" 10.99.0.1 "$d/out.img"
    lab_bg "s-$mode-$i" srv "${timed[@]}" "$BB_SERVER" --timeout "$BB_SERVER_TIMEOUT" -q "${key[@]}" \
        --rate "$RATE" --clients 1 10.99.0.255 "$d/image"
    lab_wait "s-$mode-$i" 200 || lab_fail "$mode run $i: bb-server $(bb_why "s-$mode-$i")"
    lab_wait "c-$mode-$i" 60 || lab_fail "$mode run $i: bb-client $(lab_tail "c-$mode-$i" 2)"
    bb_cmp "$d/out.img" "$d/image" || lab_fail "$mode run $i: output differs from the image"
    echo "$(sed -n 's/.*bb-client: OK .* (\([0-9.]*\) MB\/s).*/\1/p' "$LAB_LOGDIR/c-$mode-$i.err" | tail -n 1)" \
        "$(cpu "c-$mode-$i")" "$(cpu "s-$mode-$i")"
}

plain=(); keyed=(); pcpu=(); kcpu=()
for ((i = 1; i <= ROUNDS; i++)); do
    read -r p pc ps < <(run keyless "$i")
    read -r k kc ks < <(run keyed "$i")
    [[ -n "$p" && -n "$k" ]] || lab_fail "round $i: no MB/s figure in the client's output"
    echo "round $i: keyless $p MB/s (cpu client ${pc}s server ${ps}s), keyed $k MB/s (cpu client ${kc}s server ${ks}s)"
    plain+=("$p"); keyed+=("$k"); pcpu+=("$pc"); kcpu+=("$kc")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mp=$(median "${plain[@]}"); mk=$(median "${keyed[@]}")
cp=$(median "${pcpu[@]}"); ck=$(median "${kcpu[@]}")
awk -v p="$cp" -v k="$ck" -v mib="$MIB" 'BEGIN {
    printf "client CPU per run (medians): keyless %.2f s, keyed %.2f s: the key costs the client %.1f ns per image byte\n", p, k, (k - p) * 1e9 / (mib * 1048576) }'
awk -v p="$mp" -v k="$mk" -v n="$ROUNDS" -v mib="$MIB" 'BEGIN {
    printf "1 client, unshaped, %d MiB image, %d rounds: keyless %.1f MB/s, keyed %.1f MB/s (medians), ratio keyed/keyless %.3f\n", mib, n, p, k, k / p }'
