//! Command line: options, their defaults and validation.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use bb_proto::fec::DEFAULT_K;
use bb_proto::wire::{
    DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORT, DEFAULT_SYMBOL_SIZE, MAX_K, MAX_SYMBOL_SIZE,
};

mod values;
use values::{parse_block_symbols, parse_num, parse_seconds, parse_symbol_size};
pub use values::{parse_level, parse_rate};

pub use crate::net::Interface;
use crate::net::SocketConfig;

/// How long `--min-clients` waits without `--wait`.
pub const DEFAULT_START_WAIT_S: f64 = 600.0;
/// With `--clients` and no `--timeout`: give up this long after the forward pass ended.
pub const DEFAULT_TIMEOUT_AFTER_FORWARD_S: f64 =
    bb_proto::sender::DEFAULT_TIMEOUT_AFTER_FORWARD_US as f64 / 1e6;

/// Where the image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Standard input (a file, a device or a pipe).
    Stdin,
    /// A file or block device.
    Path(PathBuf),
}

/// Everything the command line decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub address: Ipv4Addr,
    pub source: Source,
    pub port: u16,
    pub control_port: u16,
    pub ttl: u32,
    pub interface: Option<Interface>,
    /// The ceiling (None: the rate is found, up to the link speed where known).
    pub rate_bps: Option<u64>,
    pub min_rate_bps: u64,
    pub fixed_rate: bool,
    /// Share a congested link with TCP.
    pub fair: bool,
    pub proactive: bool,
    pub clients: u32,
    pub min_clients: u32,
    pub wait_s: Option<f64>,
    pub linger_s: f64,
    pub timeout_s: Option<f64>,
    pub client_timeout_s: f64,
    /// A lost client may come back for this long before it counts as a failure.
    pub lost_grace_s: f64,
    pub summary_json: Option<PathBuf>,
    pub quiet: bool,
    pub coding: Coding,
    /// The side file to use: None with --no-map (and for standard input).
    pub map: MapChoice,
    /// `--key-file`: with a key every packet is authenticated (docs/SECURITY.md).
    pub key: Option<bb_proto::wire::auth::PresharedKey>,
}

/// How blocks are coded, shared by sending and `--prepare`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coding {
    /// zstd level; None: `--compress off`.
    pub level: Option<i32>,
    /// Compression worker threads.
    pub threads: usize,
    pub symbol_size: u32,
    pub block_symbols: u32,
}

/// Which side file a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapChoice {
    /// IMAGE.bbmap if it exists.
    Default,
    /// This file; it must exist.
    Given(PathBuf),
    /// None (--no-map).
    Off,
}

/// `bb-server --prepare IMAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepareOptions {
    pub image: PathBuf,
    /// Where the side file goes: IMAGE.bbmap unless --map.
    pub map: PathBuf,
    pub coding: Coding,
    pub quiet: bool,
}

impl Options {
    /// The sockets' share of the options; the rest of the socket settings keep their defaults.
    pub fn socket_config(&self) -> SocketConfig {
        SocketConfig {
            interface: self.interface.clone(),
            multicast_ttl: self.ttl,
            ..SocketConfig::new(
                SocketAddrV4::new(self.address, self.port),
                self.control_port,
            )
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Options>),
    Prepare(PrepareOptions),
    /// `--gen-key FILE`: write a new random key.
    GenKey(PathBuf),
    Help,
    Version,
}

fn opts() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt("r", "rate", "", "RATE");
    o.optopt("", "min-rate", "", "RATE");
    o.optflag("", "fixed-rate", "");
    o.optflag("", "fair", "");
    o.optflag("", "no-proactive", "");
    o.optopt("p", "port", "", "PORT");
    o.optopt("", "control-port", "", "PORT");
    o.optopt("", "ttl", "", "N");
    o.optopt("i", "interface", "", "ADDR_OR_NAME");
    o.optopt("", "symbol-size", "", "BYTES");
    o.optopt("", "block-symbols", "", "K");
    o.optopt("n", "clients", "", "N");
    o.optopt("", "min-clients", "", "N");
    o.optopt("", "wait", "", "SECONDS");
    o.optopt("", "linger", "", "SECONDS");
    o.optopt("", "timeout", "", "SECONDS");
    o.optopt("", "client-timeout", "", "SECONDS");
    o.optopt("", "lost-grace", "", "SECONDS");
    o.optopt("", "summary-json", "", "FILE");
    o.optopt("", "compress", "", "LEVEL|off");
    o.optopt("", "threads", "", "N");
    o.optopt("", "prepare", "", "IMAGE");
    o.optopt("", "map", "", "FILE");
    o.optflag("", "no-map", "");
    o.optopt("", "key-file", "", "FILE");
    o.optopt("", "gen-key", "", "FILE");
    o.optflag("q", "quiet", "");
    o.optflag("h", "help", "");
    o.optflag("V", "version", "");
    o
}

