#!/usr/bin/env bash
# The forger of test 45 against a session with a pre-shared key (docs/SECURITY.md): every
# attack, those that only a key can stop (a forged digest, a forged "verified" result, a
# spoofed session before the server starts) and "tamper" (real tagged data with a byte
# changed) included, with forged packets untagged or carrying a random tag. The three real
# clients verify byte-exact, the server's summary names exactly them as verified, the
# attacked transfer takes at most twice the clean keyed one, and the server counts the
# packets it refused as not authenticated.
FORGER_KEYED=1 exec bash "$(dirname "$0")/45-forger.sh"
