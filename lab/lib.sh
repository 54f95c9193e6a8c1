# lib.sh: bash helpers for the lab's tests and demo. Source it:  . "$(dirname "$0")/../lib.sh"
#
#   lab_require_root            exit $LAB_SKIP_RC (77) with a skip message when not root
#   lab_up N [netlab up args]   bring the lab up; teardown is guaranteed on exit, failure, ^C
#   lab_down                    tear down now (also done by the trap)
#   lab_bg NAME NODE CMD...     run CMD in NODE (srv | sw | cK) in the background; stdout,
#                               stderr, exit code, pid, start/end times go to $LAB_LOGDIR/NAME.*
#   lab_wait NAME [TIMEOUT]     wait for NAME, return its exit code (124 and kill on timeout)
#   lab_wait_all TIMEOUT NAME...  wait for all; return 0 only if all exited 0
#   lab_rc / lab_pid / lab_kill / lab_running / lab_elapsed / lab_end NAME
#   lab_wait_txbytes BYTES [TIMEOUT]   wait until the server has sent BYTES on eth0
#   lab_fail REASON             record the reason and exit 1
#   lab_tmpdir                  a temp dir removed at teardown
#   lab_losetup FILE            attach a loop device (detached at teardown), print its path
#   lab_make_image FILE MIB     random image
#   lab_require_fuse            exit 77 naming what is missing for lab/fusefail.py
#   lab_fusefail NAME BACKING [knobs]  mount fusefail.py over BACKING (unmounted at teardown),
#                               print the path of its file; the daemon's pid: lab_pid NAME
#   lab_bins                    set BB_SERVER / BB_CLIENT / BB_LOAD (env overrides; else target dir)
#   lab_require_load            lab_require_bins + fail unless bb-load answers --help
#   lab_require_bins            lab_bins + fail unless both answer --help

LAB_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB_REPO="$(cd "$LAB_LIB_DIR/.." && pwd)"
NETLAB="$LAB_LIB_DIR/netlab.sh"
LAB_SKIP_RC=77
export LAB="${LAB:-bb}"

_LAB_CLEANED=0
_LAB_UP=0

lab_log() { echo "[$(date +%T)] $*" >&2; }

lab_require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "skipped: needs root to create network namespaces (ip netns)" >&2
        exit "$LAB_SKIP_RC"
    fi
    local t
    for t in ip nft tc python3; do
        command -v "$t" >/dev/null 2>&1 || {
            echo "skipped: '$t' not found (run scripts/install-deps.sh)" >&2
            exit "$LAB_SKIP_RC"
        }
    done
}

# Log directory of this test/demo run.
if [[ -z "${LAB_LOGDIR:-}" ]]; then
    LAB_LOGDIR="$(mktemp -d "/tmp/lab-${LAB}.XXXXXX")"
fi
mkdir -p "$LAB_LOGDIR"
export LAB_LOGDIR

_lab_cleanup() {
    local rc=$?
    (( _LAB_CLEANED )) && return $rc
    _LAB_CLEANED=1
    if (( _LAB_UP )); then
        "$NETLAB" down >/dev/null 2>&1 || true
    fi
    # Background wrappers end once their namespaced process is gone.
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
    wait 2>/dev/null || true
    local l
    # Mounts first (a loop mount's device goes with it), then loop devices, then temp dirs.
    if [[ -f "$LAB_LOGDIR/.mounts" ]]; then
        while read -r l; do
            [[ -n "$l" ]] && { umount "$l" 2>/dev/null || umount -l "$l" 2>/dev/null || true; }
        done <"$LAB_LOGDIR/.mounts"
        rm -f "$LAB_LOGDIR/.mounts"
    fi
    if [[ -f "$LAB_LOGDIR/.loops" ]]; then
        while read -r l; do losetup -d "$l" 2>/dev/null || true; done <"$LAB_LOGDIR/.loops"
        rm -f "$LAB_LOGDIR/.loops"
    fi
    if [[ -f "$LAB_LOGDIR/.tmpdirs" ]]; then
        while read -r l; do [[ -n "$l" ]] && rm -rf --one-file-system "$l"; done <"$LAB_LOGDIR/.tmpdirs"
        rm -f "$LAB_LOGDIR/.tmpdirs"
    fi
    rmdir "$LAB_LOGDIR" 2>/dev/null || true   # only if empty
    return $rc
}

_lab_install_trap() {
    trap '_lab_cleanup' EXIT
    trap '_lab_cleanup; trap - EXIT; exit 130' INT
    trap '_lab_cleanup; trap - EXIT; exit 143' TERM
    trap '_lab_cleanup; trap - EXIT; exit 129' HUP
}

