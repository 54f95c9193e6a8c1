//! The command-line value parsers: bb-client's argument parser (argv as NUL-separated
//! words), bb-server's rate, size, level, duration and count parsers, and bb-sim's size,
//! rate and duration parsers, on arbitrary bytes: never a panic, every accepted value in
//! the range its option documents. (A key parser joins here when --key-file lands.)
#![no_main]

use bb_proto::wire::{MAX_K, MAX_SYMBOL_SIZE, SYMBOL_ALIGN};
use libfuzzer_sys::fuzz_target;

// bb-client is a no_std binary and bb-server has no library: their pure parsers are
// included as they are.
#[allow(dead_code)]
#[path = "../../client-static/src/args.rs"]
mod client_args;
#[allow(dead_code)]
#[path = "../../client-static/src/parse.rs"]
mod parse;
#[allow(dead_code)]
#[path = "../../server/src/cli/values.rs"]
mod server_values;
#[allow(dead_code)]
#[path = "../../sim/src/args.rs"]
mod sim_args;

fuzz_target!(|input: &[u8]| {
    let argv: Vec<&[u8]> = input.split(|&b| b == 0).collect();
    if let Ok(client_args::Command::Receive(o)) = client_args::parse(argv.iter().copied()) {
        assert!(o.port != 0 && o.control_port != 0);
        assert!((1..=86_400).contains(&o.timeout_s));
    }

    let Ok(s) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(bps) = server_values::parse_rate(s) {
        assert!(
            (10_000..=1_000_000_000_000).contains(&bps),
            "{s:?} -> {bps}"
        );
    }
    if let Ok(size) = server_values::parse_symbol_size(s) {
        assert!(size > 0 && size % SYMBOL_ALIGN == 0 && size <= MAX_SYMBOL_SIZE);
    }
    if let Ok(k) = server_values::parse_block_symbols(s) {
        assert!((1..=MAX_K).contains(&k));
    }
    if let Ok(Some(level)) = server_values::parse_level(s) {
        assert!((1..=19).contains(&level));
    }
    if let Ok(secs) = server_values::parse_seconds("wait", s) {
        assert!((0.0..=1e7).contains(&secs));
    }
    let _ = server_values::parse_num::<u16>("port", s);

    if let Some(bytes) = sim_args::parse_size(s) {
        assert!(bytes < 1 << 63);
    }
    if let Some(bps) = sim_args::parse_rate(s) {
        assert!(bps >= 1);
    }
    let _ = sim_args::parse_duration(s);
    if let Some(f) = sim_args::parse_fraction(s) {
        assert!((0.0..=1.0).contains(&f));
    }
});
