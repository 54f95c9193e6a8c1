#!/usr/bin/env bash
# A pipe as input: `cat img | bb-server ... -` (non-seekable stdin is spooled). Clients 1-3
# write files, client 4 writes to its stdout (redirected to a file). All byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 4 --loss 1
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 32
names=()
for k in 1 2 3; do bb_client "c$k" "$k" 10.99.0.1 "$d/c$k.img"; names+=("c$k:$d/c$k.img"); done
lab_bg c4 c4 sh -c "exec \"\$0\" --timeout $BB_CLIENT_TIMEOUT 10.99.0.1 - >\"\$1\"" "$BB_CLIENT" "$d/c4.img"
lab_bg srv srv sh -c "cat \"\$1\" | \"\$0\" --timeout $BB_SERVER_TIMEOUT --rate $BB_RATE --clients 4 10.99.0.255 -" "$BB_SERVER" "$img"
lab_wait srv 75 || lab_fail "bb-server (stdin) $(bb_why srv)"
for k in 1 2 3 4; do lab_wait "c$k" 30 || true; done
bb_check_clients "$img" "${names[@]}"
rc4=$(lab_rc c4)
[[ "$rc4" == 0 ]] || lab_fail "client writing to stdout: exit ${rc4:-none} ($(lab_tail c4 2))"
bb_cmp "$d/c4.img" "$img" || lab_fail "client writing to stdout: output differs from the image"
echo "stdin server: 3 file clients and 1 stdout client byte-exact"
