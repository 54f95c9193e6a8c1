#!/bin/sh
# dracut pre-mount hook: broadband imaging (see module-setup.sh). bb-client --init reads bb.*
# and ip= from /proc/cmdline, configures the NIC itself (no rd.neednet needed), writes bb.dev=,
# verifies it and powers off / reboots / halts by itself (bb.done=). It returns only for
# bb.done=shell (status 0) or after a failure (status 1); this hook then never lets the boot
# go on to the disk.
getarg bb.server= >/dev/null || return 0

echo "broadband: imaging (bb.server= on the kernel command line)" >/dev/console
udevadm settle --timeout=30 2>/dev/null

/usr/bin/bb-client --init </dev/console >/dev/console 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
    echo "broadband: imaging done (bb.done=shell)" >/dev/console
else
    echo "broadband: imaging FAILED (exit $rc); the disk must not be booted" >/dev/console
fi
if getargbool 0 rd.shell || [ "$(getarg bb.done=)" = shell ]; then
    emergency_shell -n broadband "broadband imaging finished (exit $rc)"
fi
echo "broadband: halting" >/dev/console
echo 1 > /proc/sys/kernel/sysrq 2>/dev/null
# No halt binary in a minimal dracut image: stop here, never mount the root.
while :; do sleep 3600; done
