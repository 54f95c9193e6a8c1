#!/bin/sh
# dracut cmdline hook: with bb.server= there is no root file system to wait for.
if getarg bb.server= >/dev/null; then
    [ -z "$root" ] && root=broadband
    rootok=1
    info "broadband: imaging mode (bb.server=$(getarg bb.server=))"
fi
