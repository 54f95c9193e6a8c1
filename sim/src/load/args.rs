//! bb-load's command line.

use std::net::Ipv4Addr;

use bb_proto::wire::{DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORT};

pub const USAGE: &str = "\
bb-load: many simulated machines receive one image from a real bb-server over real UDP
sockets, from one process, speaking the real protocol: each machine joins, sends status
reports at the interval the server announces (jittered as bb-client jitters them), asks for
the blocks its simulated loss cost it, and reports its result, repeated until the server
acknowledges it.

Usage: bb-load [OPTIONS] SERVER

  SERVER   the server's IPv4 address: status reports and results go to its control port

Every datagram is received once and checked once: a real bb-proto receiver decodes every
block, checks it against its block check and the whole image against the announced digest.
Each machine counts the distinct symbols it received of each block (after its own loss);
a block is complete when it holds the block's coded k of them, and its digest is computed
from the content of exactly the blocks it completed and compared with the announced digest.

Options:
  -n, --clients N          simulated machines, 1..=100000 [default 100]
      --loss PCT           each machine loses each datagram from the server with this
                           probability, independently: 1% or 0.01 [default 0]
      --source ADDR[,ADDR...]  local addresses the machines send from, one control socket
                           each, machines spread over them in turn (a server may bound the
                           clients it takes from one address) [default 0.0.0.0]
  -g, --group GROUP        join this multicast group on the data port
  -p, --port PORT          data port [default 7855]
      --control-port PORT  the server's control port [default 7854]
      --join-over SECONDS  machines start listening one after another, spread over this
                           time [default 0: all at once]
      --timeout SECONDS    a machine gives up after this long without a new symbol, or
                           without a session (bb-client's silence timeout) [default 60]
      --deadline SECONDS   stop the whole run after this long [default 3600]
      --seed N             client ids, loss and jitter [default: random]
      --summary-json FILE  write totals and one row per machine as JSON
  -q, --quiet              no progress lines
  -h, --help               this text

Exit status: 0 every machine verified the image, 1 some did not (or the deadline passed),
2 bad command line, 4 a socket could not be opened.
";

/// Everything the command line decides.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    pub server: Ipv4Addr,
    pub clients: u32,
    pub loss: f64,
    pub sources: Vec<Ipv4Addr>,
    pub group: Option<Ipv4Addr>,
    pub port: u16,
    pub control_port: u16,
    pub join_over_s: f64,
    pub timeout_s: f64,
    pub deadline_s: f64,
    pub seed: u64,
    pub summary_json: Option<String>,
    pub quiet: bool,
}

fn number<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{what}: '{v}' is not a valid number"))
}

fn seconds(what: &str, v: &str, max: f64) -> Result<f64, String> {
    let s: f64 = number(what, v)?;
    if !(0.0..=max).contains(&s) {
        return Err(format!("{what}: {v} is out of range 0..={max}"));
    }
    Ok(s)
}

fn fraction(v: &str) -> Result<f64, String> {
    let (num, scale) = match v.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (v, 1.0),
    };
    let f: f64 = number("--loss", num)?;
    let f = f / scale;
    if !(0.0..1.0).contains(&f) {
        return Err(format!("--loss: {v} must be at least 0 and below 100%"));
    }
    Ok(f)
}

