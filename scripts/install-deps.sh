#!/usr/bin/env bash
# Install the Debian packages needed by the lab, the integration tests, the benchmarks and
# netboot, plus the Rust musl target. Idempotent: returns quickly when everything is present.
# Usage: scripts/install-deps.sh [--check]   (--check: report what is missing, install nothing)
set -euo pipefail

# musl-tools: musl-gcc, which compiles zstd's C code into the static musl bb-client.
# python3-fusepy and fuse (libfuse2, fusermount): lab/fusefail.py, the FUSE file that fails
# on cue in the source-read-error and target-removed tests. ethtool: netlab's --gro.
PKGS=(iproute2 nftables iptables bridge-utils tcpdump qemu-system-x86 ipxe-qemu ipxe
      dnsmasq-base cpio kmod xz-utils zstd busybox-static file udpcast uftp iperf3 time python3
      initramfs-tools-core dracut-core musl-tools python3-fusepy fuse ethtool)

check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done

musl_missing=0
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || musl_missing=1
fi

# cargo-fuzz (make fuzz, make fuzz-check), from crates.io; only useful with the nightly
# toolchain, so only installed where nightly is (fuzz-check says it skipped otherwise).
fuzz_missing=0
if cargo +nightly --version >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    fuzz_missing=1
fi

if [[ ${#missing[@]} -eq 0 && $musl_missing -eq 0 && $fuzz_missing -eq 0 ]]; then
    echo "install-deps: all present"
    exit 0
fi

if [[ $check_only -eq 1 ]]; then
    [[ ${#missing[@]} -gt 0 ]] && echo "install-deps: missing packages: ${missing[*]}"
    [[ $musl_missing -eq 1 ]] && echo "install-deps: missing rust target x86_64-unknown-linux-musl"
    [[ $fuzz_missing -eq 1 ]] && echo "install-deps: missing cargo-fuzz (cargo install cargo-fuzz --locked)"
    exit 1
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: missing packages: ${missing[*]}" >&2
        echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # Keep only packages the archive knows (apt-cache policy shows a candidate).
    avail=()
    for p in "${missing[@]}"; do
        cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [[ -n "$cand" && "$cand" != "(none)" ]]; then
            avail+=("$p")
        else
            echo "install-deps: warning: package $p has no install candidate, skipped" >&2
        fi
    done
    if [[ ${#avail[@]} -gt 0 ]]; then
        echo "install-deps: installing ${avail[*]}"
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${avail[@]}" >/dev/null
    fi
fi

if [[ $musl_missing -eq 1 ]]; then
    echo "install-deps: rustup target add x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi
if [[ $fuzz_missing -eq 1 ]]; then
    echo "install-deps: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi
echo "install-deps: done"
