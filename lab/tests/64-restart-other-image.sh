#!/usr/bin/env bash
# A server restarted on ANOTHER image (same size) is never taken for the same one: the two
# clients, at about 40% of image A when its server is killed, see the new session announce a
# different digest, do not take it over, and exit 5 (--timeout 8) with a message saying a
# session was announced but not taken over. Every block of their targets is image A's or
# still unwritten (zero): nothing of image B is mixed in.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 2
d=$(lab_tmpdir); lab_make_image "$d/a" 64; lab_make_image "$d/b" 64
isz=$(stat -c %s "$d/a")
for k in 1 2; do lab_bg "c$k" "c$k" "$BB_CLIENT" --timeout 8 10.99.0.1 "$d/c$k.img"; done
bb_server srv1 --rate 100M --clients 2 10.99.0.255 "$d/a"
lab_wait_txbytes $(( isz * 2 / 5 )) 60 || lab_fail "server did not send 40% within 60s ($(lab_tail srv1 3))"
lab_kill srv1 KILL
lab_wait srv1 10 || true
sleep 3
bb_server srv2 --rate 100M --clients 2 10.99.0.255 "$d/b"
for k in 1 2; do
    rc=0; lab_wait "c$k" 30 || rc=$?
    (( rc == 5 )) || lab_fail "c$k exit $rc, not 5 (timeout): $(lab_tail "c$k" 2)"
    grep -q "FAILED.*another session was announced meanwhile and not taken over" "$LAB_LOGDIR/c$k.err" ||
        lab_fail "c$k's message does not say why the new session was not taken over: $(lab_tail "c$k" 2)"
    ! grep -q "resuming" "$LAB_LOGDIR/c$k.err" || lab_fail "c$k resumed with another image"
done
lab_kill srv2 TERM
lab_wait srv2 10 || true
python3 - "$d/a" "$d/b" "$d/c1.img" "$d/c2.img" <<'PY' || lab_fail "a target holds bytes that are neither image A's nor unwritten"
import sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
blk = 512 * 1408
for p in sys.argv[3:]:
    t = open(p, "rb").read()
    assert len(t) <= len(a), f"{p} larger than the image"
    kinds = {"a": 0, "unwritten": 0}
    for off in range(0, len(t), blk):
        x = t[off:off + blk]
        if x == a[off:off + len(x)]:
            kinds["a"] += 1
        elif x.count(0) == len(x):
            kinds["unwritten"] += 1
        else:
            sys.exit(f"{p}: block {off // blk} is neither image A's nor unwritten"
                     + (" (it is image B's)" if x == b[off:off + len(x)] else ""))
    print(f"{p.rsplit('/', 1)[1]}: {kinds['a']} blocks of image A, {kinds['unwritten']} unwritten, none of image B")
PY
grep -h "FAILED" "$LAB_LOGDIR/c1.err" | tail -n 1
