//! Command-line parsing by hand (no heap): borrowed byte strings from argv.

use bb_proto::wire::auth::{PresharedKey, parse_hex32};
use bb_proto::wire::{DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORT};

use crate::parse::{parse_ipv4, parse_u32};

pub const DEFAULT_TIMEOUT_S: u32 = 60;

/// Where the multicast group is joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iface<'a> {
    /// INADDR_ANY: the kernel picks (by the route for the group).
    Any,
    /// A local IPv4 address.
    Addr([u8; 4]),
    /// An interface name (e.g. "eth0").
    Name(&'a [u8]),
}

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output<'a> {
    Stdout,
    Path(&'a [u8]),
    /// `--dev auto`: the one internal disk that fits, chosen once the image size is known.
    Auto,
    /// `--dev LIST` or a /dev/disk/by-id/ name: the first entry that exists (see disks.rs).
    Devices(&'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options<'a> {
    pub server: [u8; 4],
    pub output: Output<'a>,
    pub group: Option<[u8; 4]>,
    pub iface: Iface<'a>,
    pub port: u16,
    pub control_port: u16,
    pub timeout_s: u32,
    pub quiet: bool,
    pub any_server: bool,
    /// The target already reads as zeros (a blank disk): zero ranges of a block device are
    /// not written.
    pub assume_zeroed: bool,
    /// `--key-file`: where the pre-shared key is (read by the caller into `key`).
    pub key_file: Option<&'a [u8]>,
    /// The pre-shared key: only packets tagged with it are used (docs/SECURITY.md).
    pub key: Option<PresharedKey>,
    /// `--digest`: the only image digest this client accepts.
    pub digest: Option<[u8; 32]>,
}

impl Options<'_> {
    pub fn new(server: [u8; 4]) -> Self {
        Options {
            server,
            output: Output::Stdout,
            group: None,
            iface: Iface::Any,
            port: DEFAULT_DATA_PORT,
            control_port: DEFAULT_CONTROL_PORT,
            timeout_s: DEFAULT_TIMEOUT_S,
            quiet: false,
            any_server: false,
            assume_zeroed: false,
            key_file: None,
            key: None,
            digest: None,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Help,
    Version,
    /// The /init mode (`--init`); other arguments are ignored except -q.
    Init {
        quiet: bool,
    },
    Receive(Options<'a>),
}

/// A usage error: a message and the argument it concerns (may be empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageError<'a> {
    pub msg: &'static str,
    pub arg: &'a [u8],
}

fn err<'a, T>(msg: &'static str, arg: &'a [u8]) -> Result<T, UsageError<'a>> {
    Err(UsageError { msg, arg })
}

fn parse_port(v: &[u8]) -> Option<u16> {
    parse_u32(v)
        .filter(|p| (1..=65535).contains(p))
        .map(|p| p as u16)
}

/// Parses the arguments after the program name.
pub fn parse<'a, I: IntoIterator<Item = &'a [u8]>>(args: I) -> Result<Command<'a>, UsageError<'a>> {
    let mut it = args.into_iter();
    let mut server: Option<&'a [u8]> = None;
    let mut output: Option<&'a [u8]> = None;
    let mut o = Options::new([0; 4]);
    let mut dev: Option<&'a [u8]> = None;
    let mut init = false;
    let mut only_positional = false;
    while let Some(a) = it.next() {
        if only_positional || !a.starts_with(b"-") || a == b"-" {
            if server.is_none() {
                server = Some(a);
            } else if output.is_none() {
                output = Some(a);
            } else {
                return err("too many arguments (expected SERVER [OUTPUT])", a);
            }
            continue;
        }
        if a == b"--" {
            only_positional = true;
            continue;
        }
        // --name=value or --name value
        let (name, inline) = match a.iter().position(|&c| c == b'=') {
            Some(i) if a.starts_with(b"--") => (&a[..i], Some(&a[i + 1..])),
            _ => (a, None),
        };
        let flag = |inline: Option<&'a [u8]>| match inline {
            None => Ok(()),
            Some(_) => err("this option takes no value", a),
        };
        match name {
            b"-h" | b"--help" => {
                flag(inline)?;
                return Ok(Command::Help);
            }
            b"-V" | b"--version" => {
                flag(inline)?;
                return Ok(Command::Version);
            }
            b"-q" | b"--quiet" => {
                flag(inline)?;
                o.quiet = true;
                continue;
            }
            b"--init" => {
                flag(inline)?;
                init = true;
                continue;
            }
            b"--any-server" => {
                flag(inline)?;
                o.any_server = true;
                continue;
            }
            b"--assume-zeroed" => {
                flag(inline)?;
                o.assume_zeroed = true;
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => match name {
                b"-g" | b"--group" | b"-i" | b"--interface" | b"-p" | b"--port"
                | b"--control-port" | b"-t" | b"--timeout" | b"-d" | b"--dev" | b"--key-file"
                | b"--digest" => match it.next() {
                    Some(v) => v,
                    None => return err("option needs a value", a),
                },
                _ => return err("unknown option", a),
            },
        };
        match name {
            b"-g" | b"--group" => match parse_ipv4(value) {
                Some(g) if (224..=239).contains(&g[0]) => o.group = Some(g),
                _ => {
                    return err(
                        "--group must be an IPv4 multicast address (224.0.0.0 to 239.255.255.255)",
                        value,
                    );
                }
            },
            b"-i" | b"--interface" => {
                o.iface = match parse_ipv4(value) {
                    Some(ip) => Iface::Addr(ip),
                    None if !value.is_empty() && value.len() < 16 && !value.contains(&b'/') => {
                        Iface::Name(value)
                    }
                    None => {
                        return err(
                            "--interface must be a local IPv4 address or an interface name",
                            value,
                        );
                    }
                }
            }
            b"-p" | b"--port" => {
                o.port = parse_port(value).ok_or(UsageError {
                    msg: "--port must be 1..65535",
                    arg: value,
                })?
            }
            b"--control-port" => {
                o.control_port = parse_port(value).ok_or(UsageError {
                    msg: "--control-port must be 1..65535",
                    arg: value,
                })?
            }
            b"-t" | b"--timeout" => {
                o.timeout_s = parse_u32(value)
                    .filter(|t| (1..=86_400).contains(t))
                    .ok_or(UsageError {
                        msg: "--timeout must be 1..86400 seconds",
                        arg: value,
                    })?
            }
            b"-d" | b"--dev" => {
                let ok = value == b"auto"
                    || (!value.is_empty()
                        && value
                            .split(|&c| c == b',')
                            .all(|p| p.len() > 5 && p.starts_with(b"/dev/")));
                if !ok {
                    return err(
                        "--dev must be auto, a /dev/ path, a list /dev/nvme0n1,/dev/sda or a /dev/disk/by-id/ name",
                        value,
                    );
                }
                dev = Some(value);
            }
            b"--key-file" => {
                if value.is_empty() {
                    return err("--key-file needs a file name", value);
                }
                o.key_file = Some(value);
            }
            b"--digest" => {
                o.digest = Some(parse_hex32(value).map_err(|_| UsageError {
                    msg: "--digest must be the image digest as 64 hex digits (as bb-server and bb-client print it)",
                    arg: value,
                })?)
            }
            _ => return err("unknown option", a),
        }
    }
    if init {
        return Ok(Command::Init { quiet: o.quiet });
    }
    let Some(s) = server else {
        return err("missing SERVER (the server's IPv4 address)", b"");
    };
    o.server = match parse_ipv4(s) {
        Some(ip) if ip != [0; 4] && ip != [255; 4] && !(224..=239).contains(&ip[0]) => ip,
        _ => {
            return err(
                "SERVER must be the server's unicast IPv4 address, e.g. 10.0.0.1",
                s,
            );
        }
    };
    o.output = match (output, dev) {
        (Some(p), Some(_)) => return err("give either OUTPUT or --dev, not both", p),
        (None, Some(b"auto")) => Output::Auto,
        (None, Some(d)) => Output::Devices(d),
        (None | Some(b"-"), None) => Output::Stdout,
        (Some(p), None) if p.is_empty() => return err("OUTPUT must not be empty", p),
        (Some(p), None) => Output::Path(p),
    };
    Ok(Command::Receive(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&'static str]) -> Result<Command<'static>, UsageError<'static>> {
        parse(args.iter().map(|a| a.as_bytes()))
    }

    fn opts(args: &[&'static str]) -> Options<'static> {
        match p(args) {
            Ok(Command::Receive(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn minimal() {
        let o = opts(&["10.0.0.1"]);
        assert_eq!(o.server, [10, 0, 0, 1]);
        assert_eq!(o.output, Output::Stdout);
        assert_eq!((o.port, o.control_port, o.timeout_s), (7855, 7854, 60));
        assert_eq!(o.iface, Iface::Any);
        assert!(!o.quiet && !o.any_server && !o.assume_zeroed && o.group.is_none());
        assert!(o.key_file.is_none() && o.key.is_none() && o.digest.is_none());
        assert_eq!(opts(&["10.0.0.1", "-"]).output, Output::Stdout);
        assert_eq!(
            opts(&["10.0.0.1", "/dev/sda"]).output,
            Output::Path(b"/dev/sda")
        );
    }

    #[test]
    fn all_options() {
        let o = opts(&[
            "--group",
            "239.1.2.3",
            "--interface=eth0",
            "-p",
            "9000",
            "--control-port=9001",
            "--timeout",
            "5",
            "-q",
            "--any-server",
            "--assume-zeroed",
            "--key-file",
            "/etc/bb.key",
            "--digest=00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF",
            "10.0.0.1",
            "out.img",
        ]);
        assert_eq!(o.key_file, Some(&b"/etc/bb.key"[..]));
        let d = o.digest.unwrap();
        assert_eq!((d[0], d[1], d[31]), (0x00, 0x11, 0xff));
        assert_eq!(o.group, Some([239, 1, 2, 3]));
        assert_eq!(o.iface, Iface::Name(b"eth0"));
        assert_eq!((o.port, o.control_port, o.timeout_s), (9000, 9001, 5));
        assert!(o.quiet && o.any_server && o.assume_zeroed);
        assert_eq!(o.output, Output::Path(b"out.img"));
        assert_eq!(
            opts(&["-i", "10.0.0.7", "10.0.0.1"]).iface,
            Iface::Addr([10, 0, 0, 7])
        );
        // Options after positionals, and "--" before a path starting with '-'.
        let o = opts(&["10.0.0.1", "--", "-weird"]);
        assert_eq!(o.output, Output::Path(b"-weird"));
        assert!(opts(&["10.0.0.1", "x", "-q"]).quiet);
    }

    #[test]
    fn dev_rules() {
        let e = |a: &[&'static str]| p(a).unwrap_err();
        assert_eq!(opts(&["--dev", "auto", "10.0.0.1"]).output, Output::Auto);
        assert_eq!(
            opts(&["-d", "/dev/nvme0n1,/dev/sda", "10.0.0.1"]).output,
            Output::Devices(b"/dev/nvme0n1,/dev/sda")
        );
        assert_eq!(
            opts(&["--dev=/dev/disk/by-id/virtio-x", "10.0.0.1"]).output,
            Output::Devices(b"/dev/disk/by-id/virtio-x")
        );
        assert_eq!(e(&["--dev", "sda", "10.0.0.1"]).arg, b"sda");
        assert_eq!(e(&["--dev", "/dev/sda,", "10.0.0.1"]).arg, b"/dev/sda,");
        assert_eq!(
            e(&["--dev", "auto", "10.0.0.1", "/dev/sda"]).msg,
            "give either OUTPUT or --dev, not both"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["10.0.0.1", "-h"]), Ok(Command::Help));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(p(&["--init"]), Ok(Command::Init { quiet: false }));
        assert_eq!(p(&["--init", "-q"]), Ok(Command::Init { quiet: true }));
    }

    #[test]
    fn errors() {
        let e = |a: &[&'static str]| p(a).unwrap_err();
        assert_eq!(e(&[]).msg, "missing SERVER (the server's IPv4 address)");
        assert_eq!(e(&["10.0.0.1", "a", "b"]).arg, b"b");
        assert_eq!(e(&["--bogus", "10.0.0.1"]).arg, b"--bogus");
        assert_eq!(e(&["10.0.0.1", "--port"]).msg, "option needs a value");
        assert_eq!(e(&["--port", "0", "10.0.0.1"]).arg, b"0");
        assert_eq!(e(&["--port=70000", "10.0.0.1"]).arg, b"70000");
        assert_eq!(e(&["--timeout", "0", "10.0.0.1"]).arg, b"0");
        assert_eq!(e(&["--group", "10.0.0.1", "10.0.0.1"]).arg, b"10.0.0.1");
        assert_eq!(
            e(&["--quiet=1", "10.0.0.1"]).msg,
            "this option takes no value"
        );
        assert_eq!(
            e(&["--assume-zeroed=1", "10.0.0.1"]).msg,
            "this option takes no value"
        );
        assert_eq!(e(&["server.example"]).arg, b"server.example");
        assert_eq!(e(&["--digest", "abc", "10.0.0.1"]).arg, b"abc");
        assert_eq!(
            e(&["--key-file=", "10.0.0.1"]).msg,
            "--key-file needs a file name"
        );
        assert_eq!(e(&["10.0.0.1", "--key-file"]).msg, "option needs a value");
        assert_eq!(e(&["239.1.1.1"]).arg, b"239.1.1.1");
        assert_eq!(e(&["10.0.0.256"]).arg, b"10.0.0.256");
        assert_eq!(e(&["-i", "a/b", "10.0.0.1"]).arg, b"a/b");
        assert_eq!(
            e(&["-i", "averyveryverylongname", "10.0.0.1"]).arg,
            b"averyveryverylongname"
        );
    }
}
