//! Command line of bb-pxe: options, defaults, validation and --help.

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub const HELP: &str = "\
bb-pxe: image a room of machines by PXE with one command. Serves the imaging kernel and
initramfs by TFTP with dnsmasq on INTERFACE (proxy DHCP beside the network's own DHCP server,
or full DHCP with --dhcp-range) and sends IMAGE with bb-server; Ctrl-C or the end of the
session stops both.

Usage: bb-pxe [OPTIONS] INTERFACE IMAGE

  INTERFACE  the network device facing the machines (eth1, enp3s0); it needs an IPv4
             address: the machines fetch their boot files from it and report to it
  IMAGE      file or block device to send, as for bb-server; '-': standard input

Machines and disks:
  -n, --clients N        bb-server --clients N: end once N machines verified the image
                         (recommended: without it the session ends when every machine
                         heard so far is done and none was heard for 5 s)
  -d, --dev DEV          bb.dev= for the machines: 'auto' (the one internal, non-removable,
                         writable disk at least as large as the image; refuses and names
                         every candidate when there are none or several), a device
                         (/dev/sda), a list tried in order (/dev/nvme0n1,/dev/sda) or a
                         /dev/disk/by-id/ name [default: auto]
      --done ACTION      after a verified image: poweroff, reboot, halt or shell
                         [default: poweroff]. A machine that verified gets a per-MAC iPXE
                         script for the rest of the session that boots its local disk, so
                         with reboot it leaves the imaging loop by itself
      --append ARGS      more kernel parameters (e.g. 'console=ttyS0,115200n8');
                         [default: console=tty0]

