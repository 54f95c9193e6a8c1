#!/usr/bin/env bash
# Broadcast to 8 clients, no loss: every output byte-exact.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
bb_broadcast_test 10.99.0.255 0 32 8
