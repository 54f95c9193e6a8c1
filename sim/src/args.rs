//! Command-line options of bb-sim.

use bb_proto::fec::DEFAULT_K;
use bb_proto::receiver::MAX_SLOTS;
use bb_proto::wire::DEFAULT_SYMBOL_SIZE;
use std::fmt;

pub const USAGE: &str = "\
bb-sim: drive one broadband sender and N receivers over a simulated broadcast medium.

Usage: bb-sim [OPTIONS]

Every receiver's output is compared byte for byte with the image. The run is deterministic
for a given --seed. The last line of output is one line of key=value pairs.

Options:
  --clients N          receivers (default 10)
  --loss P             independent loss per receiver, e.g. 1% or 0.01 (default 1%)
  --burst B            mean loss burst length in packets; >1 gives Gilbert-Elliott bursts (default 1)
  --up-loss P          loss of client-to-server packets (default: same as --loss)
  --dup P              probability a packet is delivered twice (default 0)
  --reorder P          fraction of packets delayed by up to --reorder-window (default 0)
  --reorder-window D   extra delay of reordered packets (default 2ms)
  --delay D            one-way delay (default 200us)
  --delay-spread D     extra per-receiver delay, uniform in [0, D) (default 0)
  --rate R             link rate in bit/s, e.g. 1G, 500M (default 1G)
  --send-rate R        sender's rate ceiling (default: none; with --fixed-rate: --rate)
  --start-rate R       where the sender's rate starts, as the link speed a kernel reports,
                       or 'probe' to probe upward from 64 Mbit/s (default: --rate)
  --slow-clients N     receivers behind their own slower link (after the shared one): a
                       count or a percentage of --clients (default 0)
  --slow-rate R        the slow receivers' link rate, with a drop-tail queue of --queue
                       packets (default 50M)
  --rate-step R        the shared link's rate changes to R ...
  --rate-step-at F     ... at this fraction of the forward pass (default 50%)
  --fair               the sender's rate stays TCP-friendly (the TCP throughput equation
                       for the worst receiver's loss and round trip)
  --queue N            packets the bottleneck queue holds before dropping (default 1000)
  --image-size S       image size, e.g. 64MiB (default 64MiB)
  --symbol-size S      bytes per symbol, multiple of 64 (default 1408)
  --k K                source symbols per block (default 512)
  --slots N            block slots per receiver, 2..64 (default 16)
  --late-joiners N     receivers joining late: a count or a percentage of --clients (default 0)
  --join-at F          fraction of the forward pass at which they join (default 50%)
  --dead-clients N     receivers that die mid-way: a count or a percentage (default 0)
  --die-at F           fraction of the forward pass at which they die (default 50%)
  --zero-blocks F       fraction of the image's blocks that hold only zeros (default 0)
  --compressible       fill data blocks with text-like bytes (zstd shrinks them) instead of random
  --compress LEVEL     compress data blocks with zstd at LEVEL, or off (default off)
  --in-order           receivers hand out blocks strictly in order (as a stdout sink does)
  --no-proactive       no proactive repair in the forward pass
  --fixed-rate         the sender does not adapt its rate to reported loss
  --max-time D         give up after this much simulated time (default 3600s)
  --seed N             random seed (default 1)
  -v, --verbose        progress while running
  -h, --help           this text
