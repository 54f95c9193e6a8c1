#!/usr/bin/env bash
# bb-server --prepare IMAGE (issue 8) writes the side file IMAGE.bbmap once; a later run of
# the same image uses it and its client verifies byte-exact. A side file that no longer
# matches the image is never trusted: after the image's mtime changed, and after a data block
# changed behind its back (size and mtime restored), the server names the side file in its
# messages and no client ever ends with success holding bytes other than the image's.
# Needs a v2 server (skipped with an older one).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
lab_require_bins
bb_is_v2 || { echo "skipped: bb-server/bb-client predate protocol v2: --prepare is new in issue 8"; exit 77; }
lab_up 1
d=$(lab_tmpdir); img="$d/golden.img"
img_ext4 "$img" 128 32 >/dev/null
"$BB_SERVER" --prepare "$img" >"$LAB_LOGDIR/prepare.out" 2>"$LAB_LOGDIR/prepare.err" \
    || lab_fail "bb-server --prepare failed: $(tail -n 2 "$LAB_LOGDIR/prepare.err" | tr '\n' ' ')"
[[ -s "$img.bbmap" ]] || lab_fail "bb-server --prepare wrote no $img.bbmap"
echo "side file: $(stat -c %s "$img.bbmap") bytes for a $(stat -c %s "$img") byte image"

# run NAME: one client, the server on $img; sets rc_srv, rc_cli
run() {
    rm -f "$d/c1.img"
    bb_client "c$1" 1 10.99.0.1 "$d/c1.img"
    bb_server "srv$1" --rate "$BB_RATE" --clients 1 10.99.0.255 "$img"
    rc_srv=0; lab_wait "srv$1" 60 || rc_srv=$?
    # A server that refused to start leaves its client waiting for nobody: do not wait long.
    rc_cli=0; lab_wait "c$1" $(( rc_srv == 0 ? 30 : 3 )) || rc_cli=$?
}
# never_wrong WHAT RUN: a client that ended with success holds exactly the image
never_wrong() {
    if [[ $rc_cli == 0 ]] && ! bb_cmp "$d/c1.img" "$img"; then
        lab_fail "$1: the client verified bytes that are not the image's: a stale side file was trusted"
    fi
    # A run that did not deliver the image must say why: the side file was refused.
    if [[ $rc_cli != 0 ]] && ! grep -qi 'bbmap\|side file' "$LAB_LOGDIR/srv$2.err"; then
        lab_fail "$1: the client failed (exit $rc_cli) and the server did not name the side file ($(lab_tail "srv$2" 2))"
    fi
}

run fresh
(( rc_srv == 0 )) || lab_fail "bb-server with a fresh side file $(bb_why srvfresh)"
bb_check_clients "$img" cfresh:"$d/c1.img"
echo "fresh side file: byte-exact in $(bb_span srvfresh cfresh)s"

touch "$img"
run touched
never_wrong "mtime changed" touched
grep -qi 'bbmap\|side file' "$LAB_LOGDIR/srvtouched.err" \
    || lab_fail "mtime changed: the server said nothing about the side file ($(lab_tail srvtouched 2))"
echo "mtime changed: server exit $rc_srv, client exit $rc_cli: $(grep -i -m1 'bbmap\|side file' "$LAB_LOGDIR/srvtouched.err")"

"$BB_SERVER" --prepare "$img" >/dev/null 2>&1 || lab_fail "bb-server --prepare (again) failed"
# Overwrite 64 KiB of data (past 32 MiB if the image has data there), keep size and mtime.
off=$(python3 - "$img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print(os.lseek(fd, 32 << 20, os.SEEK_DATA) + 4096)
except OSError:  # no data past 32 MiB: the first data after the superblock's block group
    print(os.lseek(fd, 1 << 20, os.SEEK_DATA) + 4096)
PY
)
touch -r "$img" "$d/mtime.ref"
head -c 65536 /dev/urandom | dd of="$img" bs=64K seek="$off" oflag=seek_bytes conv=notrunc status=none
touch -r "$d/mtime.ref" "$img"
run tampered
never_wrong "block changed, size and mtime kept" tampered
echo "block changed behind the side file: server exit $rc_srv, client exit $rc_cli, no wrong image verified"
