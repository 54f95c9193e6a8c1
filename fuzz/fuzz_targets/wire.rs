//! Every parser on arbitrary bytes (header, CRC and all, keyless): never a panic, and what
//! parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/packets.rs"]
mod packets;
use packets::{Auth, round_trip};

fuzz_target!(|pkt: &[u8]| {
    round_trip(pkt, Auth::Keyless);
    round_trip(pkt, Auth::Keyed(packets::KEY));
});
