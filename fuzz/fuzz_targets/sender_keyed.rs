//! The sender target with a key: a sender holding the fuzz key, fed status reports and
//! results that the input tags with the key of the client they name, with another key, or
//! not at all (common/datagrams.rs `keyed_datagrams`). The invariants of common/tx.rs, and:
//! everything it sends opens under the server's key; only datagrams tagged with the right
//! key change anything (every other one is dropped as malformed, with no event and no moved
//! deadline).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/datagrams.rs"]
mod datagrams;
#[path = "common/packets.rs"]
mod packets;
#[path = "common/tx.rs"]
mod tx;

fuzz_target!(|input: &[u8]| tx::run(input, Some(packets::KEY)));
