//! A bound receiver fed arbitrary datagrams (header and CRC made valid half the time, so the
//! field checks are reached; data packets and zero maps most often): the invariants of
//! common/rx.rs (no panic, no write outside the image or twice, bounded work per step).
#![no_main]

use bb_proto::wire::Geometry;
use libfuzzer_sys::fuzz_target;

#[path = "common/datagrams.rs"]
#[allow(dead_code)]
mod datagrams;
#[path = "common/packets.rs"]
mod packets;
#[path = "common/rx.rs"]
mod rx;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the sink: in order (a stream) or any order (a disk), and
    // whether its flush fails.
    let Some((&mode, input)) = input.split_first() else {
        return;
    };
    let g = Geometry::new(5000, 64, 8).unwrap();
    let pkts = datagrams::datagrams(input, rx::SESSION, &rx::CLIENT_TYPES);
    rx::run(
        g,
        mode & 1 == 1,
        mode & 2 == 2,
        None,
        pkts.into_iter().map(|(_, p)| (p, true)),
    );
});
