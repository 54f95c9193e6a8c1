//! Pure parsers for the kernel command line (`bb.*` parameters) and the kernel's `ip=` syntax.
//!
//! No heap, no IO: everything is copied into fixed arrays inside [`Cmdline`]. Unit-tested on the
//! host with `cargo test -p bb-client`.

use crate::parse::{parse_ipv4, parse_u32};
use bb_proto::wire::auth::{PresharedKey, parse_hex32};

/// What to do when imaging has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneAction {
    Poweroff,
    Reboot,
    Halt,
    Shell,
}

impl DoneAction {
    pub fn parse(v: &[u8]) -> Option<DoneAction> {
        match v {
            b"poweroff" | b"off" => Some(DoneAction::Poweroff),
            b"reboot" => Some(DoneAction::Reboot),
            b"halt" => Some(DoneAction::Halt),
            b"shell" => Some(DoneAction::Shell),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DoneAction::Poweroff => "poweroff",
            DoneAction::Reboot => "reboot",
            DoneAction::Halt => "halt",
            DoneAction::Shell => "shell",
        }
    }
}

/// Interface-name buffer size (IFNAMSIZ).
pub const IFNAMSIZ: usize = 16;
/// Longest `bb.dev=` path kept (including the terminating NUL).
pub const DEV_MAX: usize = 128;

/// A short byte string in a fixed array, always NUL-terminated (usable as a C string).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    pub const fn new() -> Self {
        FixedStr {
            buf: [0; N],
            len: 0,
        }
    }
    /// Copies `s`; fails if it does not fit with its NUL or contains a NUL.
    pub fn from_bytes(s: &[u8]) -> Option<Self> {
        if s.len() >= N || s.contains(&0) {
            return None;
        }
        let mut f = Self::new();
        f.buf[..s.len()].copy_from_slice(s);
        f.len = s.len();
        Some(f)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// The bytes including the terminating NUL.
    pub fn as_bytes_with_nul(&self) -> &[u8] {
        &self.buf[..self.len + 1]
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> core::fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "\"")?;
        for &b in self.as_bytes() {
            if (0x20..0x7f).contains(&b) {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        write!(f, "\"")
    }
}

/// Netmask from a prefix length.
pub fn prefix_to_mask(p: u32) -> Option<[u8; 4]> {
    if p > 32 {
        return None;
    }
    let m: u32 = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    Some(m.to_be_bytes())
}

/// A netmask is valid when its ones are contiguous from the top.
pub fn mask_is_valid(m: [u8; 4]) -> bool {
    let v = u32::from_be_bytes(m);
    v.leading_ones() + v.trailing_zeros() == 32
}

/// The kernel's default (classful) netmask for an address, used when `ip=` gives none.
pub fn classful_mask(a: [u8; 4]) -> [u8; 4] {
    if a[0] < 128 {
        [255, 0, 0, 0]
    } else if a[0] < 192 {
        [255, 255, 0, 0]
    } else {
        [255, 255, 255, 0]
    }
}

/// How the network interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    /// Run our own DHCP client.
    Dhcp,
    /// Leave the network alone (`ip=off`/`ip=none`): someone else configured it.
    Off,
    /// A fixed address from `ip=client::gateway:netmask...`.
    Static,
}

/// The parsed `ip=` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub mode: IpMode,
    pub client: [u8; 4],
    pub gateway: Option<[u8; 4]>,
    pub netmask: [u8; 4],
    /// The `device` field: empty means "the first interface that is not lo".
    pub device: FixedStr<IFNAMSIZ>,
}

impl IpConfig {
    pub const fn dhcp() -> IpConfig {
        IpConfig {
            mode: IpMode::Dhcp,
            client: [0; 4],
            gateway: None,
            netmask: [0; 4],
            device: FixedStr::new(),
        }
    }
}

/// Why `ip=` was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpError {
    Client,
    Gateway,
    Netmask,
    Device,
    Autoconf,
}