lab_up() {
    "$NETLAB" down >/dev/null 2>&1 || true
    _LAB_UP=1
    "$NETLAB" up "$@" >"$LAB_LOGDIR/netlab-up.log" 2>&1 || {
        cat "$LAB_LOGDIR/netlab-up.log" >&2
        lab_fail "netlab up $* failed"
    }
}

lab_down() {
    "$NETLAB" down >/dev/null 2>&1 || true
    _LAB_UP=0
}

lab_fail() {
    echo "$*" >"$LAB_LOGDIR/reason"
    echo "FAIL: $*" >&2
    exit 1
}

lab_tmpdir() {
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/lab-${LAB}-data.XXXXXX")"
    echo "$d" >>"$LAB_LOGDIR/.tmpdirs"
    echo "$d"
}

# Temp dirs and loop devices are recorded in files under $LAB_LOGDIR (so that calls in a
# command substitution count too) and removed by the teardown.
lab_losetup() {
    local dev
    dev=$(losetup -f --show "$1") || return 1
    echo "$dev" >>"$LAB_LOGDIR/.loops"
    echo "$dev"
}

# The FUSE file system of lab/fusefail.py needs /dev/fuse, fusepy and libfuse2 (Debian:
# python3-fusepy and fuse, from scripts/install-deps.sh). Debian's module is `fusepy`, in
# the system python (a python3 earlier in PATH may not see it); PyPI's is `fuse`.
lab_require_fuse() {
    [[ -c /dev/fuse ]] || { echo "skipped: /dev/fuse not found (kernel without FUSE)" >&2; exit "$LAB_SKIP_RC"; }
    local py
    for py in python3 /usr/bin/python3; do
        if "$py" -c 'try:
    import fusepy
except ImportError:
    import fuse' >/dev/null 2>&1; then
            LAB_FUSE_PY="$py"
            return 0
        fi
    done
    echo "skipped: fusepy (with libfuse2) not found for python3: run scripts/install-deps.sh (python3-fusepy, fuse)" >&2
    exit "$LAB_SKIP_RC"
}

lab_fusefail() {
    local name="$1" backing="$2"; shift 2
    local base="$LAB_LOGDIR/$name" mnt i
    mnt=$(lab_tmpdir)
    echo "$mnt" >>"$LAB_LOGDIR/.mounts"
    rm -f "$base.ready" "$base.rc"
    (
        trap - EXIT INT TERM HUP
        set +e
        "$LAB_FUSE_PY" "$LAB_LIB_DIR/fusefail.py" --ready "$base.ready" "$@" "$backing" "$mnt" \
            >"$base.out" 2>"$base.err" </dev/null &
        echo $! >"$base.pid"
        wait $!
        echo $? >"$base.rc"
    ) >/dev/null &   # not the caller's stdout: a command substitution would wait for it
    for ((i = 0; i < 100; i++)); do
        [[ -e "$base.ready" ]] && { echo "$mnt/disk"; return 0; }
        [[ -e "$base.rc" ]] && break
        sleep 0.1
    done
    echo "fusefail $name did not mount within 10 s: $(tail -n 3 "$base.err" 2>/dev/null | tr '\n' ' ')" >&2
    return 1
}

lab_ns() {
    case "$1" in
        srv) echo "${LAB}srv" ;;
        sw) echo "${LAB}sw" ;;
        c[0-9]*) echo "${LAB}$1" ;;
        *) echo "$1" ;;
    esac
}

lab_bg() {
    local name="$1" node="$2"; shift 2
    local ns; ns=$(lab_ns "$node")
    local base="$LAB_LOGDIR/$name"
    rm -f "$base.rc" "$base.rc.tmp" "$base.pid" "$base.end" "$base.start" "$base.out" "$base.err"
    (
        trap - EXIT INT TERM HUP
        set +e +u   # a failing program must still get its .rc written
        date +%s.%N >"$base.start"
        ip netns exec "$ns" "$@" >"$base.out" 2>"$base.err" </dev/null &
        echo $! >"$base.pid"
        wait $! 2>/dev/null   # its exit status is the record; no "Killed" line from bash
        rc=$?
        date +%s.%N >"$base.end"
        echo "$rc" >"$base.rc.tmp" && mv -f "$base.rc.tmp" "$base.rc"   # atomic: never seen empty
    ) &
    # Wait for the pid file so that lab_kill works right after lab_bg.
    local i
    for ((i = 0; i < 100; i++)); do [[ -s "$base.pid" ]] && break; sleep 0.01; done
}

