#!/usr/bin/env bash
# make soak: one image of several GiB (random, zero and compressible parts) sent again and
# again for SOAK_MINUTES to SOAK_CLIENTS namespace clients, cycling through the loss
# settings; in each session one client, chosen at random, is killed at a random moment and
# started again (a late joiner). Every client's output is compared with the image after
# every session. The server's and the clients' resident memory is sampled every second;
# the end prints start/end/max per process kind and fails if the last session needed
# noticeably more than the first (memory not flat). Not part of `make test` or CI.
#
# env: SOAK_MINUTES (60), SOAK_IMAGE_MIB (3072), SOAK_CLIENTS (4), SOAK_LOSSES ("0 1 3 5",
#      percent), SOAK_RATE (300M), SOAK_SEED (random), SOAK_CLIENT_TIMEOUT (60: bb-client's
#      own default silence timeout, not the lab tests' shorter one), LAB (prefix, default sk),
#      BB_SERVER / BB_CLIENT (binaries; default: the release builds)
# Needs root, about SOAK_IMAGE_MIB x (SOAK_CLIENTS + 1) of free space in $TMPDIR (or /tmp).
set -euo pipefail
export LAB="${LAB:-sk}"
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_bins

MINUTES="${SOAK_MINUTES:-60}"
MIB="${SOAK_IMAGE_MIB:-3072}"
N="${SOAK_CLIENTS:-4}"
read -r -a LOSSES <<<"${SOAK_LOSSES:-0 1 3 5}"
RATE="${SOAK_RATE:-300M}"
BB_CLIENT_TIMEOUT="${SOAK_CLIENT_TIMEOUT:-60}"
SEED="${SOAK_SEED:-$RANDOM}"
RANDOM=$SEED
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 1 ]] || lab_fail "SOAK_MINUTES='$MINUTES': a whole number of minutes, at least 1"
[[ "$MIB" =~ ^[0-9]+$ && "$MIB" -ge 64 ]] || lab_fail "SOAK_IMAGE_MIB='$MIB': at least 64"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 2 && "$N" -le 16 ]] || lab_fail "SOAK_CLIENTS='$N': 2..16"

d=$(lab_tmpdir)
need_kib=$(( MIB * 1024 * (N + 1) + 1024 * 1024 ))
free_kib=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')
(( free_kib >= need_kib )) || lab_fail "needs $(( need_kib / 1024 / 1024 )) GiB free in $(dirname "$d"), has $(( free_kib / 1024 / 1024 )) GiB (set TMPDIR or a smaller SOAK_IMAGE_MIB)"

# The image: 64 MiB pieces, 4 in 10 random, 3 in 10 zero (holes), 3 in 10 text (zstd
# shrinks them).
img="$d/image"
lab_log "soak: making a $MIB MiB image"
: >"$img"
for ((i = 0; i < MIB / 64; i++)); do
    case $(( i % 10 )) in
        0|2|5|8) head -c $(( 64 << 20 )) /dev/urandom ;;
        # head ends base64 early (SIGPIPE): not a failure.
        1|4|7) (set +o pipefail; head -c $(( 48 << 20 )) /dev/urandom | base64 -w 120 | head -c $(( 64 << 20 ))) ;;
        *) truncate -s $(( (i + 1) * (64 << 20) )) "$img" ;;
    esac >>"$img"
done
truncate -s $(( MIB << 20 )) "$img"
isz=$(stat -c %s "$img")

lab_up "$N"