/// Parses the value of the kernel's `ip=` parameter:
/// `dhcp|on|any|both|bootp|off|none` or
/// `<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>[:...]`.
/// The server and hostname fields are ignored; the netmask may also be a prefix length
/// ("24"). With no client address, or with autoconf `dhcp`/`on`/`any` and no client address,
/// the result is DHCP (on the named device, if any).
pub fn parse_ip(v: &[u8]) -> Result<IpConfig, IpError> {
    match v {
        b"dhcp" | b"on" | b"any" | b"both" | b"bootp" | b"rarp" | b"" => {
            return Ok(IpConfig::dhcp());
        }
        b"off" | b"none" => {
            let mut c = IpConfig::dhcp();
            c.mode = IpMode::Off;
            return Ok(c);
        }
        _ => {}
    }
    let mut fields: [&[u8]; 7] = [b""; 7];
    for (i, f) in v.split(|&c| c == b':').enumerate() {
        if i < 7 {
            fields[i] = f;
        }
    }
    let mut cfg = IpConfig::dhcp();
    if !fields[5].is_empty() {
        cfg.device = FixedStr::from_bytes(fields[5]).ok_or(IpError::Device)?;
        if fields[5].contains(&b'/') {
            return Err(IpError::Device);
        }
    }
    let autoconf = fields[6];
    let auto_dhcp = match autoconf {
        b"" | b"off" | b"none" => false,
        b"dhcp" | b"on" | b"any" | b"both" | b"bootp" | b"rarp" => true,
        _ => return Err(IpError::Autoconf),
    };
    if fields[0].is_empty() {
        if matches!(autoconf, b"off" | b"none") {
            cfg.mode = IpMode::Off;
        }
        // No address given: DHCP (explicit, or as the kernel would with an empty autoconf).
        return Ok(cfg);
    }
    let _ = auto_dhcp; // an explicit client address wins over the autoconf field
    cfg.mode = IpMode::Static;
    cfg.client = parse_ipv4(fields[0]).ok_or(IpError::Client)?;
    if !fields[2].is_empty() {
        cfg.gateway = Some(parse_ipv4(fields[2]).ok_or(IpError::Gateway)?);
        if cfg.gateway == Some([0, 0, 0, 0]) {
            cfg.gateway = None;
        }
    }
    cfg.netmask = if fields[3].is_empty() {
        classful_mask(cfg.client)
    } else if let Some(m) = parse_ipv4(fields[3]) {
        if !mask_is_valid(m) {
            return Err(IpError::Netmask);
        }
        m
    } else {
        parse_u32(fields[3])
            .and_then(prefix_to_mask)
            .ok_or(IpError::Netmask)?
    };
    Ok(cfg)
}

/// Everything broadband reads from the kernel command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmdline {
    pub server: Option<[u8; 4]>,
    pub dev: FixedStr<DEV_MAX>,
    pub group: Option<[u8; 4]>,
    pub port: Option<u16>,
    pub done: DoneAction,
    /// Seconds to wait for the NIC, the target device and a DHCP lease.
    pub timeout: u32,
    /// `bb.key=`: the pre-shared key, 64 hex digits.
    pub key: Option<PresharedKey>,
    /// `bb.digest=`: the only image digest accepted, 64 hex digits.
    pub digest: Option<[u8; 32]>,
    /// `bb.assume-zeroed` (or `=1`; `=0` turns it off): the disk already reads as zeros.
    pub assume_zeroed: bool,
    pub ip: IpConfig,
    /// Whether an `ip=` parameter was present at all.
    pub ip_given: bool,
}

/// Default for `bb.timeout=`.
pub const DEFAULT_TIMEOUT: u32 = 30;

/// Why the command line was rejected. `Missing*` are for required parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    MissingServer,
    BadServer,
    MissingDev,
    BadDev,
    BadGroup,
    BadPort,
    BadDone,
    BadTimeout,
    BadKey,
    BadDigest,
    BadAssumeZeroed,
    BadIp(IpError),
}

