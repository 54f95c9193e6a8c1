//! A sender fed arbitrary control datagrams between transmissions, over an image whose
//! blocks the input makes zero or raw: the invariants of common/tx.rs (never a panic, every
//! scheduled symbol belongs to a non-zero block of the image, every zero map names exactly
//! the zero blocks of its span, the transmissions, events and deadlines of one instant
//! bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/datagrams.rs"]
mod datagrams;
#[path = "common/packets.rs"]
mod packets;
#[path = "common/tx.rs"]
mod tx;

fuzz_target!(|input: &[u8]| tx::run(input, None));
