#!/usr/bin/env bash
# The ext4 test image is final when img_ext4 returns: it must not change afterwards, even
# when other processes entered new mount namespaces while it was built. `ip netns exec` (any
# lab's, on a shared machine) does unshare(CLONE_NEWNS) + a recursive MS_SLAVE on /; where /
# is a private mount, such a namespace keeps its own copy of a loop mount made meanwhile, and
# a umount here then only detaches it: the kernel writes the filesystem's last superblock
# (free counts, needs_recovery cleared) into the image when that process exits, seconds
# later, while the image is being served (the bench-peers ext4 cmp failures). No network.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
for t in unshare md5sum dumpe2fs e2fsck; do
    command -v "$t" >/dev/null || { echo "skipped: $t not found (util-linux, e2fsprogs)"; exit "$LAB_SKIP_RC"; }
done
d=$(lab_tmpdir); img="$d/ext4.img"; stop="$d/stop"
# Short-lived mount-namespace copies, as `ip netns exec` makes them, all through the build:
# each lives 2 s, so every one has ended 2 s after the last was started.
(
    while [[ ! -e $stop ]]; do
        unshare -m --propagation slave sleep 2 &
        sleep 0.1
    done
    wait
) &
copier=$!
files=$(img_ext4 "$img" 128 32)
touch "$stop"
before=$(md5sum <"$img")
deadline=$((SECONDS + 10))
while kill -0 "$copier" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
kill -0 "$copier" 2>/dev/null && lab_fail "the namespace copies did not end within 10 s"
sync
after=$(md5sum <"$img")
echo "image: $(stat -c %s "$img") bytes, $files bytes of files; md5 at return ${before%% *}, 2 s later ${after%% *}"
[[ $before == "$after" ]] \
    || lab_fail "the ext4 image changed after img_ext4 returned (a mount of it outlived the umount in another mount namespace): img_ext4 must not leave the image to the kernel"
dumpe2fs -h "$img" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery' \
    && lab_fail "the ext4 image needs journal recovery: it was taken before its filesystem was cleanly unmounted"
e2fsck -fn "$img" >"$LAB_LOGDIR/e2fsck.out" 2>&1 \
    || { cat "$LAB_LOGDIR/e2fsck.out" >&2; lab_fail "e2fsck -fn finds errors in the ext4 image"; }
(( files > 16 << 20 )) || lab_fail "the ext4 image holds only $files bytes of files (want about 32 MiB)"
echo "ok: the ext4 image is final when img_ext4 returns and clean (e2fsck -fn)"
