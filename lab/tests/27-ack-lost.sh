#!/usr/bin/env bash
# A client whose result is never acknowledged (the acknowledgements are dropped on its way
# in) still has a verified target: interrupted while it waits for the acknowledgement, it
# finishes with that outcome (exit 0, its OK line) and warns that the server may not know,
# rather than calling the target incomplete.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 1
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" 8
# Acknowledgements come from the server's control port; data and announces do not.
ip netns exec "$(lab_ns c1)" nft -f - <<'EOF'
table inet bb_no_ack {
    chain input {
        type filter hook input priority 0; policy accept;
        udp sport 7854 drop
    }
}
EOF
bb_client c1 1 10.99.0.1 "$d/c1.img"
bb_server srv --clients 1 10.99.0.255 "$img"
lab_wait srv 60 || lab_fail "bb-server: $(bb_why srv)"
# The server had the result and ended; the client repeats it for 5 s (50 tries).
sleep 0.5
lab_running c1 || lab_fail "c1 ended before its acknowledgement wait was over (exit $(lab_rc c1): $(lab_tail c1 2))"
lab_kill c1 INT
lab_wait c1 5 || lab_fail "interrupted while waiting for the acknowledgement: exit $(lab_rc c1) ($(lab_tail c1 2))"
grep -q "warning: the server did not acknowledge" "$LAB_LOGDIR/c1.err" ||
    lab_fail "no warning of the missing acknowledgement ($(lab_tail c1 3))"
grep -q "^bb-client: OK " "$LAB_LOGDIR/c1.err" || lab_fail "no OK line ($(lab_tail c1 2))"
bb_check_clients "$img" "c1:$d/c1.img"
echo "interrupted during the acknowledgement wait: exit 0, OK, warned ($(lab_tail c1 3))"
