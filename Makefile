# broadband Makefile. Targets are owned by different parts of the project; edit only yours.
#
#   make            build everything (release), the static client included
#   make demo       8 namespace clients receive a 256 MiB image over 1%-lossy links (root)
#   make test       install what the tests need, then run every test (root for lab/netboot)
#   make install    PREFIX=/usr/local DESTDIR= ;  make deb: build/broadband_*.deb

.DEFAULT_GOAL := all
.PHONY: all deps test unit-test lint bench sim netboot-test fuzz fuzz-check

CARGO ?= cargo

all:
	$(CARGO) build --release --workspace
	$(MAKE) client

# apt packages (lab, QEMU, dnsmasq, udpcast, uftp, ...) and the musl target; idempotent.
deps:
	bash scripts/install-deps.sh

# Everything: unit, property and simulator tests, the fuzz corpora and a short fuzzing
# run, then the namespace lab and the PXE boot
# tests (these two need root and say so when skipped).
test: deps
	$(MAKE) unit-test
	$(MAKE) fuzz-check
	$(MAKE) all
	$(MAKE) lab-test
	$(MAKE) netboot-test

unit-test:
	$(CARGO) test --workspace

# QEMU machines PXE-boot and image their disks (same script as pxe-demo), then through
# bb-pxe in both DHCP modes; the Debian package installs, answers --version and is removed.
netboot-test:
	bash netboot/tests/pxe.sh
	bash netboot/tests/bb-pxe.sh
	bash netboot/tests/deb.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Erasure-code throughput (MB/s per core) and the simulator at the issue's reference points.
bench:
	$(CARGO) run --release -p bb-bench
	$(CARGO) run --release -p bb-sim -- --clients 100 --loss 1% --image-size 64MiB --seed 7

# Coverage-guided fuzzing of every parser of untrusted bytes and both state machines
# (nightly Rust + cargo-fuzz, installed by make deps): FUZZ_SECONDS per target, new inputs
# kept in fuzz/corpus/ (fuzz/README.md: minimising, adding a target).
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh run $(FUZZ_SECONDS)

# Part of make test: replays every committed corpus, then fuzzes each target briefly
# (FUZZ_CHECK_SECONDS each, worktree unchanged). Skipped with a message without nightly.
FUZZ_CHECK_SECONDS ?= 10
fuzz-check:
	bash scripts/fuzz.sh check $(FUZZ_CHECK_SECONDS)

# Example: make sim ARGS="--clients 1000 --loss 1% --image-size 64MiB"
sim:
	$(CARGO) run --release -p bb-sim -- $(ARGS)

.PHONY: demo lab-test

# 8 network-namespace clients with 1% loss receive a 256 MiB image (root; installs deps, builds).
demo: deps
	bash lab/demo.sh

# Lab integration tests (root): broadcast/multicast, loss, late joiner, dead client, ...
lab-test:
	bash lab/run-tests.sh

# Issue 11's soak (root, not in CI): a several-GiB image sent again and again for an hour
# across loss settings, a client killed and restarted in every session, every output
# compared, server and client memory shown flat. SOAK_MINUTES=10 for a shorter run; see
# lab/soak.sh for SOAK_IMAGE_MIB, SOAK_CLIENTS, SOAK_LOSSES, SOAK_RATE.
.PHONY: soak
soak:
	$(CARGO) build --release -p bb-server
	$(MAKE) client
	bash lab/soak.sh

# Issue 8's image benchmark (root): a 2 GiB ext4 image to 4 clients at 1% loss, bb-server vs
# udpcast with zstd pipes; a sparse 2 GiB file; a random image with/without --compress off.
.PHONY: bench-images
bench-images:
	bash lab/bench-images.sh

# Issue 10's race (root, about 22 minutes): bb vs udpcast vs uftp on the same images in the
# same namespace lab, plus a raw UDP GSO blaster as the ceiling, three runs of every tool
# (medians); a table on stdout, CSV, JSON and an SVG chart in build/bench-peers/. Not part of
# `make test`. Quick re-runs: make bench-peers SCENARIOS="2x1g 48x20m" BENCH_RUNS=1
.PHONY: bench-peers
bench-peers: deps
	SCENARIOS="$(SCENARIOS)" bash lab/bench-peers.sh

# ---- netboot (owner: netboot) -------------------------------------------------------------
.PHONY: netboot initramfs pxe-demo

# TFTP root in build/netboot/: vmlinuz (Debian's current kernel, cached in build/netboot-cache),
# bb-initramfs.img, boot.ipxe.  Overrides: KERNEL= MODDIR= [KVER=] CLIENT= OUT=
# KEY_FILE= (a pre-shared key from bb-server --gen-key, baked into the initramfs)
netboot:
	KERNEL="$(KERNEL)" MODDIR="$(MODDIR)" KVER="$(KVER)" CLIENT="$(CLIENT)" OUT="$(OUT)" KEY_FILE="$(KEY_FILE)" \
	    bash netboot/make-netboot.sh

# Just the initramfs: make initramfs KVER=... MODDIR=... CLIENT=... [INITRAMFS=out.img]
INITRAMFS ?= build/netboot/bb-initramfs.img
initramfs:
	KVER="$(KVER)" MODDIR="$(MODDIR)" CLIENT="$(CLIENT)" KEY_FILE="$(KEY_FILE)" bash initramfs/build.sh "$(INITRAMFS)"

# 4 QEMU machines PXE-boot through iPXE + dnsmasq and receive a 64 MiB image at 1% loss,
# plus one initramfs-tools and one dracut initramfs (root; QEMU TCG).
pxe-demo:
	bash netboot/tests/pxe.sh

# ---- install (owner: netboot) -------------------------------------------------------------
.PHONY: install deb
PREFIX ?= /usr/local
DESTDIR ?=

# bb-server, bb-pxe, the static bb-client, the netboot files and the docs under
# DESTDIR/PREFIX (bin/, share/broadband/netboot/, share/doc/broadband/); builds them first.
install: install-inputs
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash scripts/install.sh

# build/broadband_VERSION_ARCH.deb (dpkg-deb): what make install puts under /usr.
deb: install-inputs
	bash scripts/make-deb.sh

.PHONY: install-inputs
install-inputs:
	$(CARGO) build --release -p bb-server -p bb-pxe
	$(MAKE) client
	$(MAKE) netboot CLIENT=$(abspath build/bb-client)

# ---- client (owner: client-static) --------------------------------------------------------
.PHONY: client client-gnu

CLIENT_TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)

# The static, heap-free bb-client (musl, stripped, about 520 KB): build/bb-client
# zstd's C code is compiled for musl by cc-rs, which finds musl-gcc (Debian: musl-tools) or
# x86_64-linux-musl-gcc in PATH by itself.
client:
	@command -v musl-gcc >/dev/null || command -v x86_64-linux-musl-gcc >/dev/null || \
	    { echo "make client: musl-gcc not found (zstd's C code needs it): apt-get install musl-tools, or make deps" >&2; exit 1; }
	cargo build -p bb-client --profile client-release --target x86_64-unknown-linux-musl
	mkdir -p build && cp $(CLIENT_TARGET_DIR)/x86_64-unknown-linux-musl/client-release/bb-client build/bb-client

# Fallback without the musl target: glibc, statically linked (about 1.2 MB; glibc links its own malloc).
client-gnu:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build -p bb-client --profile client-release --target x86_64-unknown-linux-gnu
	mkdir -p build && cp $(CLIENT_TARGET_DIR)/x86_64-unknown-linux-gnu/client-release/bb-client build/bb-client-gnu