";

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Options {
    pub clients: u32,
    pub loss: f64,
    pub burst: f64,
    pub up_loss: Option<f64>,
    pub dup: f64,
    pub reorder: f64,
    pub reorder_window_us: u64,
    pub delay_us: u64,
    pub delay_spread_us: u64,
    pub rate_bps: u64,
    pub send_rate_bps: Option<u64>,
    /// None: probe upward.
    pub start_rate_bps: Option<u64>,
    pub slow_clients: u32,
    pub slow_rate_bps: u64,
    pub rate_step_bps: Option<u64>,
    pub rate_step_at: f64,
    pub fair: bool,
    pub queue: u32,
    pub image_size: u64,
    pub symbol_size: u32,
    pub k: u32,
    pub slots: usize,
    pub late_joiners: u32,
    pub join_at: f64,
    pub dead_clients: u32,
    pub die_at: f64,
    pub proactive: bool,
    pub in_order: bool,
    pub zero_blocks: f64,
    pub compressible: bool,
    /// zstd level, None: off.
    pub compress: Option<i32>,
    pub adapt_rate: bool,
    pub max_time_us: u64,
    pub seed: u64,
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clients: 10,
            loss: 0.01,
            burst: 1.0,
            up_loss: None,
            dup: 0.0,
            reorder: 0.0,
            reorder_window_us: 2_000,
            delay_us: 200,
            delay_spread_us: 0,
            rate_bps: 1_000_000_000,
            send_rate_bps: None,
            start_rate_bps: Some(1_000_000_000),
            slow_clients: 0,
            slow_rate_bps: 50_000_000,
            rate_step_bps: None,
            rate_step_at: 0.5,
            fair: false,
            queue: 1000,
            image_size: 64 << 20,
            symbol_size: DEFAULT_SYMBOL_SIZE,
            k: DEFAULT_K as u32,
            slots: 16,
            late_joiners: 0,
            join_at: 0.5,
            dead_clients: 0,
            die_at: 0.5,
            proactive: true,
            in_order: false,
            zero_blocks: 0.0,
            compressible: false,
            compress: None,
            adapt_rate: true,
            max_time_us: 3_600_000_000,
            seed: 1,
            verbose: false,
        }
    }
}

/// A usage error, naming the option.
#[derive(Debug, PartialEq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(opt: &str, v: &str, what: &str) -> ArgError {
    ArgError(format!("{opt} {v}: expected {what}"))
}

/// `1%`, `0.5%` or `0.01` as a fraction in [0, 1].
pub fn parse_fraction(v: &str) -> Option<f64> {
    let f = match v.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => v.trim().parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&f).then_some(f)
}

/// `64MiB`, `1GiB`, `10MB`, `4096`, `1k` as bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    let bytes = n * mult as f64;
    (0.0..2f64.powi(63))
        .contains(&bytes)
        .then_some(bytes as u64)
}

/// `1G`, `500M`, `100k`, `2.5G` (bits per second, decimal units).
pub fn parse_rate(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit
        .to_ascii_lowercase()
        .trim_end_matches("bit")
        .trim_end_matches("bps")
    {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => return None,
    };
    let bps = n * mult;
    (1.0..1e13).contains(&bps).then_some(bps as u64)
}

/// `200us`, `1ms`, `0.5s`, `3` (seconds) as microseconds.
pub fn parse_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "" | "s" => 1e6,
        _ => return None,
    };
    let us = n * mult;
    (0.0..1e15).contains(&us).then_some(us as u64)
}

/// A number of at least `min`, or a usage error naming the option.
fn at_least<T: std::str::FromStr + PartialOrd>(
    name: &str,
    v: &str,
    min: T,
    what: &str,
) -> Result<T, ArgError> {
    v.parse()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| bad(name, v, what))
}

/// A count, or a percentage of `total`.
fn parse_count(v: &str, total: u32) -> Option<u32> {
    if v.ends_with('%') {
        return parse_fraction(v).map(|f| (f * total as f64).round() as u32);
    }
    v.parse().ok()
}