lab_pid() { cat "$LAB_LOGDIR/$1.pid" 2>/dev/null; }
lab_rc() { cat "$LAB_LOGDIR/$1.rc" 2>/dev/null; }
lab_running() { [[ -f "$LAB_LOGDIR/$1.pid" && ! -f "$LAB_LOGDIR/$1.rc" ]]; }
lab_end() { cat "$LAB_LOGDIR/$1.end" 2>/dev/null; }
lab_elapsed() {
    local s e
    s=$(cat "$LAB_LOGDIR/$1.start" 2>/dev/null) || return 1
    e=$(cat "$LAB_LOGDIR/$1.end" 2>/dev/null) || e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f\n", e - s }'
}

lab_kill() {
    local pid; pid=$(lab_pid "$1")
    [[ -n "$pid" ]] && kill "-${2:-TERM}" "$pid" 2>/dev/null
}

lab_wait() {
    local name="$1" timeout="${2:-120}"
    local rcf="$LAB_LOGDIR/$name.rc"
    local deadline=$(( $(date +%s) + timeout ))
    while [[ ! -f "$rcf" ]]; do
        if (( $(date +%s) >= deadline )); then
            lab_log "$name: timeout after ${timeout}s, killing"
            lab_kill "$name" TERM
            sleep 1
            lab_kill "$name" KILL
            local i=0
            while [[ ! -f "$rcf" ]] && (( i++ < 50 )); do sleep 0.1; done
            echo "timeout after ${timeout}s" >>"$LAB_LOGDIR/$name.err"
            return 124
        fi
        sleep 0.1
    done
    local rc; rc=$(cat "$rcf")
    return "${rc:-1}"
}

lab_wait_all() {
    local timeout="$1"; shift
    local deadline=$(( $(date +%s) + timeout )) n ok=0 left
    for n in "$@"; do
        left=$(( deadline - $(date +%s) )); (( left < 1 )) && left=1
        lab_wait "$n" "$left" || ok=1
    done
    return $ok
}

lab_txbytes() { "$NETLAB" txbytes; }

lab_wait_txbytes() {
    local want="$1" timeout="${2:-60}"
    local deadline=$(( $(date +%s) + timeout ))
    while (( $("$NETLAB" txbytes) < want )); do
        (( $(date +%s) >= deadline )) && return 1
        sleep 0.05
    done
}

lab_make_image() {
    head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom >"$1"
}

lab_bins() {
    local tdir="${CARGO_TARGET_DIR:-$LAB_REPO/target}"
    BB_SERVER="${BB_SERVER:-$tdir/release/bb-server}"
    # The static musl client from `make client` when it exists (what machines run), else
    # the host build.
    if [[ -z "${BB_CLIENT:-}" && -x "$LAB_REPO/build/bb-client" ]]; then
        BB_CLIENT="$LAB_REPO/build/bb-client"
    fi
    BB_CLIENT="${BB_CLIENT:-$tdir/release/bb-client}"
    BB_LOAD="${BB_LOAD:-$tdir/release/bb-load}"
    export BB_SERVER BB_CLIENT BB_LOAD
}

lab_require_bins() {
    lab_bins
    [[ -x "$BB_SERVER" ]] || lab_fail "bb-server not built ($BB_SERVER)"
    [[ -x "$BB_CLIENT" ]] || lab_fail "bb-client not built ($BB_CLIENT)"
    "$BB_SERVER" --help >/dev/null 2>&1 || lab_fail "bb-server --help fails ($BB_SERVER)"
    "$BB_CLIENT" --help >/dev/null 2>&1 || lab_fail "bb-client --help fails ($BB_CLIENT)"
}

lab_require_load() {
    lab_require_bins
    [[ -x "$BB_LOAD" ]] || lab_fail "bb-load not built ($BB_LOAD): cargo build --release -p bb-sim --bin bb-load"
    "$BB_LOAD" --help >/dev/null 2>&1 || lab_fail "bb-load --help fails ($BB_LOAD)"
}

# Print the tail of a background job's stderr (for failure messages).
lab_tail() { tail -n "${2:-5}" "$LAB_LOGDIR/$1.err" 2>/dev/null | tr '\n' ' '; }

_lab_install_trap

# ---------------------------------------------------------------------------------------
# broadband helpers

BB_RATE="${BB_RATE:-200M}"
BB_CLIENT_TIMEOUT="${BB_CLIENT_TIMEOUT:-30}"

# The server gives up (and names who did not finish) this long after sending started.
BB_SERVER_TIMEOUT="${BB_SERVER_TIMEOUT:-45}"