# Memory: every second, the resident set of each running server and client.
rss_log="$LAB_LOGDIR/rss.tsv"
: >"$rss_log"
sampler() {
    local t0; t0=$(date +%s)
    while :; do
        local f n pid kind rss
        for f in "$LAB_LOGDIR"/*.pid; do
            [[ -e "$f" ]] || continue
            n=$(basename "$f" .pid)
            [[ -e "$LAB_LOGDIR/$n.rc" ]] && continue
            pid=$(cat "$f" 2>/dev/null) || continue
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
            [[ -n "$rss" ]] || continue
            case "$n" in s*) kind=server ;; *) kind=client ;; esac
            echo "$(( $(date +%s) - t0 )) $SESSION_FILE_NO $kind $n $rss"
        done >>"$rss_log"
        # Read while the main loop may be rewriting it: only a whole number counts.
        local v; v=$(cat "$LAB_LOGDIR/.soak-session" 2>/dev/null || true)
        [[ "$v" =~ ^[0-9]+$ ]] && SESSION_FILE_NO=$v
        sleep 1
    done
}
SESSION_FILE_NO=0
echo 0 >"$LAB_LOGDIR/.soak-session"
sampler &
sampler_pid=$!

field() { sed -n "s/^  \"$1\": \([0-9.]*\),\$/\1/p" "$2"; }

sessions=0; failures=0; restarts=0; sent_total=0; delivered=0
end_at=$(( $(date +%s) + MINUTES * 60 ))
# Expected seconds per session at the rate (suffixes k, M, G as bb-server takes them).
est=$(awk -v s="$isz" -v r="$RATE" 'BEGIN {
    m = 1; u = substr(r, length(r)); if (u == "k") m = 1e3; else if (u == "M") m = 1e6; else if (u == "G") m = 1e9
    printf "%d", s * 8 / ((r + 0) * m) + 5 }')
printf 'session\tloss%%\trestarted\tkill_at_s\tserver_s\tsent/image\tverified\tresult\n' >"$LAB_LOGDIR/sessions.tsv"
lab_log "soak: $MINUTES min, image $MIB MiB, $N clients, losses ${LOSSES[*]}%, rate $RATE, seed $SEED; logs in $LAB_LOGDIR"
while (( $(date +%s) < end_at )); do
    s=$(( sessions + 1 ))
    echo "$s" >"$LAB_LOGDIR/.soak-session"
    loss=${LOSSES[$(( sessions % ${#LOSSES[@]} ))]}
    for ((k = 1; k <= N; k++)); do "$NETLAB" loss "$k" "$loss" >/dev/null; done
    victim=$(( RANDOM % N + 1 ))
    kill_at=$(awk -v e="$est" -v r="$RANDOM" 'BEGIN { printf "%.1f", e * (0.1 + 0.5 * r / 32768) }')
    for ((k = 1; k <= N; k++)); do bb_client "c$s-$k" "$k" 10.99.0.1 "$d/c$k.img"; done
    lab_bg "srv$s" srv "$BB_SERVER" --rate "$RATE" --clients "$N" --client-timeout 5 \
        --timeout $(( est * 4 + 60 )) --summary-json "$d/srv$s.json" 10.99.0.255 "$img"
    t0=$(date +%s.%N)
    restarted=no
    while lab_running "srv$s"; do
        if [[ $restarted == no ]] && awk -v t0="$t0" -v t="$(date +%s.%N)" -v k="$kill_at" 'BEGIN { exit !(t - t0 >= k) }'; then
            if lab_running "c$s-$victim"; then
                lab_kill "c$s-$victim" KILL
                lab_wait "c$s-$victim" 10 || true
                bb_client "c$s-${victim}r" "$victim" 10.99.0.1 "$d/c$victim.img"
                restarted=yes; restarts=$(( restarts + 1 ))
            else
                restarted=late   # it had finished already
            fi
        fi
        sleep 0.2
    done
    lab_wait "srv$s" 5 || true
    bad=()
    for ((k = 1; k <= N; k++)); do
        n="c$s-$k"; [[ $k == "$victim" && $restarted == yes ]] && n="c$s-${victim}r"
        lab_wait "$n" 60 || true
        if [[ "$(lab_rc "$n")" != 0 ]]; then
            bad+=("$n exit $(lab_rc "$n"): $(lab_tail "$n" 1)")
        elif ! bb_cmp "$d/c$k.img" "$img"; then
            bad+=("$n output differs from the image")
        fi
    done
    verified=$(field clients_verified "$d/srv$s.json" || echo 0)
    (( ${verified:-0} >= N )) || bad+=("server: ${verified:-0} of $N verified ($(bb_why "srv$s"))")
    sent=$(field bytes_sent "$d/srv$s.json" || echo 0)
    sent_total=$(( sent_total + ${sent:-0} ))
    delivered=$(( delivered + N * isz ))
    result=ok
    if (( ${#bad[@]} )); then
        result="FAILED: ${bad[*]}"
        failures=$(( failures + 1 ))
        printf '%s\n' "${bad[@]}" >&2
    fi
    sessions=$s
    printf '%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$loss" "$restarted" "$kill_at" \
        "$(lab_elapsed "srv$s")" "$(awk -v a="${sent:-0}" -v b="$isz" 'BEGIN { printf "%.3f", a / b }')" \
        "${verified:-0}" "$result" >>"$LAB_LOGDIR/sessions.tsv"
    lab_log "soak: session $s (loss $loss%, restarted $restarted) $result in $(lab_elapsed "srv$s") s"
done
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true

echo
column -t -s $'\t' "$LAB_LOGDIR/sessions.tsv"
echo
echo "soak: $sessions sessions in $MINUTES min, $failures failed, $restarts clients restarted mid-session"
awk -v s="$sent_total" -v dl="$delivered" 'BEGIN {
    printf "soak: server sent %.2f GiB; clients received and checked %.2f GiB\n", s / 2^30, dl / 2^30 }'
# Memory per kind: the first sample, the last, the largest; and the peak over the first
# cycle of loss settings against the peak over the last one (the flatness check: the same
# losses, so the same work, at the start and at the end).
awk -v last="$sessions" -v nl="${#LOSSES[@]}" '
    NF != 5 { next }
    { sess = $2; kind = $3; rss = $5
      if (sess < 1) next
      if (!(kind in first)) first[kind] = rss
      lastv[kind] = rss
      if (rss > max[kind]) max[kind] = rss
      cyc = int((sess - 1) / nl)
      if (cyc == 0 && rss > p1[kind]) p1[kind] = rss
      if (cyc == int((last - 1) / nl) && rss > pl[kind]) pl[kind] = rss }
    END {
      bad = 0
      for (k in first) {
        printf "soak: %-6s RSS start %6.1f MiB, end %6.1f MiB, max %6.1f MiB; peak in the first cycle of losses %6.1f MiB, in the last %6.1f MiB\n",
               k, first[k] / 1024, lastv[k] / 1024, max[k] / 1024, p1[k] / 1024, pl[k] / 1024
        if (pl[k] > p1[k] * 1.10 + 4096) { bad = 1; printf "soak: %s memory NOT flat\n", k }
      }
      exit bad
    }' "$rss_log" || lab_fail "memory grew between the first and the last cycle of losses (samples: $rss_log)"
(( failures == 0 )) || lab_fail "$failures of $sessions sessions failed (see $LAB_LOGDIR/sessions.tsv)"
(( sessions > 0 )) || lab_fail "no session ran"
echo "soak: OK"