/// The `--help` text.
pub fn help() -> String {
    format!(
        "\
bb-server {version}: writes one disk image onto many machines at once over UDP
broadcast or multicast. Clients (bb-client) report what they lack; the server sends
erasure-coded repairs, so the image crosses the network about once.

Usage: bb-server [OPTIONS] ADDRESS [IMAGE]
       bb-server --prepare IMAGE [--map FILE] [--compress LEVEL|off] [geometry options]
       bb-server --gen-key FILE

  ADDRESS   where data goes: the broadcast address of a local subnet (10.0.0.255),
            a multicast group (239.1.2.3, 224.0.0.0/4) or one client's address
  IMAGE     file or block device to send; '-' or absent: standard input. An image
            compressed with zstd, gzip or xz is recognised by its first bytes and
            decoded. A pipe or a compressed image is spooled first to an unlinked
            temporary file in $TMPDIR or /var/tmp, as compressed blocks with zero
            blocks left out (needs about the compressed size of free space)

Image and compression:
      --compress LEVEL|off zstd level for each non-zero block (1..19), or off: every
                           block goes raw; blocks that do not shrink by a packet go raw
                           anyway. Zero blocks are never sent as data [default 3]
      --threads N          compression threads, ahead of the sender [default: the
                           number of cores, {cores} here]
      --prepare IMAGE      read and compress IMAGE (a regular file) once, write its side
                           file (block map, compressed sizes, block hashes, image digest)
                           and exit; later runs of the same IMAGE with the same --compress
                           and geometry use it and know the digest before the first
                           packet (blocks are still read and compressed while sending,
                           and each is checked against the side file). Without one the
                           digest is read ahead, hashing only, while sending starts: a
                           restarted server is resumed by its clients once it announces
                           the digest, at once with a side file
      --map FILE           the side file to write (--prepare) or use [default
                           IMAGE.bbmap]; a side file that does not match the image
                           (size, mtime, spot-checked blocks) is refused
      --no-map             ignore IMAGE.bbmap

Sending:
  -r, --rate RATE          ceiling in bits/s, suffixes k M G (1000s), e.g. 80M, 1.5G
                           [default: none; the server finds the largest rate the
                           bulk of the clients take without congestion loss,
                           starting from the sending interface's link speed where
                           the kernel reports one (never above it), otherwise
                           probing upward from 64M]
      --min-rate RATE      floor of the found rate [default 1M]
      --fixed-rate         send at exactly --rate (needs --rate)
      --fair               share a congested link with TCP: never above what one
                           TCP flow would get on the path of the client with the
                           worst loss and round trip (the TFMCC equation)
      --no-proactive       no repair symbols with the first pass, only on request
      --symbol-size BYTES  payload per packet, a multiple of 64, at most {max_sym}
                           [default 1408: 1448-byte datagrams (1472 with a key) fit
                           a 1500 MTU; use 8896 with 9000-byte jumbo frames]
      --block-symbols K    source symbols per erasure-coded block, 1..{max_k}
                           [default 512]
  -p, --port PORT          data port the clients listen on [default {dport}]
      --control-port PORT  port the server listens on for status [default {cport}]
      --ttl N              multicast TTL [default 1: the local segment]
  -i, --interface ADDR|NAME  send from this local address or network device
                           (multicast: IP_MULTICAST_IF; a name binds the device)

Who and when:
  -n, --clients N          wait for N clients to verify the image, then exit
                           (0 if all N verified and none failed, else 1)
      --min-clients N      start sending once N clients are present ... [default 1:
                           nothing is sent before a machine listens; 0: at once]
      --wait SECONDS       ... or after this long [default {wait:.0}]
      --linger SECONDS     without --clients: stop once everything was sent, nothing is
                           pending and no client was heard for this long [default 5]
      --timeout SECONDS    with --clients: give up this long after sending started and
                           name the clients that did not finish [default: {tmo:.0} s
                           after the first pass over the image ended]
      --client-timeout SECONDS  a client silent this long is lost [default 10]
      --lost-grace SECONDS  a lost client may come back this long (a link down, a
                           machine rebooting into the imaging initramfs): until then
                           lost clients fail nothing and the session waits for them
                           [default 60]

Authentication (docs/SECURITY.md):
      --key-file FILE      the pre-shared key: 32 raw bytes or 64 hex digits. Every
                           packet both ways then carries a 16-byte tag (AES-128-GCM under
                           a key derived for this session and sender); packets without
                           a valid tag are dropped and counted. Clients need the same key
                           (bb-client --key-file, bb.key=, or baked into the initramfs)
      --gen-key FILE       write a new random key to FILE (hex, mode 0600; never
                           replaces an existing file) and exit
  Without a key anyone on the LAN can feed clients another image or disturb a session.

Output:
  -q, --quiet              no progress or events, only errors and the summary
      --summary-json FILE  write the final summary as JSON ('-': stdout)
  -h, --help               this text
  -V, --version            version

On a terminal the progress is a live status line; otherwise a log line every 2 s.
At the end a summary goes to stderr: image size, digest, elapsed time, packets,
wire ratio (data packets per source symbol) and a table of clients.

Examples:
  bb-server 10.0.0.255 disk.img
  bb-server --clients 40 10.0.0.255 /dev/sdb
  zstd -dc img.zst | bb-server --clients 40 239.1.2.3
  bb-server --rate 8G --symbol-size 8896 --min-clients 16 --wait 120 10.1.0.255 golden.img
  bb-server --prepare golden.img     (once; then bb-server 10.0.0.255 golden.img)
  bb-server --clients 40 10.0.0.255 disk.img.zst
  qemu-img convert -O raw vm.qcow2 /dev/stdout | bb-server 10.0.0.255

Environment:
  BB_RATE_TRACE=1  one stderr line per status report: what the rate control made of it
                   (packets received against packets sent in the span, loss, loss floor,
                   congestion, the rate), and one per decision that moved the rate or its
                   reason

Exit status:
  0    success: with --clients, N clients verified and none failed; without it, every
       client heard verified (and at least one did)
  1    a client reported failure; with --clients, fewer than N verified before the
       timeout (a lost machine beyond the N does not count); without it, a client
       failed or was lost, or none verified (a lost client fails nothing until
       --lost-grace has passed)
  2    usage error
  3    image error (unreadable, empty, spool failed, side file refused; the image
       changed or failed to read while served, or is found changed when the session
       ends: clients are told the session ended)
  4    network error (cannot bind or send)
  130  interrupted (Ctrl-C, SIGTERM); clients are told the session ended
",
        version = env!("CARGO_PKG_VERSION"),
        max_sym = MAX_SYMBOL_SIZE,
        max_k = MAX_K,
        dport = DEFAULT_DATA_PORT,
        cport = DEFAULT_CONTROL_PORT,
        wait = DEFAULT_START_WAIT_S,
        tmo = DEFAULT_TIMEOUT_AFTER_FORWARD_S,
        cores = crate::pool::default_threads(),
    )
}

