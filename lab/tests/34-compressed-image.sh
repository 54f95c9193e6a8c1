#!/usr/bin/env bash
# Images as operators keep them (issue 8): an ext4 image (128 MiB file, about 32 MiB of
# files) compressed with zstd (image.zst), gzip (named image.raw) and xz (named image.bin) is
# given to the server as IMAGE; it must recognise each by its magic bytes, not its name. Two
# clients at 1 % loss per run (a file and stdout) get the uncompressed image, byte-exact.
# Needs a v2 server (skipped with an older one: it would send the compressed bytes).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../images.sh"
lab_require_root
lab_require_bins
bb_is_v2 || { echo "skipped: bb-server/bb-client predate protocol v2 (no --compress): compressed IMAGE files are new in issue 8"; exit 77; }
for t in gzip xz zstd; do command -v "$t" >/dev/null || { echo "skipped: $t not found"; exit 77; }; done
lab_up 2 --loss 1
d=$(lab_tmpdir); img="$d/ext4.img"
img_ext4 "$img" 128 32 >/dev/null
isz=$(stat -c %s "$img")
zstd -3 -q -c "$img" >"$d/image.zst"
gzip -1 -c "$img" >"$d/image.raw"
xz -1 -T2 -c "$img" >"$d/image.bin"
for f in image.zst image.raw image.bin; do
    n=${f#image.}
    rm -f "$d"/c?.img
    bb_client "c1$n" 1 10.99.0.1 "$d/c1.img"
    bb_client_stdout "c2$n" 2 10.99.0.1 "$d/c2.img"
    tx0=$("$NETLAB" txbytes)
    bb_server "srv$n" --rate "$BB_RATE" --clients 2 10.99.0.255 "$d/$f"
    lab_wait "srv$n" 90 || lab_fail "bb-server $f ($(file -b "$d/$f" | cut -d, -f1)) $(bb_why "srv$n")"
    lab_wait "c1$n" 30 || true; lab_wait "c2$n" 30 || true
    tx=$(( $("$NETLAB" txbytes) - tx0 ))
    bb_check_clients "$img" "c1$n:$d/c1.img"
    [[ $(lab_rc "c2$n") == 0 ]] || lab_fail "$f: stdout client: exit $(lab_rc "c2$n") ($(lab_tail "c2$n" 2))"
    bb_cmp "$d/c2.img" "$img" || lab_fail "$f: stdout client: output differs from the image"
    echo "$f ($(stat -c %s "$d/$f") bytes, $(file -b "$d/$f" | cut -d, -f1)): byte-exact, server tx $tx bytes," \
        "every client ended $(bb_span "srv$n" "c1$n" "c2$n")s after the server started"
done
