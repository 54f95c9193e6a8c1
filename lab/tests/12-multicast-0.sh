#!/usr/bin/env bash
# Multicast (239.99.0.1) to 8 clients, no loss: every output byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
bb_broadcast_test 239.99.0.1 0 32 8
