#!/usr/bin/env bash
# make demo: 8 machines (network namespaces) receive a 256 MiB image over a network where
# each one independently loses 1 % of the packets. Shows the server's progress live, then
# verifies every machine's copy against the image and prints a table.
#
# env: DEMO_CLIENTS (8), DEMO_MIB (256), DEMO_LOSS (1), DEMO_RATE (200M), DEMO_DEST
#      (10.99.0.255; a 239.x.y.z group for multicast), LAB (prefix, default "demo"),
#      DEMO_NO_BUILD=1 (use BB_SERVER/BB_CLIENT or the built binaries as they are)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export LAB="${LAB:-demo}"
. "$HERE/lib.sh"

N="${DEMO_CLIENTS:-8}"
MIB="${DEMO_MIB:-256}"
LOSS="${DEMO_LOSS:-1}"
RATE="${DEMO_RATE:-200M}"
DEST="${DEMO_DEST:-10.99.0.255}"

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; Z=$'\e[0m'; else B=; G=; R=; Z=; fi
step() { echo "${B}==> $*${Z}"; }

lab_require_root

step "dependencies"
"$REPO/scripts/install-deps.sh"

if [[ -z "${DEMO_NO_BUILD:-}" ]]; then
    step "building bb-server and bb-client (release)"
    # The server, and the static heap-free musl client that machines really run (build/bb-client).
    (cd "$REPO" && cargo build --release -p bb-server && make -s client)
fi
lab_bins
for b in "$BB_SERVER" "$BB_CLIENT"; do
    [[ -x "$b" ]] || { echo "demo: $b not found (build failed?)" >&2; exit 1; }
done

step "lab: $N clients, ${LOSS}% independent loss each (nftables), in namespaces ${LAB}*"
lab_up "$N" --loss "$LOSS"
"$NETLAB" status | sed -n '1,3p'

d=$(lab_tmpdir)
img="$d/image.img"
step "generating a ${MIB} MiB random image in $d"
head -c "$((MIB << 20))" /dev/urandom >"$img"
isz=$(stat -c %s "$img")
sha256sum "$img" | awk '{print $1}' >"$d/image.sha" &
sha_pid=$!

grp=()
[[ "$DEST" == 2[2-3][0-9].* ]] && grp=(--group "$DEST")
for ((k = 1; k <= N; k++)); do
    bb_client "c$k" "$k" "${grp[@]}" 10.99.0.1 "$d/client$k.img"
done

step "bb-server --rate $RATE --clients $N $DEST image.img   (in ${LAB}srv)"
tx0=$("$NETLAB" txbytes)
t0=$(date +%s.%N)
set +e
# The server's progress goes straight to this terminal (and to a log).
ip netns exec "${LAB}srv" timeout 900 "$BB_SERVER" --rate "$RATE" --clients "$N" "$DEST" "$img" \
    2> >(tee "$LAB_LOGDIR/server.err" >&2)
srv_rc=$?
set -e
t1=$(date +%s.%N)
tx1=$("$NETLAB" txbytes)

step "waiting for the clients"
for ((k = 1; k <= N; k++)); do lab_wait "c$k" 60 || true; done
t2=$(date +%s.%N)

step "verifying every client's output (sha256)"
wait "$sha_pid" 2>/dev/null || true
img_sha=$(cat "$d/image.sha" 2>/dev/null)
[[ -n "$img_sha" ]] || img_sha=$(sha256sum "$img" | awk '{print $1}')
for ((k = 1; k <= N; k++)); do echo "$d/client$k.img"; done \
    | xargs -P 2 -I{} sh -c 'if [ -f "{}" ]; then sha256sum "{}"; else echo "missing {}"; fi' >"$d/sums"

fail=0
echo
printf "${B}%-8s %12s %-8s %6s %9s %8s${Z}\n" client bytes sha256 exit "nft drops" seconds
for ((k = 1; k <= N; k++)); do
    f="$d/client$k.img"
    bytes=$(stat -c %s "$f" 2>/dev/null || echo 0)
    sum=$(awk -v f="$f" '$2 == f {print $1}' "$d/sums")
    rc=$(lab_rc "c$k"); rc=${rc:-?}
    if [[ "$sum" == "$img_sha" ]]; then ok="${G}OK${Z}      "; else ok="${R}FAIL${Z}    "; fail=1; fi
    [[ "$rc" == 0 ]] || fail=1
    printf "%-8s %12s %s %6s %9s %8s\n" "c$k" "$bytes" "$ok" "$rc" "$("$NETLAB" drops "$k")" "$(lab_elapsed "c$k")"
done
echo
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v tx="$((tx1 - tx0))" -v s="$isz" -v mib="$MIB" 'BEGIN {
    printf "image:   %d bytes (%d MiB), sha256 %s\n", s, mib, "'"$img_sha"'"
    printf "elapsed: %.1f s until the server exited, %.1f s until the last client (%.0f Mbit/s goodput)\n",
        t1 - t0, t2 - t0, s * 8 / (t1 - t0) / 1e6
    printf "wire:    server sent %d bytes = %.3f x the image\n", tx, tx / s }'
echo "server:  exit $srv_rc"
[[ "$srv_rc" == 0 ]] || fail=1
if (( fail )); then
    echo "${R}demo: FAILED${Z} (logs: $LAB_LOGDIR)"
    exit 1
fi
echo "${G}demo: all $N clients verified${Z}"
_lab_cleanup            # teardown, temp dir removed
rm -rf "$LAB_LOGDIR"
