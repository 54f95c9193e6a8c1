#!/bin/bash
# dracut module for broadband: bb-client and the common NIC and disk drivers in a dracut
# initramfs. Install:
#   cp -r initramfs/dracut/90broadband /usr/lib/dracut/modules.d/
#   dracut --add broadband /boot/initrd.img-bb KVER
# (or add_dracutmodules+=" broadband " in /etc/dracut.conf.d/broadband.conf).
# Imaging only starts when the kernel command line has bb.server=; otherwise this module does
# nothing. BB_CLIENT=/path/to/bb-client overrides where the static client is taken from.

check() {
    # Only when asked for (--add broadband).
    return 255
}

depends() {
    echo udev-rules
    return 0
}

installkernel() {
    local m
    for m in ${BB_MODULES:-virtio_net virtio_blk virtio_pci e1000 e1000e igb ixgbe i40e mlx5_core r8169 ahci nvme sd_mod}; do
        hostonly='' instmods "$m"
    done
    return 0
}

install() {
    local client="${BB_CLIENT:-}" c
    if [[ -z $client ]]; then
        for c in /usr/local/sbin/bb-client /usr/local/bin/bb-client /usr/sbin/bb-client /usr/bin/bb-client; do
            [[ -x $c ]] && { client=$c; break; }
        done
    fi
    if [[ -z $client || ! -x $client ]]; then
        derror "broadband: bb-client not found (install it in /usr/local/bin or set BB_CLIENT=)"
        return 1
    fi
    inst_simple "$client" /usr/bin/bb-client
    # cmdline: accept a command line without root= when imaging.
    inst_hook cmdline 90 "$moddir/parse-broadband.sh"
    # pre-mount: udev has run; image the disk here and never go on to mount a root.
    inst_hook pre-mount 10 "$moddir/broadband.sh"
    inst_multiple -o modprobe udevadm sleep grep
}