/// Parses the arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let m = opts().parse(args).map_err(|e| e.to_string())?;
    if m.opt_present("h") {
        return Ok(Command::Help);
    }
    if m.opt_present("V") {
        return Ok(Command::Version);
    }
    if let Some(path) = m.opt_str("gen-key") {
        if let Some(extra) = m.free.first() {
            return Err(format!(
                "unexpected argument '{extra}': --gen-key takes only FILE"
            ));
        }
        return Ok(Command::GenKey(PathBuf::from(path)));
    }
    let coding = parse_coding(&m)?;
    if let Some(img) = m.opt_str("prepare") {
        if let Some(extra) = m.free.first() {
            return Err(format!(
                "unexpected argument '{extra}': --prepare takes only IMAGE and image options"
            ));
        }
        if img == "-" {
            return Err("--prepare needs an image file (a side file describes a file)".into());
        }
        let image = PathBuf::from(img);
        let map = m
            .opt_str("map")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::sidefile::default_path(&image));
        return Ok(Command::Prepare(PrepareOptions {
            image,
            map,
            coding,
            quiet: m.opt_present("q"),
        }));
    }
    let (address, source) = match m.free.as_slice() {
        [] => return Err("missing ADDRESS (e.g. bb-server 10.0.0.255 disk.img)".into()),
        [a] => (a, Source::Stdin),
        [a, img] => (
            a,
            if img == "-" {
                Source::Stdin
            } else {
                Source::Path(PathBuf::from(img))
            },
        ),
        [_, _, extra, ..] => {
            return Err(format!(
                "unexpected argument '{extra}': only ADDRESS and IMAGE"
            ));
        }
    };
    let address: Ipv4Addr = address.parse().map_err(|_| {
        format!(
            "ADDRESS '{address}': expected an IPv4 address (broadcast, multicast group or unicast)"
        )
    })?;
    if address.is_unspecified() {
        return Err("ADDRESS 0.0.0.0: give the subnet's broadcast address (e.g. 10.0.0.255) or a multicast group".into());
    }
    let rate_bps = m.opt_str("rate").map(|r| parse_rate(&r)).transpose()?;
    let min_rate_bps = match m.opt_str("min-rate") {
        Some(r) => parse_rate(&r)?,
        None => 1_000_000u64.min(rate_bps.unwrap_or(u64::MAX)),
    };
    if let Some(rate_bps) = rate_bps
        && min_rate_bps > rate_bps
    {
        return Err(format!(
            "--min-rate ({min_rate_bps} bit/s) is above --rate ({rate_bps} bit/s)"
        ));
    }
    if m.opt_present("fixed-rate") && rate_bps.is_none() {
        return Err("--fixed-rate needs --rate RATE: the rate to hold".into());
    }
    let port = match m.opt_str("port") {
        Some(p) => parse_num::<u16>("port", &p)?,
        None => DEFAULT_DATA_PORT,
    };
    let control_port = match m.opt_str("control-port") {
        Some(p) => parse_num::<u16>("control-port", &p)?,
        None => DEFAULT_CONTROL_PORT,
    };
    if port == 0 || control_port == 0 {
        return Err("ports must be between 1 and 65535".into());
    }
    let ttl = match m.opt_str("ttl") {
        Some(t) => parse_num::<u32>("ttl", &t)?,
        None => 1,
    };
    if ttl == 0 || ttl > 255 {
        return Err("--ttl: between 1 and 255".into());
    }
    let interface = m.opt_str("interface").map(|s| match s.parse::<Ipv4Addr>() {
        Ok(a) => Interface::Addr(a),
        Err(_) => Interface::Name(s),
    });
    if let Some(Interface::Name(n)) = &interface
        && (n.is_empty() || n.len() >= 16)
    {
        return Err(format!(
            "--interface '{n}': not an IPv4 address nor a device name (1 to 15 characters)"
        ));
    }
    let map = match (m.opt_str("map"), m.opt_present("no-map")) {
        (Some(_), true) => return Err("--map and --no-map contradict each other".into()),
        (Some(p), false) => MapChoice::Given(PathBuf::from(p)),
        (None, true) => MapChoice::Off,
        (None, false) => MapChoice::Default,
    };
    if source == Source::Stdin && matches!(map, MapChoice::Given(_)) {
        return Err("--map applies to an IMAGE file, not standard input".into());
    }
    let clients = match m.opt_str("clients") {
        Some(s) => parse_num::<u32>("clients", &s)?,
        None => 0,
    };
    // By default wait for one machine: an image sent before anyone listens is wasted, and
    // every machine would need it all again from the carousel.
    let min_clients = match m.opt_str("min-clients") {
        Some(s) => parse_num::<u32>("min-clients", &s)?,
        None => 1,
    };
    let wait_s = m
        .opt_str("wait")
        .map(|s| parse_seconds("wait", &s))
        .transpose()?;
    let linger_s = m
        .opt_str("linger")
        .map(|s| parse_seconds("linger", &s))
        .transpose()?
        .unwrap_or(5.0);
    let timeout_s = m
        .opt_str("timeout")
        .map(|s| parse_seconds("timeout", &s))
        .transpose()?;
    if timeout_s.is_some() && clients == 0 {
        return Err(
            "--timeout applies with --clients N (without it the server stops after --linger)"
                .into(),
        );
    }
    let client_timeout_s = m
        .opt_str("client-timeout")
        .map(|s| parse_seconds("client-timeout", &s))
        .transpose()?
        .unwrap_or(10.0);
    if client_timeout_s < 1.0 {
        return Err(
            "--client-timeout: at least 1 second (clients report about once a second when idle)"
                .into(),
        );
    }
    let lost_grace_s = m
        .opt_str("lost-grace")
        .map(|s| parse_seconds("lost-grace", &s))
        .transpose()?
        .unwrap_or(60.0);
    Ok(Command::Run(Box::new(Options {
        address,
        source,
        port,
        control_port,
        ttl,
        interface,
        rate_bps,
        min_rate_bps,
        fixed_rate: m.opt_present("fixed-rate"),
        fair: m.opt_present("fair"),
        proactive: !m.opt_present("no-proactive"),
        clients,
        min_clients,
        wait_s,
        linger_s,
        timeout_s,
        client_timeout_s,
        lost_grace_s,
        summary_json: m.opt_str("summary-json").map(PathBuf::from),
        quiet: m.opt_present("q"),
        coding,
        map,
        key: m
            .opt_str("key-file")
            .map(|f| crate::key::load(std::path::Path::new(&f)))
            .transpose()?,
    })))
}

