//! Parsers of single option values (rates, sizes, levels, durations, numbers): pure
//! functions of one string, kept apart from the option table so that the fuzzer (fuzz/)
//! includes this file as it is. Errors name the option and the value expected.

use bb_proto::wire::{DATA_OVERHEAD, MAX_K, MAX_SYMBOL_SIZE, SYMBOL_ALIGN};

/// Parses a rate in bits per second: `500M`, `1G`, `80m`, `1.5G`, `250000`, `100Mbit`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let mut body = lower.as_str();
    for unit in ["bit/s", "bits/s", "bps", "bit", "bits", "b/s"] {
        if let Some(b) = body.strip_suffix(unit) {
            body = b;
            break;
        }
    }
    if t.ends_with('B') || t.ends_with("B/s") {
        return Err(format!(
            "rate '{s}': rates are in bits per second (e.g. 500M), not bytes"
        ));
    }
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1e3),
        Some('m') => (&body[..body.len() - 1], 1e6),
        Some('g') => (&body[..body.len() - 1], 1e9),
        Some('t') => (&body[..body.len() - 1], 1e12),
        _ => (body, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        format!("rate '{s}': expected a number with an optional k, M or G suffix (e.g. 500M, 1.5G)")
    })?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("rate '{s}': must be positive"));
    }
    let bps = v * mult;
    if bps < 10_000.0 {
        return Err(format!("rate '{s}': at least 10k bits/s"));
    }
    if bps > 1e12 {
        return Err(format!("rate '{s}': at most 1T bits/s"));
    }
    Ok(bps as u64)
}

pub fn parse_seconds(name: &str, s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("--{name} '{s}': expected a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e7).contains(&v) {
        return Err(format!(
            "--{name} '{s}': expected seconds between 0 and 10000000"
        ));
    }
    Ok(v)
}

pub fn parse_num<T: std::str::FromStr>(name: &str, s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("--{name} '{s}': expected a whole number"))
}

/// Parses `--compress LEVEL|off`.
pub fn parse_level(s: &str) -> Result<Option<i32>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(None);
    }
    match t.parse::<i32>() {
        Ok(l) if (1..=19).contains(&l) => Ok(Some(l)),
        _ => Err(format!(
            "--compress '{s}': a zstd level from 1 to 19, or off"
        )),
    }
}

/// Parses `--symbol-size BYTES`: a multiple of the symbol alignment that fits a jumbo frame.
pub fn parse_symbol_size(s: &str) -> Result<u32, String> {
    let symbol_size = parse_num::<u32>("symbol-size", s)?;
    if symbol_size == 0 || symbol_size % SYMBOL_ALIGN != 0 || symbol_size > MAX_SYMBOL_SIZE {
        return Err(format!(
            "--symbol-size {symbol_size}: must be a multiple of {SYMBOL_ALIGN} between {SYMBOL_ALIGN} and {MAX_SYMBOL_SIZE} \
             (1408 for a 1500 MTU, 8896 for 9000-byte jumbo frames; datagrams are {DATA_OVERHEAD} bytes larger)"
        ));
    }
    Ok(symbol_size)
}

/// Parses `--block-symbols K`: source symbols per block, 1 to the protocol's maximum.
pub fn parse_block_symbols(s: &str) -> Result<u32, String> {
    let block_symbols = parse_num::<u32>("block-symbols", s)?;
    if block_symbols == 0 || block_symbols > MAX_K {
        return Err(format!(
            "--block-symbols {block_symbols}: between 1 and {MAX_K}"
        ));
    }
    Ok(block_symbols)
}
