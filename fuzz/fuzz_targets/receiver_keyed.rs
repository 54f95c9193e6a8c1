//! The receiver target with a key: a receiver holding the fuzz key, bound by a tagged
//! announce, fed datagrams that the input tags with that key, with another key, or not at
//! all (common/datagrams.rs `keyed_datagrams`). The invariants of common/rx.rs, and: only
//! datagrams tagged with the right key change anything (every other one is dropped as
//! malformed, with no write, no progress and no moved deadline).
#![no_main]

use bb_proto::wire::Geometry;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "common/datagrams.rs"]
mod datagrams;
#[path = "common/packets.rs"]
mod packets;
#[path = "common/rx.rs"]
mod rx;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let g = Geometry::new(5000, 64, 8).unwrap();
    let pkts = datagrams::keyed_datagrams(input, rx::SESSION, &rx::CLIENT_TYPES, &packets::KEY, 1);
    rx::run(
        g,
        mode & 1 == 1,
        mode & 2 == 2,
        Some(packets::KEY),
        pkts.into_iter().map(|d| (d.bytes, d.authentic)),
    );
});
