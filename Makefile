# broadband Makefile. Targets are owned by different parts of the project; edit only yours.
#
#   make            build everything (release), the static client included
#   make demo       8 namespace clients receive a 256 MiB image over 1%-lossy links (root)
#   make test       install what the tests need, then run every test (root for lab/netboot)

.DEFAULT_GOAL := all
.PHONY: all deps test unit-test lint bench sim netboot-test fuzz

CARGO ?= cargo

all:
	$(CARGO) build --release --workspace
	$(MAKE) client

# apt packages (lab, QEMU, dnsmasq, udpcast, uftp, ...) and the musl target; idempotent.
deps:
	bash scripts/install-deps.sh

# Everything: unit, property and simulator tests, then the namespace lab and the PXE boot
# tests (these two need root and say so when skipped).
test: deps
	$(MAKE) unit-test
	$(MAKE) all
	$(MAKE) lab-test
	$(MAKE) netboot-test

unit-test:
	$(CARGO) test --workspace

# QEMU machines PXE-boot and image their disks (same script as pxe-demo).
netboot-test:
	bash netboot/tests/pxe.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Erasure-code throughput (MB/s per core) and the simulator at the issue's reference points.
bench:
	$(CARGO) run --release -p bb-bench
	$(CARGO) run --release -p bb-sim -- --clients 100 --loss 1% --image-size 64MiB --seed 7

# Coverage-guided fuzzing of every parser and both state machines (nightly + cargo-fuzz):
#   cargo install cargo-fuzz; make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 60
fuzz:
	cd fuzz && for t in wire receiver sender; do \
	    cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; done

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

# Issue 8's image benchmark (root): a 2 GiB ext4 image to 4 clients at 1% loss, bb-server vs
# udpcast with zstd pipes; a sparse 2 GiB file; a random image with/without --compress off.
.PHONY: bench-images
bench-images:
	bash lab/bench-images.sh

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
