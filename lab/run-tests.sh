#!/usr/bin/env bash
# Run the lab integration tests (lab/tests/*.sh), each in its own lab prefix, with a timeout
# and guaranteed teardown.
#
# usage: lab/run-tests.sh [--no-build] [--keep-logs] [PATTERN...]
#   PATTERN   run only the tests whose name contains one of the patterns
#   env: BB_SERVER, BB_CLIENT, BB_LOAD (binaries; default: $CARGO_TARGET_DIR/release/...),
#        LAB_TEST_TIMEOUT (seconds per test, default 120), LAB_TEST_LOGS (log dir)
#
# Prints "ok NAME (Xs)" / "FAIL NAME: reason" / "skip NAME: reason" per test and finally
# "lab: N passed, N failed[, N skipped]". Exits non-zero if any test failed.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
build=1
patterns=()
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --keep-logs) ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) patterns+=("$a") ;;
    esac
done

tests=()
for t in "$HERE"/tests/*.sh; do
    name=$(basename "$t" .sh)
    if [[ ${#patterns[@]} -gt 0 ]]; then
        m=0
        for p in "${patterns[@]}"; do [[ "$name" == *"$p"* ]] && m=1; done
        (( m )) || continue
    fi
    tests+=("$t")
done

if [[ $(id -u) -ne 0 ]]; then
    echo "skipped: needs root to create network namespaces (ip netns)"
    echo "lab: 0 passed, 0 failed, ${#tests[@]} skipped"
    exit 0
fi

LOGROOT="${LAB_TEST_LOGS:-/tmp/lab-tests.$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOGROOT"

if (( build )) && [[ -z "${BB_SERVER:-}" || -z "${BB_CLIENT:-}" ]]; then
    echo "building bb-server and bb-client (release)..."
    # The server, and the static heap-free musl client that machines really run (build/bb-client).
    if ! (cd "$REPO" && cargo build --release -p bb-server && cargo build --release -p bb-sim --bin bb-load \
            && make -s client) \
        >"$LOGROOT/build.log" 2>&1; then
        echo "warning: cargo build failed (log: $LOGROOT/build.log); tests needing the binaries will fail"
        tail -n 5 "$LOGROOT/build.log" | sed 's/^/    /'
    fi
fi

pass=0; fail=0; skip=0; i=0
suite_start=$(date +%s)
for t in "${tests[@]}"; do
    i=$((i + 1))
    name=$(basename "$t" .sh)
    lab="lt$i"
    logdir="$LOGROOT/$name"
    rm -rf "$logdir"; mkdir -p "$logdir"
    start=$(date +%s.%N)
    LAB="$lab" LAB_LOGDIR="$logdir" timeout -k 15 "${LAB_TEST_TIMEOUT:-120}" bash "$t" \
        >"$logdir/test.log" 2>&1 </dev/null
    rc=$?
    # Belt and braces: the test's own trap should have done this already.
    LAB="$lab" "$HERE/netlab.sh" down >/dev/null 2>&1
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if (( rc == 0 )); then
        pass=$((pass + 1)); echo "ok $name (${secs}s)"
    elif (( rc == 77 )); then
        skip=$((skip + 1))
        echo "skip $name: $(grep -m1 '^skipped:' "$logdir/test.log" | sed 's/^skipped: //')"
    else
        fail=$((fail + 1))
        if (( rc == 124 || rc == 137 )); then
            reason="timed out after ${LAB_TEST_TIMEOUT:-120}s"
        elif [[ -s "$logdir/reason" ]]; then
            reason=$(head -n 3 "$logdir/reason" | tr '\n' ' ')
        else
            reason="exit $rc: $(tail -n 2 "$logdir/test.log" | tr '\n' ' ')"
        fi
        echo "FAIL $name: $reason (log: $logdir)"
    fi
done
total=$(( $(date +%s) - suite_start ))
echo "logs: $LOGROOT (${total}s)"
line="lab: $pass passed, $fail failed"
(( skip > 0 )) && line+=", $skip skipped"
echo "$line"
(( fail == 0 ))
