#!/usr/bin/env bash
# A thousand clients on real sockets: bb-load runs 1,000 simulated machines in one client
# namespace (1% loss each, drawn per machine), sending from 125 addresses of that namespace
# (8 machines per address: the server holds at most 8 unfinished clients per source address). The server's
# summary must list all 1,000 as verified (the same ids bb-load verified), and its first-pass
# sending rate must stay within 10% of its rate to one real bb-client (not below 90% of it). Prints the server's
# rate and CPU time with 1 and with 1,000 clients.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_load
N="${LOAD_CLIENTS:-1000}"
SOURCES="${LOAD_SOURCES:-125}"
RATE="${LOAD_RATE:-100M}"
MIB="${LOAD_MIB:-64}"
lab_up 1
d=$(lab_tmpdir); img="$d/image"; lab_make_image "$img" "$MIB"

# Extra addresses on the client namespace's eth0 (10.99.0.100...), one control socket each.
srcs=()
for ((i = 0; i < SOURCES; i++)); do
    a="10.99.0.$((100 + i))"
    "$NETLAB" exec c1 ip addr add "$a/24" dev eth0
    srcs+=("$a")
done
src_list=$(IFS=,; echo "${srcs[*]}")

# field NAME FILE: a number from the server's JSON summary
field() { sed -n "s/^  \"$1\": \([0-9.]*\),\$/\1/p" "$2"; }

# The machine is shared (2 cores, other builds): both servers run at a higher priority, so
# that what is measured is the server's work more than the scheduler's. The load average is
# printed with the figures: compare them only on a quiet machine.
server() { local n="$1"; shift; lab_bg "$n" srv nice -n -15 "$BB_SERVER" --timeout 60 "$@"; }

# Baseline: one real client.
bb_client one 1 10.99.0.1 "$d/one.img"
server srv1 --rate "$RATE" --clients 1 --summary-json "$d/srv1.json" 10.99.0.255 "$img"
lab_wait srv1 90 || lab_fail "baseline bb-server $(bb_why srv1)"
lab_wait one 30 || true
bb_check_clients "$img" "one:$d/one.img"
rm -f "$d/one.img"

# 1,000 machines in c1.
lab_bg load c1 "$BB_LOAD" --clients "$N" --loss 1% --source "$src_list" --timeout 30 \
    --deadline 100 --summary-json "$d/load.json" 10.99.0.1
server srvn --rate "$RATE" --clients "$N" --min-clients "$N" --wait 30 \
    --summary-json "$d/srvn.json" 10.99.0.255 "$img"
lab_wait srvn 100 || lab_fail "bb-server with $N load clients $(bb_why srvn)"
lab_wait load 60 || lab_fail "bb-load exit $(lab_rc load): $(head -n 3 "$LAB_LOGDIR/load.out" | tr '\n' ' ')"
cat "$LAB_LOGDIR/load.out"

verified=$(field clients_verified "$d/srvn.json")
[[ "$verified" == "$N" ]] || lab_fail "server summary: $verified of $N clients verified"
# The same machines on both sides: every id the server lists as OK is one bb-load verified.
grep -o '"id": "[0-9a-f]*", "state": "OK"' "$d/srvn.json" | cut -d'"' -f4 | sort >"$d/srv.ids"
grep -o '"id": "[0-9a-f]*", "source": [0-9]*, "state": "OK"' "$d/load.json" | cut -d'"' -f4 | sort >"$d/load.ids"
[[ $(wc -l <"$d/srv.ids") == "$N" ]] || lab_fail "server summary lists $(wc -l <"$d/srv.ids") OK rows, not $N"
cmp -s "$d/srv.ids" "$d/load.ids" || lab_fail "the server's verified ids differ from bb-load's"
# And from every source address.
addrs=$(grep -o '"address": "[0-9.]*' "$d/srvn.json" | cut -d'"' -f4 | sort -u | wc -l)
[[ "$addrs" == "$SOURCES" ]] || lab_fail "clients came from $addrs addresses, not $SOURCES"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
r1=$(field forward_mbit_s "$d/srv1.json"); rn=$(field forward_mbit_s "$d/srvn.json")
c1=$(awk -v u="$(field cpu_user_s "$d/srv1.json")" -v s="$(field cpu_sys_s "$d/srv1.json")" 'BEGIN{print u+s}')
cn=$(awk -v u="$(field cpu_user_s "$d/srvn.json")" -v s="$(field cpu_sys_s "$d/srvn.json")" 'BEGIN{print u+s}')
e1=$(field elapsed_s "$d/srv1.json"); en=$(field elapsed_s "$d/srvn.json")
echo "server, 1 client:      first pass ${r1} Mbit/s, CPU ${c1} s in ${e1} s, $(field status_reports "$d/srv1.json") status reports"
echo "server, $N clients: first pass ${rn} Mbit/s, CPU ${cn} s in ${en} s, $(field status_reports "$d/srvn.json") status reports, wire ratio $(field wire_ratio "$d/srvn.json")"
awk -v a="$r1" -v b="$rn" 'BEGIN { exit !(a > 0 && b >= 0.9 * a) }' \
    || lab_fail "first-pass rate with $N clients ${rn} Mbit/s is below 90% of ${r1} Mbit/s with one (load average $(cut -d' ' -f1 /proc/loadavg))"
