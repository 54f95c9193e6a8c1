#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, nightly Rust) for a bounded time each.
#
# Usage: scripts/fuzz.sh run SECONDS     fuzz each target SECONDS, growing fuzz/corpus/<target>/
#                                        (make fuzz; then minimise: see fuzz/README.md)
#        scripts/fuzz.sh check SECONDS   replay every committed corpus, then fuzz each target
#                                        SECONDS into a temporary corpus (make fuzz-check, part
#                                        of make test: the worktree is left unchanged)
#
# Exit status: 0 every target ran clean (or nightly Rust is missing: skipped, with a message),
# 1 a target crashed, failed an assertion, timed out or ran out of memory (its input is kept
# and named), 2 usage error or cargo-fuzz missing.
set -euo pipefail

mode=${1:-}
seconds=${2:-}
if [[ ! "$mode" =~ ^(run|check)$ || ! "$seconds" =~ ^[0-9]+$ || "$seconds" -eq 0 ]]; then
    echo "usage: scripts/fuzz.sh run|check SECONDS (a whole number of seconds per target, >= 1)" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: the nightly Rust toolchain is missing (cargo-fuzz needs it;" \
        "install it with: rustup toolchain install nightly). CI has it." >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing: run 'make deps' (or: cargo install cargo-fuzz --locked)" >&2
    exit 2
fi

echo "fuzz: building the targets (nightly, address sanitizer)"
cargo +nightly fuzz build
mapfile -t targets < <(cargo +nightly fuzz list)
# Run the built binaries directly: cargo fuzz run would check the build again per target.
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$root/fuzz/target/$host/release"

work=$(mktemp -d /tmp/bb-fuzz.XXXXXX)
keep_work=0
cleanup() { [[ $keep_work -eq 1 ]] || rm -rf "$work"; }
trap cleanup EXIT

# Per input: 10 s before a hang is reported (every target's work per input is bounded, so a
# slow input is a finding), 2 GiB of memory.
limits=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
failed=()
declare -A execs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "$work/artifacts/$t"
    if [[ $mode == run ]]; then
        dirs=("corpus/$t")
    else
        # New inputs go to the first directory only: the committed corpus is read, not grown.
        mkdir -p "$work/new/$t"
        dirs=("$work/new/$t" "corpus/$t")
    fi
    echo "fuzz: $t: $(ls "corpus/$t" | wc -l) corpus inputs, then ${seconds} s of fuzzing"
    log="$work/$t.log"
    if "$bin_dir/$t" "${limits[@]}" -max_total_time="$seconds" \
        -artifact_prefix="$work/artifacts/$t/" "${dirs[@]}" >"$log" 2>&1; then
        execs[$t]=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    else
        failed+=("$t")
        keep_work=1
        execs[$t]=FAILED
        grep -E -A1 "panicked at" "$log" | head -4 >&2 || true
        grep -E "ERROR: libFuzzer|SUMMARY" "$log" | head -4 >&2 || true
        for a in "$work/artifacts/$t"/*; do
            [[ -e "$a" ]] || continue
            echo "fuzz: $t: input kept in $a; reproduce: cd fuzz && cargo +nightly fuzz run $t $a" >&2
        done
        echo "fuzz: $t: full log in $log" >&2
    fi
done

echo "fuzz: executions per target (${seconds} s each, after the corpus replay):"
for t in "${targets[@]}"; do
    printf '  %-20s %s\n' "$t" "${execs[$t]}"
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean"