Network:
      --dhcp-range START,END[,NETMASK[,LEASE]]
                         be the DHCP server of INTERFACE's network, handing out
                         START..END (e.g. 10.0.0.100,10.0.0.200); without it dnsmasq runs
                         as proxy DHCP and the network's DHCP server hands out addresses
  -g, --group ADDR       send to multicast group ADDR (bb-server's ADDRESS and bb.group=)
                         [default: INTERFACE's broadcast address]
  -r, --rate RATE        bb-server --rate (e.g. 800M) [default: bb-server's]
      --key-file FILE    bb-server --key-file FILE; the key also goes to the machines as
                         bb.key= in boot.ipxe (the TFTP root: keep the imaging network
                         closed)
      --server-opt OPT   one more bb-server option, verbatim; repeat for each word
                         (--server-opt=--compress --server-opt=off)

Files:
      --netboot DIR      where vmlinuz and bb-initramfs.img are [default: the first of
                         $BB_NETBOOT, PREFIX/share/broadband/netboot beside this program,
                         /usr/share/broadband/netboot, ./build/netboot (make netboot)]
      --ipxe DIR         iPXE's loaders undionly.kpxe (BIOS), ipxe.efi and snponly.efi
                         (UEFI) [default: /usr/lib/ipxe, Debian's package ipxe]
      --state DIR        TFTP root, dnsmasq log and leases; kept and reused between runs
                         (files are copied again only when they changed; per-MAC scripts
                         of an earlier session are removed at start)
                         [default: /run/bb-pxe/INTERFACE]
      --dnsmasq PATH     the dnsmasq program [default: dnsmasq in PATH, /usr/sbin]
      --bb-server PATH   the bb-server program [default: beside bb-pxe, else in PATH]

  -h, --help             this text
  -V, --version          version

What runs: dnsmasq --port=0 (no DNS) --interface=INTERFACE --bind-interfaces with TFTP on
the TFTP root, BIOS machines get undionly.kpxe, UEFI ones ipxe.efi, iPXE gets boot.ipxe;
then bb-server -i INTERFACE [--clients N] [--rate R] [--key-file F] ADDRESS IMAGE. Its
progress and per-machine events are the display; dnsmasq's log is STATE/dnsmasq.log.
Both run in one process group that bb-pxe ends (SIGTERM, then SIGKILL after 5 s) on
Ctrl-C, SIGTERM, SIGHUP or when bb-server exits; they also die with bb-pxe (parent-death
signal).

Exit status: bb-server's (0: every wanted machine verified; 1: a machine failed or too few
verified; 3: image error; 4: network error; 130: interrupted), or
  2    usage error
  5    setup error before anything started: no such interface, no IPv4 address on it,
       DHCP/TFTP ports taken, dnsmasq, iPXE loaders or netboot files missing (the message
       names the fix)
  6    dnsmasq exited during the session (bb-server was stopped; see STATE/dnsmasq.log)

Examples:
  bb-pxe --clients 30 eth1 golden.img
  bb-pxe --clients 30 --done reboot --dev /dev/nvme0n1,/dev/sda eth1 golden.img
  bb-pxe --dhcp-range 10.0.0.100,10.0.0.250 --clients 4 eth1 golden.img.zst
  zstd -dc golden.img.zst | bb-pxe -n 12 -g 239.1.2.3 eth1 -
";

/// After imaging, what a machine does (bb.done=).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Poweroff,
    Reboot,
    Halt,
    Shell,
}

impl Done {
    pub fn parse(s: &str) -> Option<Done> {
        Some(match s {
            "poweroff" => Done::Poweroff,
            "reboot" => Done::Reboot,
            "halt" => Done::Halt,
            "shell" => Done::Shell,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Done::Poweroff => "poweroff",
            Done::Reboot => "reboot",
            Done::Halt => "halt",
            Done::Shell => "shell",
        }
    }
}

/// dnsmasq's DHCP role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dhcp {
    /// Proxy DHCP: boot information only, the network's DHCP server gives addresses.
    Proxy,
    /// Full DHCP with this dnsmasq range (START,END[,NETMASK[,LEASE]]).
    Range(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub interface: String,
    /// The image path, or "-" for standard input.
    pub image: String,
    pub clients: Option<u32>,
    pub dev: String,
    pub done: Done,
    pub append: String,
    pub dhcp: Dhcp,
    pub group: Option<Ipv4Addr>,
    pub rate: Option<String>,
    pub key_file: Option<PathBuf>,
    pub server_opts: Vec<String>,
    pub netboot: Option<PathBuf>,
    pub ipxe: PathBuf,
    pub state: Option<PathBuf>,
    pub dnsmasq: Option<PathBuf>,
    pub bb_server: Option<PathBuf>,
}

pub enum Command {
    Help,
    Version,
    Run(Box<Options>),
}

fn opts() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt("n", "clients", "", "N");
    o.optopt("d", "dev", "", "DEV");
    o.optopt("", "done", "", "ACTION");
    o.optopt("", "append", "", "ARGS");
    o.optopt("", "dhcp-range", "", "RANGE");
    o.optopt("g", "group", "", "ADDR");
    o.optopt("r", "rate", "", "RATE");
    o.optopt("", "key-file", "", "FILE");
    o.optmulti("", "server-opt", "", "OPT");
    o.optopt("", "netboot", "", "DIR");
    o.optopt("", "ipxe", "", "DIR");
    o.optopt("", "state", "", "DIR");
    o.optopt("", "dnsmasq", "", "PATH");
    o.optopt("", "bb-server", "", "PATH");
    o.optflag("h", "help", "");
    o.optflag("V", "version", "");
    o
}

/// A bb.dev= value the client accepts: auto, or /dev/ paths separated by commas.
fn valid_dev(d: &str) -> bool {
    d == "auto"
        || (!d.is_empty()
            && d.len() < 128
            && d.split(',')
                .all(|p| p.starts_with("/dev/") && p.len() > 5 && !p.contains(char::is_whitespace)))
}

/// A dnsmasq --dhcp-range for full DHCP: START,END[,NETMASK[,LEASE]] with IPv4 addresses.
fn valid_range(r: &str) -> bool {
    let parts: Vec<&str> = r.split(',').collect();
    (2..=4).contains(&parts.len())
        && parts[..parts.len().min(3)]
            .iter()
            .all(|p| p.parse::<Ipv4Addr>().is_ok())
        && parts.get(3).is_none_or(|l| {
            *l == "infinite"
                || l.trim_end_matches(['s', 'm', 'h', 'd'])
                    .parse::<u32>()
                    .is_ok()
        })
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let m = opts().parse(args).map_err(|e| e.to_string())?;
    if m.opt_present("help") {
        return Ok(Command::Help);
    }
    if m.opt_present("version") {
        return Ok(Command::Version);
    }
    let [interface, image] = m.free.as_slice() else {
        return Err(format!(
            "expected INTERFACE and IMAGE, got {} argument(s)",
            m.free.len()
        ));
    };
    let clients = match m.opt_str("clients") {
        None => None,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "--clients must be a number of machines >= 1, not {s:?}"
                ));
            }
        },
    };
    let dev = m.opt_str("dev").unwrap_or_else(|| "auto".into());
    if !valid_dev(&dev) {
        return Err(format!(
            "--dev must be auto, a /dev/ path or a comma-separated list of them (no spaces), not {dev:?}"
        ));
    }
    let done = match m.opt_str("done") {
        None => Done::Poweroff,
        Some(s) => Done::parse(&s)
            .ok_or_else(|| format!("--done must be poweroff, reboot, halt or shell, not {s:?}"))?,
    };
    let dhcp = match m.opt_str("dhcp-range") {
        None => Dhcp::Proxy,
        Some(r) if valid_range(&r) => Dhcp::Range(r),
        Some(r) => {
            return Err(format!(
                "--dhcp-range must be START,END[,NETMASK[,LEASE]] with IPv4 addresses (10.0.0.100,10.0.0.200), not {r:?}"
            ));
        }
    };
    let group = match m.opt_str("group") {
        None => None,
        Some(g) => match g.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Some(a),
            _ => {
                return Err(format!(
                    "--group must be an IPv4 multicast address (224.0.0.0/4), not {g:?}"
                ));
            }
        },
    };
    let append = m.opt_str("append").unwrap_or_else(|| "console=tty0".into());
    if append.contains(['\n', '\r']) {
        return Err("--append must be one line".into());
    }
    Ok(Command::Run(Box::new(Options {
        interface: interface.clone(),
        image: image.clone(),
        clients,
        dev,
        done,
        append,
        dhcp,
        group,
        rate: m.opt_str("rate"),
        key_file: m.opt_str("key-file").map(PathBuf::from),
        server_opts: m.opt_strs("server-opt"),
        netboot: m.opt_str("netboot").map(PathBuf::from),
        ipxe: PathBuf::from(m.opt_str("ipxe").unwrap_or_else(|| "/usr/lib/ipxe".into())),
        state: m.opt_str("state").map(PathBuf::from),
        dnsmasq: m.opt_str("dnsmasq").map(PathBuf::from),
        bb_server: m.opt_str("bb-server").map(PathBuf::from),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&v)? {
            Command::Run(o) => Ok(*o),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&["eth1", "img"]).unwrap();
        assert_eq!(o.interface, "eth1");
        assert_eq!(o.image, "img");
        assert_eq!(o.dev, "auto");
        assert_eq!(o.done, Done::Poweroff);
        assert_eq!(o.dhcp, Dhcp::Proxy);
        assert_eq!(o.append, "console=tty0");
        assert_eq!(o.clients, None);
        assert_eq!(o.ipxe, PathBuf::from("/usr/lib/ipxe"));
    }

    #[test]
    fn every_option() {
        let o = run(&[
            "-n",
            "4",
            "--dev=/dev/nvme0n1,/dev/vda",
            "--done",
            "reboot",
            "--dhcp-range",
            "10.0.0.100,10.0.0.200,255.255.255.0,1h",
            "-g",
            "239.1.2.3",
            "-r",
            "80M",
            "--key-file",
            "/k",
            "--server-opt=--compress",
            "--server-opt=off",
            "--append",
            "console=ttyS0",
            "eth1",
            "-",
        ])
        .unwrap();
        assert_eq!(o.clients, Some(4));
        assert_eq!(o.dev, "/dev/nvme0n1,/dev/vda");
        assert_eq!(o.done, Done::Reboot);
        assert_eq!(
            o.dhcp,
            Dhcp::Range("10.0.0.100,10.0.0.200,255.255.255.0,1h".into())
        );
        assert_eq!(o.group, Some(Ipv4Addr::new(239, 1, 2, 3)));
        assert_eq!(o.rate.as_deref(), Some("80M"));
        assert_eq!(o.key_file, Some(PathBuf::from("/k")));
        assert_eq!(o.server_opts, vec!["--compress", "off"]);
        assert_eq!(o.image, "-");
    }

    #[test]
    fn refusals_name_the_option() {
        for (args, word) in [
            (&["eth1"][..], "INTERFACE and IMAGE"),
            (&["-n", "0", "eth1", "i"][..], "--clients"),
            (&["--dev", "sda", "eth1", "i"][..], "--dev"),
            (&["--dev", "/dev/sda, /dev/sdb", "eth1", "i"][..], "--dev"),
            (&["--done", "explode", "eth1", "i"][..], "--done"),
            (
                &["--dhcp-range", "10.0.0.1", "eth1", "i"][..],
                "--dhcp-range",
            ),
            (&["--dhcp-range", "a,b", "eth1", "i"][..], "--dhcp-range"),
            (&["-g", "10.0.0.1", "eth1", "i"][..], "--group"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(word), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_names_every_option() {
        let usage = opts().usage("");
        let longs: Vec<&str> = usage
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("--"))
            .map(|w| w.split(['=', ' ']).next().unwrap_or(w))
            .collect();
        assert!(longs.len() >= 16, "{usage}");
        for name in longs {
            assert!(
                HELP.contains(&format!("--{name}")),
                "--{name} missing from --help"
            );
        }
    }
}