# bb_server NAME [server args...]          (runs in srv)
bb_server() { local n="$1"; shift; lab_bg "$n" srv "$BB_SERVER" --timeout "$BB_SERVER_TIMEOUT" "$@"; }
# bb_server_on NAME NODE [server args...]  (a server in another node, e.g. a second server)
bb_server_on() {
    local n="$1" node="$2"; shift 2
    lab_bg "$n" "$node" "$BB_SERVER" --timeout "$BB_SERVER_TIMEOUT" "$@"
}
# bb_why NAME: why a server failed: exit code, its summary line and the clients not OK
bb_why() {
    local f="$LAB_LOGDIR/$1.err"
    echo "exit $(lab_rc "$1"): $(grep -m1 'summary:' "$f" 2>/dev/null | sed 's/^bb-server summary: //')" \
        "$(grep -E '^ +[0-9.]+:[0-9]+ ' "$f" 2>/dev/null | grep -v ' OK ' | awk '{$1=$1; print}' | head -n 4 | tr '\n' ';')" \
        "$( [[ -n "$(lab_rc "$1")" ]] || lab_tail "$1" 2)"
}
# bb_client NAME K [client args...]        (client args include SERVER and OUTPUT)
bb_client() {
    local n="$1" k="$2"; shift 2
    lab_bg "$n" "c$k" "$BB_CLIENT" --timeout "$BB_CLIENT_TIMEOUT" "$@"
}

# bb_cmp FILE IMAGE: byte-exact (an output at least as large as the image whose first
# image-size bytes equal the image -- a block device may be larger)
bb_cmp() {
    local out="$1" img="$2" isz
    isz=$(stat -c %s "$img")
    if [[ -b "$out" ]]; then
        cmp -s -n "$isz" "$out" "$img"
    else
        [[ $(stat -c %s "$out" 2>/dev/null || echo -1) == "$isz" ]] && cmp -s "$out" "$img"
    fi
}

# bb_check_clients IMAGE NAME:FILE... : every client exited 0 and its output is byte-exact
bb_check_clients() {
    local img="$1"; shift
    local e n f rc bad=()
    for e in "$@"; do
        n="${e%%:*}"; f="${e#*:}"
        rc=$(lab_rc "$n")
        if [[ "$rc" != 0 ]]; then
            bad+=("$n exit ${rc:-none} ($(lab_tail "$n" 2))")
        elif ! bb_cmp "$f" "$img"; then
            bad+=("$n output differs from the image ($(stat -c %s "$f" 2>/dev/null || echo missing) bytes)")
        fi
    done
    if (( ${#bad[@]} )); then
        printf '%s\n' "${bad[@]}" >&2
        lab_fail "${bad[*]}"
    fi
}

# bb_broadcast_test DEST LOSS MIB N: N clients, DEST = 10.99.0.255 or a multicast group
bb_broadcast_test() {
    local dest="$1" loss="$2" mib="$3" n="$4"
    lab_require_root
    lab_require_bins
    lab_up "$n" --loss "$loss"
    local d img k grp=() names=()
    d=$(lab_tmpdir)
    img="$d/image"
    lab_make_image "$img" "$mib"
    [[ "$dest" == 2[2-3][0-9].* ]] && grp=(--group "$dest")
    for ((k = 1; k <= n; k++)); do
        bb_client "c$k" "$k" "${grp[@]}" 10.99.0.1 "$d/c$k.img"
        names+=("c$k:$d/c$k.img")
    done
    local t0; t0=$(date +%s.%N)
    bb_server srv --rate "$BB_RATE" --clients "$n" "$dest" "$img"
    lab_wait srv 75 || lab_fail "bb-server $(bb_why srv)"
    for ((k = 1; k <= n; k++)); do lab_wait "c$k" 30 || true; done
    bb_check_clients "$img" "${names[@]}"
    bb_summary "$img" "$t0"
}

# bb_summary IMAGE T0: elapsed time, server tx bytes / image size, drops per client
bb_summary() {
    local img="$1" t0="$2" tx isz
    tx=$("$NETLAB" txbytes)
    isz=$(stat -c %s "$img")
    awk -v t0="$t0" -v t1="$(date +%s.%N)" -v tx="$tx" -v s="$isz" 'BEGIN {
        printf "elapsed %.1fs, server tx %d bytes = %.3f x image (%d bytes)\n", t1 - t0, tx, tx / s, s }'
    local drops="" k
    for k in $("$NETLAB" list | sed -n "s/^${LAB}c\([0-9]*\)$/\1/p"); do drops+=" c$k=$("$NETLAB" drops "$k")"; done
    echo "nft drops:$drops"
}
