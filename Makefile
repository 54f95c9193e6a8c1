# broadband Makefile. Targets are owned by different parts of the project; edit only yours.

.PHONY: demo lab-test

# 8 network-namespace clients with 1% loss receive a 256 MiB image (root; installs deps, builds).
demo:
	bash lab/demo.sh

# Lab integration tests (root): broadcast/multicast, loss, late joiner, dead client, ...
lab-test:
	bash lab/run-tests.sh

# ---- netboot (owner: netboot) -------------------------------------------------------------
.PHONY: netboot initramfs pxe-demo

# TFTP root in build/netboot/: vmlinuz (Debian's current kernel, cached in build/netboot-cache),
# bb-initramfs.img, boot.ipxe.  Overrides: KERNEL= MODDIR= [KVER=] CLIENT= OUT=
netboot:
	KERNEL="$(KERNEL)" MODDIR="$(MODDIR)" KVER="$(KVER)" CLIENT="$(CLIENT)" OUT="$(OUT)" \
	    bash netboot/make-netboot.sh

# Just the initramfs: make initramfs KVER=... MODDIR=... CLIENT=... [INITRAMFS=out.img]
INITRAMFS ?= build/netboot/bb-initramfs.img
initramfs:
	KVER="$(KVER)" MODDIR="$(MODDIR)" CLIENT="$(CLIENT)" bash initramfs/build.sh "$(INITRAMFS)"

# 4 QEMU machines PXE-boot through iPXE + dnsmasq and receive a 64 MiB image at 1% loss,
# plus one initramfs-tools and one dracut initramfs (root; QEMU TCG).
pxe-demo:
	bash netboot/tests/pxe.sh
