# images.sh: disk images the way operators have them, for the image tests and the image
# benchmark (issue 8). Source it after lib.sh (it uses lab_tmpdir and the lab's teardown).
#
#   img_ext4 FILE SIZE_MIB FILES_MIB    an ext4 filesystem in FILE (SIZE_MIB, sparse, made by
#                                       mkfs.ext4 -d, never mounted) holding about FILES_MIB of
#                                       real files from /usr (doc, binaries, libraries); prints
#                                       the bytes copied
#   img_sparse FILE SIZE_MIB DATA_MIB EXTENTS [SEED]
#                                       a sparse file: DATA_MIB of random bytes in EXTENTS
#                                       extents at scattered 4 KiB-aligned offsets, holes between
#   img_random FILE MIB                 random bytes (incompressible)
#   img_zstd_bytes FILE                 size of `zstd -3` of the whole FILE
#   img_nonzero_bytes FILE [BLOCK]      bytes in the BLOCK-sized blocks of FILE that are not all
#                                       zero (default block: bb's 512 x 1408 = 720 KiB): what a
#                                       client must write at most when zero blocks stay holes
#   img_alloc_bytes FILE                bytes FILE occupies on disk (holes excluded)
#   bb_is_v2                            bb-server and bb-client speak protocol v2 (issue 8:
#                                       --compress, --assume-zeroed); else the v2 checks are
#                                       reported as not run
#   bb_json FILE FIELD                  a number from bb-server's --summary-json output
#   lab_mount_tmpfs DIR MIB             a tmpfs of MIB at DIR, unmounted at teardown

IMG_BB_BLOCK=$((512 * 1408))

# Mounts made here are recorded like loop devices and undone by lib.sh's teardown.
_img_mount() {
    mount "$@" || return 1
    echo "${!#}" >>"$LAB_LOGDIR/.mounts"
}

img_ext4() {
    local file="$1" size_mib="$2" files_mib="$3" tree list copied
    command -v mkfs.ext4 >/dev/null || lab_fail "mkfs.ext4 not found (e2fsprogs)"
    # No mount: mkfs.ext4 -d fills the filesystem from a directory in user space, so the
    # image is final when mkfs returns. A loop mount is not: on this machine / is a private
    # mount, so any `ip netns exec` (another lab's, say) started while it was mounted keeps a
    # copy of the mount in its own namespace; our umount then only detaches it here, and the
    # kernel writes the last superblock (free counts, needs_recovery cleared) into the image
    # when that process exits -- seconds later, while the image is being served.
    tree=$(lab_tmpdir)
    list="$LAB_LOGDIR/ext4-files.list"
    # Regular files in a fixed order until the budget is reached: the same image each run.
    # Each inode once: hard links (several names, one file) would not add bytes to the image.
    find /usr/share/doc /usr/bin /usr/lib/x86_64-linux-gnu -xdev -type f -printf '%i %s %p\n' 2>/dev/null \
        | sort -k3 \
        | awk -v max="$((files_mib << 20))" '!seen[$1]++ && sum + $2 <= max {
              sum += $2; sub(/^[0-9]+ [0-9]+ /, ""); print }' \
        >"$list"
    tar -C / -cf - --no-recursion -T "$list" 2>/dev/null | tar -C "$tree" -xf - \
        || lab_fail "copying files for $file failed"
    copied=$(du -sb --apparent-size "$tree" | awk '{print $1}')
    rm -f "$file" "$list"
    truncate -s "${size_mib}M" "$file"
    mkfs.ext4 -q -F -d "$tree" "$file" || lab_fail "mkfs.ext4 -d $tree $file failed"
    rm -rf --one-file-system "$tree"
    echo "$copied"
}

img_sparse() {
    local file="$1" size_mib="$2" data_mib="$3" extents="$4" seed="${5:-8}"
    local ext_bytes=$(( (data_mib << 20) / extents )) slot=$(( (size_mib << 20) / extents ))
    (( ext_bytes % 4096 == 0 && ext_bytes <= slot )) || lab_fail "img_sparse: bad geometry"
    rm -f "$file"
    truncate -s "${size_mib}M" "$file"
    # Extent i starts somewhere in slot i (4 KiB aligned), so extents straddle bb blocks at
    # arbitrary places and blocks are partly data, partly zero.
    awk -v n="$extents" -v slot="$slot" -v len="$ext_bytes" -v seed="$seed" 'BEGIN {
        srand(seed)
        for (i = 0; i < n; i++) print i * slot + int(rand() * ((slot - len) / 4096 + 1)) * 4096 }' |
        while read -r off; do
            head -c "$ext_bytes" /dev/urandom |
                dd of="$file" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none iflag=fullblock
        done
}

img_random() { head -c "$(( $2 << 20 ))" /dev/urandom >"$1"; }

img_zstd_bytes() { zstd -3 -T0 -q -c "$1" | wc -c; }

img_nonzero_bytes() {
    python3 - "$1" "${2:-$IMG_BB_BLOCK}" <<'EOF'
import os, sys
path, block = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
nonzero = 0
with open(path, "rb") as f:
    fd = f.fileno()
    off = 0
    while off < size:
        # Skip holes without reading them: only blocks that hold data can be non-zero.
        try:
            data_at = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        off = data_at - data_at % block
        f.seek(off)
        chunk = f.read(block)
        if chunk.count(0) != len(chunk):
            nonzero += len(chunk)
        off += block
print(nonzero)
EOF
}

img_alloc_bytes() { du -B1 "$1" | awk '{print $1}'; }

bb_is_v2() {
    "$BB_SERVER" --help 2>&1 | grep -q -- '--compress' &&
        "$BB_CLIENT" --help 2>&1 | grep -q -- '--assume-zeroed'
}

bb_json() { sed -n "s/^ *\"$2\": *\([0-9.]*\),\$/\1/p" "$1" | head -n 1; }

lab_mount_tmpfs() {
    mkdir -p "$1"
    _img_mount -t tmpfs -o "size=$2m" tmpfs "$1"
}

# ratio A B: A / B with 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
# le A B: A <= B (numbers, awk)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# bb_span FIRST NAME...: seconds from FIRST's start until the last of NAME... ended
bb_span() {
    local first="$1" n e last=0; shift
    for n in "$@"; do
        e=$(lab_end "$n") || continue
        last=$(awk -v a="$last" -v b="$e" 'BEGIN { print (b > a) ? b : a }')
    done
    awk -v s="$(cat "$LAB_LOGDIR/$first.start")" -v e="$last" 'BEGIN { printf "%.2f", e - s }'
}

# bb_client_stdout NAME K [client args...] SERVER FILE: a client writing the image to its
# standard output, redirected to FILE
bb_client_stdout() {
    local n="$1" k="$2"; shift 2
    local out="${!#}" args=("${@:1:$#-1}")
    lab_bg "$n" "c$k" sh -c 'out="$1"; shift; exec "$@" - >"$out"' sh "$out" \
        "$BB_CLIENT" --timeout "$BB_CLIENT_TIMEOUT" "${args[@]}"
}
