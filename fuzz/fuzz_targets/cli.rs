//! The command-line value parsers: bb-client's argument parser (argv as NUL-separated
//! words), bb-server's rate, size, level, duration and count parsers, and bb-sim's size,
//! rate and duration parsers, and the key and digest parsers of both (`--key-file`
//! contents, `--digest`), on arbitrary bytes: never a panic, every accepted value in the
//! range its option documents.
#![no_main]

use bb_proto::wire::auth::{KEY_LEN, PresharedKey, parse_hex32};
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
        // The key file is named, not read, by the parser; a digest comes from some word
        // (or the value after "--digest=") that is 64 hex digits.
        assert!(o.key.is_none());
        assert!(o.key_file.is_none_or(|f| !f.is_empty()));
        if let Some(d) = o.digest {
            assert!(argv.iter().any(|w| {
                let v = w.strip_prefix(b"--digest=").unwrap_or(w);
                parse_hex32(v) == Ok(d)
            }));
        }
    }

    // A key file (bb-server and bb-client --key-file): exactly 32 raw bytes, or 64 hex
    // digits with whitespace anywhere; what is accepted is exactly those bytes or digits.
    let hex_digits: Vec<u8> = input
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let hex = parse_hex32(input);
    if let Ok(d) = hex {
        assert_eq!(hex_digits.len(), 64);
        let mut again = [0u8; 64];
        PresharedKey::from_bytes(d).to_hex(&mut again);
        assert!(again.eq_ignore_ascii_case(&hex_digits), "{input:?}");
    }
    match PresharedKey::parse(input) {
        Ok(k) if input.len() == KEY_LEN => {
            assert_eq!(k, PresharedKey::from_bytes(input.try_into().unwrap()))
        }
        Ok(k) => assert_eq!(Ok(k), hex.map(PresharedKey::from_bytes)),
        Err(_) => assert!(input.len() != KEY_LEN && hex.is_err()),
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
