//! Announce packets: a fuzzed body behind a valid header and CRC (keyless): never a panic, and
//! every body that parses re-emits to the same bytes.
#![no_main]

use bb_proto::wire::PacketType;
use libfuzzer_sys::fuzz_target;

#[path = "common/packets.rs"]
mod packets;
use packets::{Auth, fuzz_type};

fuzz_target!(|body: &[u8]| fuzz_type(PacketType::Announce, body, Auth::Keyless));