impl CmdlineError {
    pub fn message(self) -> &'static str {
        match self {
            CmdlineError::MissingServer => {
                "bb.server= is missing from the kernel command line (bb.server=SERVER-IP)"
            }
            CmdlineError::BadServer => "bb.server= must be an IPv4 address (bb.server=10.0.0.1)",
            CmdlineError::MissingDev => {
                "bb.dev= is missing from the kernel command line (bb.dev=auto or bb.dev=/dev/sda)"
            }
            CmdlineError::BadDev => {
                "bb.dev= must be auto, a /dev/ path, a list /dev/nvme0n1,/dev/sda or a /dev/disk/by-id/ name, at most 127 bytes"
            }
            CmdlineError::BadGroup => "bb.group= must be an IPv4 multicast address (224.0.0.0/4)",
            CmdlineError::BadPort => "bb.port= must be a number 1..65535",
            CmdlineError::BadDone => "bb.done= must be poweroff, reboot, halt or shell",
            CmdlineError::BadTimeout => "bb.timeout= must be a number of seconds 1..86400",
            CmdlineError::BadKey => {
                "bb.key= must be the key as 64 hex digits (the contents of the file bb-server --gen-key wrote)"
            }
            CmdlineError::BadDigest => {
                "bb.digest= must be the image digest as 64 hex digits (as bb-server prints it)"
            }
            CmdlineError::BadAssumeZeroed => {
                "bb.assume-zeroed takes no value, or 1 (on) or 0 (off)"
            }
            CmdlineError::BadIp(IpError::Client) => "ip=: bad client address",
            CmdlineError::BadIp(IpError::Gateway) => "ip=: bad gateway address",
            CmdlineError::BadIp(IpError::Netmask) => "ip=: bad netmask",
            CmdlineError::BadIp(IpError::Device) => "ip=: bad device name",
            CmdlineError::BadIp(IpError::Autoconf) => "ip=: bad autoconf field (off, dhcp)",
        }
    }
}

