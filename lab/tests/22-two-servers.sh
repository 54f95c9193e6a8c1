#!/usr/bin/env bash
# Two servers with different images on one LAN, same ports, both broadcasting to
# 10.99.0.255: server A in srv (10.99.0.1), server B in c9 (10.99.0.19). Clients 1-4 pass
# SERVER=A, clients 5-8 SERVER=B. Every client must get its own server's image, byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_require_root
lab_require_bins
lab_up 9
d=$(lab_tmpdir)
lab_make_image "$d/imgA" 32
lab_make_image "$d/imgB" 32
na=(); nb=()
for k in 1 2 3 4; do bb_client "a$k" "$k" 10.99.0.1 "$d/a$k.img"; na+=("a$k:$d/a$k.img"); done
for k in 5 6 7 8; do bb_client "b$k" "$k" 10.99.0.19 "$d/b$k.img"; nb+=("b$k:$d/b$k.img"); done
bb_server srva --rate 100M --clients 4 10.99.0.255 "$d/imgA"
bb_server_on srvb c9 --rate 100M --clients 4 10.99.0.255 "$d/imgB"
ra=0; rb=0
lab_wait srva 75 || ra=$?
lab_wait srvb 75 || rb=$?
for k in 1 2 3 4; do lab_wait "a$k" 30 || true; done
for k in 5 6 7 8; do lab_wait "b$k" 30 || true; done
(( ra == 0 )) || lab_fail "server A: $(bb_why srva)"
(( rb == 0 )) || lab_fail "server B: $(bb_why srvb)"
bb_check_clients "$d/imgA" "${na[@]}"
bb_check_clients "$d/imgB" "${nb[@]}"
echo "server A: clients 1-4 byte-exact; server B: clients 5-8 byte-exact"