/// Parses the arguments (without the program name); Ok(None) for --help.
pub fn parse(argv: &[String], random_seed: u64) -> Result<Option<LoadOptions>, String> {
    let mut o = getopts::Options::new();
    o.optopt("n", "clients", "", "N");
    o.optopt("", "loss", "", "PCT");
    o.optopt("", "source", "", "ADDR");
    o.optopt("g", "group", "", "GROUP");
    o.optopt("p", "port", "", "PORT");
    o.optopt("", "control-port", "", "PORT");
    o.optopt("", "join-over", "", "SECONDS");
    o.optopt("", "timeout", "", "SECONDS");
    o.optopt("", "deadline", "", "SECONDS");
    o.optopt("", "seed", "", "N");
    o.optopt("", "summary-json", "", "FILE");
    o.optflag("q", "quiet", "");
    o.optflag("h", "help", "");
    let m = o
        .parse(argv)
        .map_err(|e| format!("{e} (see bb-load --help)"))?;
    if m.opt_present("h") {
        return Ok(None);
    }
    let server = match m.free.as_slice() {
        [s] => s
            .parse()
            .map_err(|_| format!("SERVER: '{s}' is not an IPv4 address"))?,
        [] => return Err("the server's address is missing (see bb-load --help)".into()),
        _ => return Err(format!("one SERVER expected, got {:?}", m.free)),
    };
    let clients = match m.opt_str("clients") {
        Some(v) => number("--clients", &v)?,
        None => 100,
    };
    if !(1..=100_000).contains(&clients) {
        return Err(format!("--clients: {clients} is out of range 1..=100000"));
    }
    let sources = match m.opt_str("source") {
        Some(v) => v
            .split(',')
            .map(|a| {
                a.trim()
                    .parse()
                    .map_err(|_| format!("--source: '{a}' is not an IPv4 address"))
            })
            .collect::<Result<Vec<Ipv4Addr>, _>>()?,
        None => vec![Ipv4Addr::UNSPECIFIED],
    };
    let group = match m.opt_str("group") {
        Some(v) => {
            let g: Ipv4Addr = v
                .parse()
                .map_err(|_| format!("--group: '{v}' is not an IPv4 address"))?;
            if !g.is_multicast() {
                return Err(format!(
                    "--group: {g} is not a multicast address (224.0.0.0/4)"
                ));
            }
            Some(g)
        }
        None => None,
    };
    let port = |name: &str, default: u16| -> Result<u16, String> {
        match m.opt_str(name) {
            Some(v) => match number::<u16>(&format!("--{name}"), &v)? {
                0 => Err(format!("--{name}: port 0 is not allowed")),
                p => Ok(p),
            },
            None => Ok(default),
        }
    };
    Ok(Some(LoadOptions {
        server,
        clients,
        loss: m.opt_str("loss").map_or(Ok(0.0), |v| fraction(&v))?,
        sources,
        group,
        port: port("port", DEFAULT_DATA_PORT)?,
        control_port: port("control-port", DEFAULT_CONTROL_PORT)?,
        join_over_s: m
            .opt_str("join-over")
            .map_or(Ok(0.0), |v| seconds("--join-over", &v, 3600.0))?,
        timeout_s: m
            .opt_str("timeout")
            .map_or(Ok(60.0), |v| seconds("--timeout", &v, 86400.0))?,
        deadline_s: m
            .opt_str("deadline")
            .map_or(Ok(3600.0), |v| seconds("--deadline", &v, 7.0 * 86400.0))?,
        seed: m
            .opt_str("seed")
            .map_or(Ok(random_seed), |v| number("--seed", &v))?,
        summary_json: m.opt_str("summary-json"),
        quiet: m.opt_present("q"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<LoadOptions>, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&v, 42)
    }

    #[test]
    fn defaults_and_sources() {
        let o = p(&["10.0.0.1"]).unwrap().unwrap();
        assert_eq!((o.clients, o.loss, o.seed, o.port), (100, 0.0, 42, 7855));
        assert_eq!(o.sources, vec![Ipv4Addr::UNSPECIFIED]);
        let o = p(&[
            "-n",
            "1000",
            "--loss",
            "1%",
            "--source",
            "10.0.0.5,10.0.0.6",
            "10.0.0.1",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.clients, 1000);
        assert!((o.loss - 0.01).abs() < 1e-12);
        assert_eq!(o.sources.len(), 2);
    }

    #[test]
    fn bad_values_name_the_option() {
        assert!(p(&[]).unwrap_err().contains("missing"));
        assert!(
            p(&["-n", "0", "10.0.0.1"])
                .unwrap_err()
                .contains("--clients")
        );
        assert!(
            p(&["--loss", "100%", "10.0.0.1"])
                .unwrap_err()
                .contains("--loss")
        );
        assert!(
            p(&["--group", "10.1.1.1", "10.0.0.1"])
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            p(&["--source", "x", "10.0.0.1"])
                .unwrap_err()
                .contains("--source")
        );
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