/// Splits a kernel command line into `key=value` words the way the kernel does: words are
/// separated by whitespace, and double quotes group (and are removed around) a value, as in
/// `key="a b"`. Calls `f(key, value)` for each word (value is empty when there is no `=`).
pub fn for_each_param(line: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
    let mut i = 0;
    let n = line.len();
    while i < n {
        while i < n && (line[i].is_ascii_whitespace() || line[i] == 0) {
            i += 1;
        }
        if i >= n {
            break;
        }
        let start = i;
        let mut in_quote = false;
        while i < n && (in_quote || !(line[i].is_ascii_whitespace() || line[i] == 0)) {
            if line[i] == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let word = &line[start..i];
        let (k, v) = match word.iter().position(|&c| c == b'=') {
            Some(p) => (&word[..p], &word[p + 1..]),
            None => (word, &word[word.len()..]),
        };
        let k = strip_quotes(k);
        let v = strip_quotes(v);
        f(k, v);
    }
}

fn strip_quotes(s: &[u8]) -> &[u8] {
    let s = if s.first() == Some(&b'"') { &s[1..] } else { s };
    if s.last() == Some(&b'"') {
        &s[..s.len() - 1]
    } else {
        s
    }
}

/// Parses the `bb.*` and `ip=` parameters out of a whole kernel command line.
/// Unknown parameters are ignored; a repeated parameter's last value wins.
pub fn parse_cmdline(line: &[u8]) -> Result<Cmdline, CmdlineError> {
    let mut c = Cmdline {
        server: None,
        dev: FixedStr::new(),
        group: None,
        port: None,
        done: DoneAction::Poweroff,
        timeout: DEFAULT_TIMEOUT,
        key: None,
        digest: None,
        assume_zeroed: false,
        ip: IpConfig::dhcp(),
        ip_given: false,
    };
    let mut err: Option<CmdlineError> = None;
    let mut dev_seen = false;
    for_each_param(line, |k, v| {
        let r: Result<(), CmdlineError> = (|| {
            match k {
                b"bb.server" => c.server = Some(parse_ipv4(v).ok_or(CmdlineError::BadServer)?),
                b"bb.dev" => {
                    dev_seen = true;
                    // auto, or one or more /dev/ paths separated by commas (disks.rs).
                    let paths_ok = v
                        .split(|&c| c == b',')
                        .all(|p| p.starts_with(b"/dev/") && p.len() > 5 && !p.contains(&b' '));
                    if v != b"auto" && !paths_ok {
                        return Err(CmdlineError::BadDev);
                    }
                    c.dev = FixedStr::from_bytes(v).ok_or(CmdlineError::BadDev)?;
                }
                b"bb.group" => {
                    if v.is_empty() {
                        c.group = None;
                    } else {
                        let g = parse_ipv4(v).ok_or(CmdlineError::BadGroup)?;
                        if g[0] & 0xf0 != 0xe0 {
                            return Err(CmdlineError::BadGroup);
                        }
                        c.group = Some(g);
                    }
                }
                b"bb.port" => {
                    let p = parse_u32(v).ok_or(CmdlineError::BadPort)?;
                    if p == 0 || p > 65535 {
                        return Err(CmdlineError::BadPort);
                    }
                    c.port = Some(p as u16);
                }
                b"bb.done" => c.done = DoneAction::parse(v).ok_or(CmdlineError::BadDone)?,
                b"bb.timeout" => {
                    let t = parse_u32(v).ok_or(CmdlineError::BadTimeout)?;
                    if t == 0 || t > 86400 {
                        return Err(CmdlineError::BadTimeout);
                    }
                    c.timeout = t;
                }
                b"bb.key" => {
                    c.key = Some(PresharedKey::parse_hex(v).map_err(|_| CmdlineError::BadKey)?)
                }
                b"bb.digest" => {
                    c.digest = Some(parse_hex32(v).map_err(|_| CmdlineError::BadDigest)?)
                }
                b"bb.assume-zeroed" => {
                    c.assume_zeroed = match v {
                        b"" | b"1" => true,
                        b"0" => false,
                        _ => return Err(CmdlineError::BadAssumeZeroed),
                    }
                }
                b"ip" => {
                    c.ip = parse_ip(v).map_err(CmdlineError::BadIp)?;
                    c.ip_given = true;
                }
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = r
            && err.is_none()
        {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if c.server.is_none() {
        return Err(CmdlineError::MissingServer);
    }
    if !dev_seen {
        return Err(CmdlineError::MissingDev);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_to_mask(24), Some([255, 255, 255, 0]));
        assert_eq!(prefix_to_mask(0), Some([0; 4]));
        assert_eq!(prefix_to_mask(32), Some([255; 4]));
        assert_eq!(prefix_to_mask(33), None);
        assert!(mask_is_valid([255, 255, 254, 0]));
        assert!(mask_is_valid([0; 4]));
        assert!(!mask_is_valid([255, 0, 255, 0]));
        assert_eq!(classful_mask([10, 1, 2, 3]), [255, 0, 0, 0]);
        assert_eq!(classful_mask([172, 16, 0, 1]), [255, 255, 0, 0]);
        assert_eq!(classful_mask([192, 168, 0, 1]), [255, 255, 255, 0]);
    }

    #[test]
    fn ip_ipxe_form() {
        // What boot.ipxe produces: ip=${ip}::${gateway}:${netmask}
        let c = parse_ip(b"10.99.0.101::10.99.0.1:255.255.255.0").unwrap();
        assert_eq!(c.mode, IpMode::Static);
        assert_eq!(c.client, [10, 99, 0, 101]);
        assert_eq!(c.gateway, Some([10, 99, 0, 1]));
        assert_eq!(c.netmask, [255, 255, 255, 0]);
        assert!(c.device.is_empty());
        // No router offered: iPXE leaves ${gateway} empty.
        let c = parse_ip(b"10.99.0.101:::255.255.255.0").unwrap();
        assert_eq!(c.gateway, None);
        // Gateway 0.0.0.0 means none.
        let c = parse_ip(b"10.99.0.101::0.0.0.0:255.255.255.0").unwrap();
        assert_eq!(c.gateway, None);
    }

    #[test]
    fn ip_full_form() {
        let c =
            parse_ip(b"192.168.1.5:192.168.1.1:192.168.1.254:255.255.0.0:box:eth1:off").unwrap();
        assert_eq!(c.mode, IpMode::Static);
        assert_eq!(c.client, [192, 168, 1, 5]);
        assert_eq!(c.gateway, Some([192, 168, 1, 254]));
        assert_eq!(c.netmask, [255, 255, 0, 0]);
        assert_eq!(c.device.as_bytes(), b"eth1");
        assert_eq!(c.device.as_bytes_with_nul(), b"eth1\0");
        // extra dns/ntp fields are ignored
        let c = parse_ip(b"10.0.0.2::10.0.0.1:24:h:eth0:none:10.0.0.1:10.0.0.9").unwrap();
        assert_eq!(c.netmask, [255, 255, 255, 0]);
        // missing netmask: classful default
        let c = parse_ip(b"10.0.0.2::10.0.0.1").unwrap();
        assert_eq!(c.netmask, [255, 0, 0, 0]);
        let c = parse_ip(b"10.0.0.2").unwrap();
        assert_eq!(c.mode, IpMode::Static);
        assert_eq!(c.gateway, None);
    }

    #[test]
    fn ip_dhcp_and_off() {
        for v in [&b"dhcp"[..], b"on", b"any", b"bootp", b""] {
            assert_eq!(parse_ip(v).unwrap().mode, IpMode::Dhcp);
        }
        assert_eq!(parse_ip(b"off").unwrap().mode, IpMode::Off);
        assert_eq!(parse_ip(b"none").unwrap().mode, IpMode::Off);
        let c = parse_ip(b":::::eth2:dhcp").unwrap();
        assert_eq!(c.mode, IpMode::Dhcp);
        assert_eq!(c.device.as_bytes(), b"eth2");
        assert_eq!(parse_ip(b":::::eth2:off").unwrap().mode, IpMode::Off);
        // an explicit address wins over autoconf=dhcp
        assert_eq!(
            parse_ip(b"10.0.0.2::10.0.0.1:255.0.0.0::eth0:dhcp")
                .unwrap()
                .mode,
            IpMode::Static
        );
    }

    #[test]
    fn ip_errors() {
        assert_eq!(
            parse_ip(b"10.0.0.300::10.0.0.1:255.0.0.0"),
            Err(IpError::Client)
        );
        assert_eq!(
            parse_ip(b"10.0.0.3::10.0.0:255.0.0.0"),
            Err(IpError::Gateway)
        );
        assert_eq!(
            parse_ip(b"10.0.0.3::10.0.0.1:255.0.255.0"),
            Err(IpError::Netmask)
        );
        assert_eq!(parse_ip(b"10.0.0.3::10.0.0.1:33"), Err(IpError::Netmask));
        assert_eq!(
            parse_ip(b"10.0.0.3::10.0.0.1:24::averyveryverylongifname:"),
            Err(IpError::Device)
        );
        assert_eq!(
            parse_ip(b"10.0.0.3::10.0.0.1:24::../x:"),
            Err(IpError::Device)
        );
        assert_eq!(
            parse_ip(b"10.0.0.3::10.0.0.1:24::eth0:maybe"),
            Err(IpError::Autoconf)
        );
        assert_eq!(parse_ip(b"garbage"), Err(IpError::Client));
    }

    #[test]
    fn cmdline_typical() {
        let line = b"BOOT_IMAGE=vmlinuz console=ttyS0 quiet panic=-1 bb.server=10.99.0.1 bb.dev=/dev/vda ip=10.99.0.101::10.99.0.1:255.255.255.0\n";
        let c = parse_cmdline(line).unwrap();
        assert_eq!(c.server, Some([10, 99, 0, 1]));
        assert_eq!(c.dev.as_bytes(), b"/dev/vda");
        assert_eq!(c.dev.as_bytes_with_nul(), b"/dev/vda\0");
        assert_eq!(c.done, DoneAction::Poweroff);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.group, None);
        assert_eq!(c.port, None);
        assert!(c.ip_given);
        assert_eq!(c.ip.mode, IpMode::Static);
        assert_eq!(c.ip.client, [10, 99, 0, 101]);
        assert!(c.key.is_none() && c.digest.is_none());
    }

    #[test]
    fn cmdline_all_options() {
        let line = b"bb.server=192.168.7.1 bb.dev=/dev/nvme0n1 bb.group=239.1.2.3 bb.port=9000 bb.done=reboot bb.timeout=120 bb.key=\"00112233445566778899aabbccddeeff 00112233445566778899aabbccddeeff\" bb.digest=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100 ip=dhcp";
        let c = parse_cmdline(line).unwrap();
        assert_eq!(c.server, Some([192, 168, 7, 1]));
        assert_eq!(c.dev.as_bytes(), b"/dev/nvme0n1");
        assert_eq!(c.group, Some([239, 1, 2, 3]));
        assert_eq!(c.port, Some(9000));
        assert_eq!(c.done, DoneAction::Reboot);
        assert_eq!(c.timeout, 120);
        let mut hex = [0u8; 64];
        c.key.unwrap().to_hex(&mut hex);
        assert_eq!(
            &hex[..],
            b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        );
        let d = c.digest.unwrap();
        assert_eq!((d[0], d[15], d[31]), (0xff, 0x00, 0x00));
        assert_eq!(c.ip.mode, IpMode::Dhcp);
        assert!(!c.assume_zeroed);
        let zeroed = |extra: &[u8]| {
            let mut buf = [0u8; 96];
            let pre = b"bb.server=1.2.3.4 bb.dev=/dev/sda ";
            buf[..pre.len()].copy_from_slice(pre);
            buf[pre.len()..pre.len() + extra.len()].copy_from_slice(extra);
            parse_cmdline(&buf[..pre.len() + extra.len()]).map(|c| c.assume_zeroed)
        };
        assert_eq!(zeroed(b"bb.assume-zeroed"), Ok(true));
        assert_eq!(zeroed(b"bb.assume-zeroed=1"), Ok(true));
        assert_eq!(zeroed(b"bb.assume-zeroed bb.assume-zeroed=0"), Ok(false));
        assert_eq!(
            zeroed(b"bb.assume-zeroed=yes"),
            Err(CmdlineError::BadAssumeZeroed)
        );
        for (v, d) in [
            ("halt", DoneAction::Halt),
            ("shell", DoneAction::Shell),
            ("poweroff", DoneAction::Poweroff),
        ] {
            let mut buf = [0u8; 64];
            let s = format!("bb.server=1.2.3.4 bb.dev=/dev/sda bb.done={v}");
            buf[..s.len()].copy_from_slice(s.as_bytes());
            assert_eq!(parse_cmdline(&buf[..s.len()]).unwrap().done, d);
        }
    }

    #[test]
    fn cmdline_no_ip_means_dhcp_and_last_wins() {
        let c = parse_cmdline(
            b"bb.server=1.2.3.4 bb.server=5.6.7.8 bb.dev=/dev/sda  \t bb.dev=/dev/sdb",
        )
        .unwrap();
        assert_eq!(c.server, Some([5, 6, 7, 8]));
        assert_eq!(c.dev.as_bytes(), b"/dev/sdb");
        assert!(!c.ip_given);
        assert_eq!(c.ip.mode, IpMode::Dhcp);
        // similarly named parameters are not ours
        let c = parse_cmdline(
            b"bb.server=1.2.3.4 bb.dev=/dev/sda xbb.dev=/dev/x bb.devx=/dev/y bb.server",
        )
        .unwrap_err();
        assert_eq!(c, CmdlineError::BadServer);
    }

    #[test]
    fn cmdline_errors() {
        assert_eq!(
            parse_cmdline(b"bb.dev=/dev/sda"),
            Err(CmdlineError::MissingServer)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4"),
            Err(CmdlineError::MissingDev)
        );
        assert_eq!(parse_cmdline(b""), Err(CmdlineError::MissingServer));
        assert_eq!(
            parse_cmdline(b"bb.server=host.example bb.dev=/dev/sda"),
            Err(CmdlineError::BadServer)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=sda"),
            Err(CmdlineError::BadDev)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/"),
            Err(CmdlineError::BadDev)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda,sdb"),
            Err(CmdlineError::BadDev)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=automatic"),
            Err(CmdlineError::BadDev)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.group=10.0.0.1"),
            Err(CmdlineError::BadGroup)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.port=0"),
            Err(CmdlineError::BadPort)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.port=70000"),
            Err(CmdlineError::BadPort)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.done=explode"),
            Err(CmdlineError::BadDone)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.timeout=0"),
            Err(CmdlineError::BadTimeout)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda ip=1.2.3"),
            Err(CmdlineError::BadIp(IpError::Client))
        );
        let long = [b'a'; 200];
        let mut line = [0u8; 300];
        let pre = b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.key=";
        line[..pre.len()].copy_from_slice(pre);
        line[pre.len()..pre.len() + 200].copy_from_slice(&long);
        assert_eq!(
            parse_cmdline(&line[..pre.len() + 200]),
            Err(CmdlineError::BadKey)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.key=s3cret"),
            Err(CmdlineError::BadKey)
        );
        assert_eq!(
            parse_cmdline(b"bb.server=1.2.3.4 bb.dev=/dev/sda bb.digest=00ff"),
            Err(CmdlineError::BadDigest)
        );
        // every error has a message
        assert!(CmdlineError::MissingServer.message().contains("bb.server"));
    }

    #[test]
    fn param_splitting() {
        let mut seen: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for_each_param(b"  a=1 b \"c=x y\" d=\"p q\"\0\n", |k, v| {
            seen.push((k.to_vec(), v.to_vec()))
        });
        assert_eq!(
            seen,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"".to_vec()),
                (b"c".to_vec(), b"x y".to_vec()),
                (b"d".to_vec(), b"p q".to_vec()),
            ]
        );
    }

    #[test]
    fn dev_takes_auto_and_lists() {
        for v in [
            "auto",
            "/dev/nvme0n1,/dev/sda",
            "/dev/disk/by-id/virtio-bb1,/dev/vda",
        ] {
            let line = format!("bb.server=1.2.3.4 bb.dev={v}");
            assert_eq!(
                parse_cmdline(line.as_bytes()).unwrap().dev.as_bytes(),
                v.as_bytes()
            );
        }
    }
}
