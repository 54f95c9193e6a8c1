#!/usr/bin/env bash
# A pre-shared key (docs/SECURITY.md). Keyed server + keyed client: byte-exact. A client
# with another key never writes a byte (its target file keeps its checksum) and says why;
# a keyless client hearing the keyed server says the server requires a key. Then a keyless
# server: a keyed client says "data heard, but not authenticated with your key" and keeps
# its target, while a keyless client verifies. Last, a pinned digest with a prepared image
# (digest announced from the first packet): the right pin verifies; a wrong pin is refused
# before a byte is written, and the client says so.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 4
d=$(lab_tmpdir)
lab_make_image "$d/image" 32
"$BB_SERVER" --gen-key "$d/right.key" 2>/dev/null || lab_fail "bb-server --gen-key failed"
"$BB_SERVER" --gen-key "$d/wrong.key" 2>/dev/null || lab_fail "bb-server --gen-key failed"
if "$BB_SERVER" --gen-key "$d/right.key" 2>/dev/null; then
    lab_fail "bb-server --gen-key replaced an existing key"
fi
[[ $(stat -c %a "$d/right.key") == 600 ]] || lab_fail "the key file is not mode 0600"
# Targets that must survive: an existing file with known contents.
for t in wrong keyless keyed-vs-plain badpin; do head -c 1048576 /dev/urandom >"$d/$t.img"; done
sum() { sha256sum "$1" | cut -d' ' -f1; }
before_wrong=$(sum "$d/wrong.img")
before_keyless=$(sum "$d/keyless.img")
before_plain=$(sum "$d/keyed-vs-plain.img")
before_badpin=$(sum "$d/badpin.img")

# 1. Keyed server.
BB_CLIENT_TIMEOUT=12 bb_client right 1 --key-file "$d/right.key" 10.99.0.1 "$d/right.img"
BB_CLIENT_TIMEOUT=12 bb_client wrong 2 --key-file "$d/wrong.key" 10.99.0.1 "$d/wrong.img"
BB_CLIENT_TIMEOUT=12 bb_client keyless 3 10.99.0.1 "$d/keyless.img"
bb_server srv --key-file "$d/right.key" --rate "$BB_RATE" --clients 1 10.99.0.255 "$d/image"
lab_wait srv 75 || lab_fail "keyed bb-server $(bb_why srv)"
lab_wait right 30 || true
bb_check_clients "$d/image" "right:$d/right.img"
rc=0; lab_wait wrong 30 || rc=$?
(( rc == 5 )) || lab_fail "wrong-key client: exit $rc, expected 5 ($(lab_tail wrong 2))"
grep -q "data heard, but not authenticated with your key" "$LAB_LOGDIR/wrong.err" ||
    lab_fail "wrong-key client did not say why: $(lab_tail wrong 3)"
[[ $(sum "$d/wrong.img") == "$before_wrong" ]] || lab_fail "the wrong-key client changed its target"
rc=0; lab_wait keyless 30 || rc=$?
(( rc == 5 )) || lab_fail "keyless client: exit $rc, expected 5 ($(lab_tail keyless 2))"
grep -q "the server requires a key" "$LAB_LOGDIR/keyless.err" ||
    lab_fail "keyless client did not say the server requires a key: $(lab_tail keyless 3)"
[[ $(sum "$d/keyless.img") == "$before_keyless" ]] || lab_fail "the keyless client changed its target"
grep -q "session keyed" "$LAB_LOGDIR/srv.err" || lab_fail "server summary does not say the session was keyed"
echo "keyed: client with the key byte-exact; wrong key and no key: nothing written, reason said"

# 2. Keyless server.
BB_CLIENT_TIMEOUT=12 bb_client plain 1 10.99.0.1 "$d/plain.img"
BB_CLIENT_TIMEOUT=12 bb_client keyed 4 --key-file "$d/right.key" 10.99.0.1 "$d/keyed-vs-plain.img"
bb_server srv2 --rate "$BB_RATE" --clients 1 10.99.0.255 "$d/image"
lab_wait srv2 75 || lab_fail "keyless bb-server $(bb_why srv2)"
lab_wait plain 30 || true
bb_check_clients "$d/image" "plain:$d/plain.img"
rc=0; lab_wait keyed 30 || rc=$?
(( rc == 5 )) || lab_fail "keyed client of a keyless server: exit $rc, expected 5 ($(lab_tail keyed 2))"
[[ $(grep -c "data heard, but not authenticated with your key" "$LAB_LOGDIR/keyed.err") -ge 1 ]] ||
    lab_fail "keyed client did not say the data was not authenticated: $(lab_tail keyed 3)"
[[ $(sum "$d/keyed-vs-plain.img") == "$before_plain" ]] || lab_fail "the keyed client changed its target"
echo "keyless server: keyless client byte-exact; keyed client ignored it and said so"

# 3. A prepared image announces its digest at once: a wrong pin never writes.
"$BB_SERVER" --prepare "$d/image" 2>"$LAB_LOGDIR/prepare.err" || lab_fail "bb-server --prepare: $(tail -n 2 "$LAB_LOGDIR/prepare.err")"
digest=$(sed -n 's/.*image digest \([0-9a-f]\{64\}\).*/\1/p' "$LAB_LOGDIR/prepare.err" | head -n 1)
[[ -n "$digest" ]] || lab_fail "no image digest in bb-server --prepare's output"
wrongpin=$(printf '%s' "$digest" | tr '0-9a-f' '1-9a-f0')
BB_CLIENT_TIMEOUT=12 bb_client pinned 1 --key-file "$d/right.key" --digest "$digest" 10.99.0.1 "$d/pinned.img"
BB_CLIENT_TIMEOUT=12 bb_client badpin 2 --key-file "$d/right.key" --digest "$wrongpin" 10.99.0.1 "$d/badpin.img"
bb_server srv3 --key-file "$d/right.key" --rate "$BB_RATE" --clients 1 10.99.0.255 "$d/image"
lab_wait srv3 75 || lab_fail "prepared keyed bb-server $(bb_why srv3)"
lab_wait pinned 30 || true
bb_check_clients "$d/image" "pinned:$d/pinned.img"
rc=0; lab_wait badpin 30 || rc=$?
(( rc == 5 )) || lab_fail "client with a wrong pin: exit $rc, expected 5 ($(lab_tail badpin 2))"
grep -q "another image digest than the pinned $wrongpin" "$LAB_LOGDIR/badpin.err" ||
    lab_fail "client with a wrong pin did not name it: $(lab_tail badpin 3)"
[[ $(sum "$d/badpin.img") == "$before_badpin" ]] || lab_fail "the client with a wrong pin changed its target"
echo "pinned digest: the right pin verifies; a wrong one is refused before any write"
