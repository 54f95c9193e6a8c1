#!/usr/bin/env bash
# netboot/tests/deb.sh: `make deb` builds the package; it installs on this machine (dpkg -i),
# each program answers --version from /usr/bin, bb-pxe finds the installed netboot files,
# and the package is removed again (dpkg -r) leaving none of its files.
# Skips (exit 0) when not root, without dpkg, or when a package named broadband is already
# installed (it is not ours to remove).
set -uo pipefail
cd "$(dirname "$0")/../.."
PASS=0; FAIL=0
ok() { echo "ok - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }
summary() { echo "deb test: $PASS passed, $FAIL failed"; }
if [[ $(id -u) -ne 0 ]] || ! command -v dpkg >/dev/null; then
    echo "deb.sh: skipped: needs root and dpkg"; summary; exit 0
fi
if dpkg-query -W -f='${Status}' broadband 2>/dev/null | grep -q 'ok installed'; then
    echo "deb.sh: skipped: a broadband package is installed already (dpkg -r broadband first)"; summary; exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"; dpkg-query -W broadband >/dev/null 2>&1 && dpkg -r broadband >/dev/null 2>&1' EXIT
if make -s deb >"$log" 2>&1; then
    deb=$(sed -n 's/^deb: \(.*\.deb\) (.*/\1/p' "$log" | tail -n1)
    ok "make deb: $(tail -n1 "$log")"
else
    bad "make deb: $(tail -n 5 "$log" | tr '\n' '|')"; summary; exit 1
fi
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/bb-server ./usr/bin/bb-client ./usr/bin/bb-pxe \
         ./usr/share/broadband/netboot/vmlinuz ./usr/share/broadband/netboot/bb-initramfs.img \
         ./usr/share/broadband/netboot/boot.ipxe ./usr/share/doc/broadband/NETBOOT.md; do
    grep -q " $f\$" <<<"$contents" || bad "the package lacks $f"
done
if dpkg -i "$deb" >"$log" 2>&1; then ok "dpkg -i $deb"; else bad "dpkg -i: $(tail -n 3 "$log" | tr '\n' '|')"; summary; exit 1; fi
want=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
for p in bb-server bb-client bb-pxe; do
    v=$(/usr/bin/$p --version 2>&1 | head -n1)
    if [[ $v == "$p $want"* ]]; then ok "/usr/bin/$p --version: $v"; else bad "/usr/bin/$p --version: '$v' (want '$p $want')"; fi
done
# bb-pxe looks in /usr/share/broadband/netboot: with an interface that cannot exist it must
# fail on the interface, not on missing netboot files.
e=$(/usr/bin/bb-pxe bbnosuch0 /dev/null 2>&1); rc=$?
if [[ $rc == 5 && $e == *'no network interface "bbnosuch0"'* ]]; then ok "installed bb-pxe names a missing interface (exit 5)"
else bad "installed bb-pxe: exit $rc: $e"; fi
if dpkg -r broadband >"$log" 2>&1 && [[ ! -e /usr/bin/bb-pxe && ! -e /usr/share/broadband/netboot/vmlinuz ]]; then
    ok "dpkg -r broadband removed the programs and netboot files"
else
    bad "dpkg -r broadband: $(tail -n 3 "$log" | tr '\n' '|')"
fi
summary
(( FAIL == 0 ))