/// Parses the arguments (without the program name). `Ok(None)` means --help.
pub fn parse(args: &[String]) -> Result<Option<Options>, ArgError> {
    let mut o = Options::default();
    let mut late = None;
    let mut dead = None;
    let mut slow = None;
    let mut start_given = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        let flag = |o: &mut Options| -> Result<bool, ArgError> {
            match name {
                "-h" | "--help" => Ok(false),
                "-v" | "--verbose" => {
                    o.verbose = true;
                    Ok(true)
                }
                "--in-order" => {
                    o.in_order = true;
                    Ok(true)
                }
                "--compressible" => {
                    o.compressible = true;
                    Ok(true)
                }
                "--no-proactive" => {
                    o.proactive = false;
                    Ok(true)
                }
                "--fixed-rate" => {
                    o.adapt_rate = false;
                    Ok(true)
                }
                "--fair" => {
                    o.fair = true;
                    Ok(true)
                }
                _ => Err(ArgError(String::new())),
            }
        };
        match flag(&mut o) {
            Ok(true) => {
                i += 1;
                continue;
            }
            Ok(false) => return Ok(None),
            Err(_) => {}
        }
        let v = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| ArgError(format!("{name}: missing value (see --help)")))?
            }
        };
        match name {
            "--clients" => o.clients = at_least(name, &v, 1, "a count >= 1")?,
            "--loss" => {
                o.loss = parse_fraction(&v)
                    .filter(|&f| f < 1.0)
                    .ok_or_else(|| bad(name, &v, "a fraction like 1% or 0.01, below 100%"))?
            }
            "--burst" => o.burst = at_least(name, &v, 1.0, "a mean burst length >= 1")?,
            "--up-loss" => {
                o.up_loss = Some(
                    parse_fraction(&v)
                        .filter(|&f| f < 1.0)
                        .ok_or_else(|| bad(name, &v, "a fraction below 100%"))?,
                )
            }
            "--dup" => o.dup = parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction"))?,
            "--reorder" => {
                o.reorder = parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction"))?
            }
            "--reorder-window" => {
                o.reorder_window_us =
                    parse_duration(&v).ok_or_else(|| bad(name, &v, "a duration like 2ms"))?
            }
            "--delay" => {
                o.delay_us =
                    parse_duration(&v).ok_or_else(|| bad(name, &v, "a duration like 200us"))?
            }
            "--delay-spread" => {
                o.delay_spread_us = parse_duration(&v).ok_or_else(|| bad(name, &v, "a duration"))?
            }
            "--rate" => {
                o.rate_bps =
                    parse_rate(&v).ok_or_else(|| bad(name, &v, "a rate like 1G or 500M"))?;
                if !start_given {
                    o.start_rate_bps = Some(o.rate_bps);
                }
            }
            "--start-rate" => {
                start_given = true;
                o.start_rate_bps = if v == "probe" {
                    None
                } else {
                    Some(parse_rate(&v).ok_or_else(|| bad(name, &v, "a rate like 1G, or probe"))?)
                }
            }
            "--slow-rate" => {
                o.slow_rate_bps = parse_rate(&v).ok_or_else(|| bad(name, &v, "a rate like 50M"))?
            }
            "--rate-step" => {
                o.rate_step_bps =
                    Some(parse_rate(&v).ok_or_else(|| bad(name, &v, "a rate like 100M"))?)
            }
            "--rate-step-at" => {
                o.rate_step_at =
                    parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction like 50%"))?
            }
            "--send-rate" => {
                o.send_rate_bps =
                    Some(parse_rate(&v).ok_or_else(|| bad(name, &v, "a rate like 1G"))?)
            }
            "--queue" => o.queue = at_least(name, &v, 1, "a packet count >= 1")?,
            "--image-size" => {
                o.image_size = parse_size(&v)
                    .filter(|&s| s > 0)
                    .ok_or_else(|| bad(name, &v, "a size like 64MiB"))?
            }
            "--symbol-size" => {
                o.symbol_size = v
                    .parse()
                    .ok()
                    .ok_or_else(|| bad(name, &v, "bytes, a multiple of 64"))?
            }
            "--k" => {
                o.k = v
                    .parse()
                    .ok()
                    .ok_or_else(|| bad(name, &v, "a symbol count"))?
            }
            "--slots" => {
                o.slots = at_least(name, &v, 2, "a count >= 2")?;
                if o.slots > MAX_SLOTS {
                    return Err(bad(name, &v, "a count <= 64 (the receiver's slot limit)"));
                }
            }
            "--late-joiners" => late = Some(v),
            "--slow-clients" => slow = Some(v),
            "--join-at" => {
                o.join_at =
                    parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction like 50%"))?
            }
            "--dead-clients" => dead = Some(v),
            "--die-at" => {
                o.die_at = parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction like 50%"))?
            }
            "--max-time" => {
                o.max_time_us = parse_duration(&v).ok_or_else(|| bad(name, &v, "a duration"))?
            }
            "--seed" => o.seed = v.parse().ok().ok_or_else(|| bad(name, &v, "an integer"))?,
            "--zero-blocks" => {
                o.zero_blocks =
                    parse_fraction(&v).ok_or_else(|| bad(name, &v, "a fraction like 70%"))?
            }
            "--compress" => {
                o.compress = match v.as_str() {
                    "off" => None,
                    l => Some(
                        l.parse()
                            .ok()
                            .filter(|l| (1..=19).contains(l))
                            .ok_or_else(|| bad(name, &v, "a level 1-19, or off"))?,
                    ),
                }
            }
            _ => return Err(ArgError(format!("unknown option {name} (see --help)"))),
        }
        i += 1;
    }
    if let Some(v) = late {
        o.late_joiners = parse_count(&v, o.clients)
            .ok_or_else(|| bad("--late-joiners", &v, "a count or a percentage"))?;
    }
    if let Some(v) = dead {
        o.dead_clients = parse_count(&v, o.clients)
            .ok_or_else(|| bad("--dead-clients", &v, "a count or a percentage"))?;
    }
    if let Some(v) = slow {
        o.slow_clients = parse_count(&v, o.clients)
            .filter(|&n| n <= o.clients)
            .ok_or_else(|| bad("--slow-clients", &v, "a count or a percentage"))?;
    }
    if o.late_joiners + o.dead_clients >= o.clients {
        return Err(ArgError("--late-joiners plus --dead-clients must leave at least one receiver present from the start".into()));
    }
    bb_proto::wire::Geometry::new(o.image_size, o.symbol_size, o.k)
        .map_err(|e| ArgError(format!("geometry: {e}")))?;
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn units_parse() {
        assert_eq!(parse_fraction("1%"), Some(0.01));
        assert_eq!(parse_fraction("0.02"), Some(0.02));
        assert_eq!(parse_fraction("150%"), None);
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_rate("1G"), Some(1_000_000_000));
        assert_eq!(parse_rate("2.5G"), Some(2_500_000_000));
        assert_eq!(parse_rate("100mbit"), Some(100_000_000));
        assert_eq!(parse_duration("200us"), Some(200));
        assert_eq!(parse_duration("1.5ms"), Some(1500));
        assert_eq!(parse_duration("2"), Some(2_000_000));
    }

    #[test]
    fn options_and_errors() {
        let o = parse(&args("--clients 100 --loss 1% --image-size 8MiB --seed 7 --late-joiners 10% --dead-clients=2")).unwrap().unwrap();
        assert_eq!(
            (o.clients, o.late_joiners, o.dead_clients, o.seed),
            (100, 10, 2, 7)
        );
        assert_eq!(o.image_size, 8 << 20);
        assert!(parse(&args("--help")).unwrap().is_none());
        assert!(
            parse(&args("--clients"))
                .unwrap_err()
                .0
                .contains("missing value")
        );
        assert!(parse(&args("--loss 100%")).is_err());
        assert!(
            parse(&args("--bogus 1"))
                .unwrap_err()
                .0
                .contains("unknown option")
        );
        assert!(parse(&args("--clients 4 --late-joiners 2 --dead-clients 2")).is_err());
        assert!(
            parse(&args("--symbol-size 100"))
                .unwrap_err()
                .0
                .contains("geometry")
        );
    }
}