/// The options that decide how blocks are cut and coded.
fn parse_coding(m: &getopts::Matches) -> Result<Coding, String> {
    let symbol_size = match m.opt_str("symbol-size") {
        Some(s) => parse_symbol_size(&s)?,
        None => DEFAULT_SYMBOL_SIZE,
    };
    let block_symbols = match m.opt_str("block-symbols") {
        Some(s) => parse_block_symbols(&s)?,
        None => DEFAULT_K as u32,
    };
    let level = match m.opt_str("compress") {
        Some(s) => parse_level(&s)?,
        None => Some(crate::codec::DEFAULT_LEVEL),
    };
    let threads = match m.opt_str("threads") {
        Some(s) => parse_num::<usize>("threads", &s)?,
        None => crate::pool::default_threads(),
    };
    if threads == 0 || threads > 1024 {
        return Err(format!("--threads {threads}: between 1 and 1024"));
    }
    Ok(Coding {
        level,
        threads,
        symbol_size,
        block_symbols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&v)? {
            Command::Run(o) => Ok(*o),
            c => Err(format!("{c:?}")),
        }
    }

    #[test]
    fn rates_with_suffixes() {
        assert_eq!(parse_rate("500M"), Ok(500_000_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("80m"), Ok(80_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_rate("250k"), Ok(250_000));
        assert_eq!(parse_rate("100Mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("2gbps"), Ok(2_000_000_000));
        assert_eq!(parse_rate("1000000"), Ok(1_000_000));
    }

    #[test]
    fn bad_rates_are_refused_with_a_reason() {
        for r in ["", "fast", "M", "-5M", "0", "1x", "nanM", "infG"] {
            assert!(parse_rate(r).is_err(), "{r}");
        }
        assert!(parse_rate("500MB").unwrap_err().contains("bits per second"));
        assert!(parse_rate("5").unwrap_err().contains("at least"));
        let err = run(&["--fixed-rate", "10.0.0.255"]).unwrap_err();
        assert!(err.contains("--fixed-rate needs --rate"), "{err}");
        assert!(run(&["--fair", "10.0.0.255"]).unwrap().fair);
    }

    #[test]
    fn defaults() {
        let o = run(&["10.0.0.255", "disk.img"]).unwrap();
        assert_eq!(o.address, Ipv4Addr::new(10, 0, 0, 255));
        assert_eq!(o.source, Source::Path("disk.img".into()));
        assert_eq!((o.port, o.control_port, o.ttl), (7855, 7854, 1));
        assert_eq!(
            (o.rate_bps, o.coding.symbol_size, o.coding.block_symbols),
            (None, 1408, 512)
        );
        assert_eq!(
            (o.clients, o.min_clients, o.wait_s, o.linger_s, o.timeout_s),
            (0, 1, None, 5.0, None)
        );
        assert!(!o.fixed_rate && !o.fair && o.proactive && !o.quiet);
        assert_eq!(run(&["239.1.2.3"]).unwrap().source, Source::Stdin);
        assert_eq!(run(&["239.1.2.3", "-"]).unwrap().source, Source::Stdin);
    }

    #[test]
    fn options() {
        let o = run(&[
            "--rate",
            "1.5G",
            "--clients",
            "40",
            "--min-clients",
            "10",
            "--wait",
            "30",
            "-i",
            "eth0",
            "--symbol-size",
            "8896",
            "--block-symbols",
            "1024",
            "--timeout",
            "900",
            "-q",
            "--fixed-rate",
            "239.1.2.3",
        ])
        .unwrap();
        assert_eq!(o.rate_bps, Some(1_500_000_000));
        assert_eq!(
            (o.clients, o.min_clients, o.wait_s, o.timeout_s),
            (40, 10, Some(30.0), Some(900.0))
        );
        assert_eq!(o.interface, Some(Interface::Name("eth0".into())));
        assert_eq!((o.coding.symbol_size, o.coding.block_symbols), (8896, 1024));
        assert!(o.quiet && o.fixed_rate);
        let o = run(&["--interface", "10.0.0.1", "10.0.0.255"]).unwrap();
        assert_eq!(
            o.interface,
            Some(Interface::Addr(Ipv4Addr::new(10, 0, 0, 1)))
        );
    }

    #[test]
    fn socket_config_carries_the_socket_options() {
        let o = run(&[
            "-p",
            "9000",
            "--control-port",
            "9001",
            "--ttl",
            "4",
            "-i",
            "eth1",
            "239.1.2.3",
        ])
        .unwrap();
        let c = o.socket_config();
        assert_eq!(
            c.destination,
            SocketAddrV4::new(Ipv4Addr::new(239, 1, 2, 3), 9000)
        );
        assert_eq!(c.control_port, 9001);
        assert_eq!(c.multicast_ttl, 4);
        assert_eq!(c.interface, Some(Interface::Name("eth1".into())));
        assert!(c.gso && c.multicast_loop);
    }

    #[test]
    fn usage_errors() {
        for a in [
            &[][..],
            &["not-an-address"],
            &["0.0.0.0"],
            &["10.0.0.255", "a", "b"],
            &["--symbol-size", "1400", "10.0.0.255"],
            &["--symbol-size", "9000", "10.0.0.255"],
            &["--block-symbols", "0", "10.0.0.255"],
            &["--block-symbols", "5000", "10.0.0.255"],
            &["--rate", "fast", "10.0.0.255"],
            &["--rate", "10M", "--min-rate", "20M", "10.0.0.255"],
            &["--ttl", "0", "10.0.0.255"],
            &["--port", "70000", "10.0.0.255"],
            &["--clients", "-1", "10.0.0.255"],
            &["--timeout", "10", "10.0.0.255"],
            &["--wait", "soon", "10.0.0.255"],
            &["--bogus", "10.0.0.255"],
        ] {
            assert!(run(a).is_err(), "{a:?}");
        }
        assert!(matches!(parse(&["-h".to_string()]), Ok(Command::Help)));
    }

    #[test]
    fn compression_and_side_file_options() {
        let o = run(&["10.0.0.255", "disk.img"]).unwrap();
        assert_eq!(o.coding.level, Some(3));
        assert_eq!(o.coding.threads, crate::pool::default_threads());
        assert_eq!(o.map, MapChoice::Default);
        let o = run(&[
            "--compress",
            "off",
            "--threads",
            "3",
            "--no-map",
            "10.0.0.255",
            "d",
        ])
        .unwrap();
        assert_eq!(
            (o.coding.level, o.coding.threads, o.map),
            (None, 3, MapChoice::Off)
        );
        let o = run(&["--compress", "9", "--map", "/m", "10.0.0.255", "d"]).unwrap();
        assert_eq!(
            (o.coding.level, o.map),
            (Some(9), MapChoice::Given("/m".into()))
        );
        for a in [
            &["--compress", "20", "10.0.0.255"][..],
            &["--compress", "fast", "10.0.0.255"],
            &["--threads", "0", "10.0.0.255"],
            &["--map", "m", "--no-map", "10.0.0.255", "d"],
            &["--map", "m", "10.0.0.255"],
            &["--prepare", "-"],
            &["--prepare", "g.img", "10.0.0.255"],
        ] {
            assert!(run(a).is_err(), "{a:?}");
        }
        let v: Vec<String> = [
            "--prepare",
            "g.img",
            "--compress",
            "5",
            "--block-symbols",
            "256",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let Ok(Command::Prepare(p)) = parse(&v) else {
            panic!("--prepare")
        };
        assert_eq!(p.image, PathBuf::from("g.img"));
        assert_eq!(p.map, PathBuf::from("g.img.bbmap"));
        assert_eq!((p.coding.level, p.coding.block_symbols), (Some(5), 256));
    }

    #[test]
    fn help_names_every_option() {
        let h = help();
        for name in opts()
            .usage("")
            .lines()
            .filter_map(|l| l.split("--").nth(1))
        {
            let name = name.split_whitespace().next().unwrap();
            assert!(h.contains(&format!("--{name}")), "{name} missing from help");
        }
    }
}
