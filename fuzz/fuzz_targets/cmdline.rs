//! The kernel command line parser (bb.* and ip=) of the client's /init, on arbitrary bytes:
//! never a panic, and every accepted line satisfies what the rest of /init relies on.
#![no_main]

use bb_proto::wire::auth::{PresharedKey, parse_hex32};
use libfuzzer_sys::fuzz_target;

// The client is a no_std binary: its pure parsers are included as they are.
#[allow(dead_code)]
#[path = "../../client-static/src/init/cmdline.rs"]
mod cmdline;
#[allow(dead_code)]
#[path = "../../client-static/src/parse.rs"]
mod parse;

use cmdline::{
    DEV_MAX, IFNAMSIZ, IpConfig, IpMode, for_each_param, mask_is_valid, parse_cmdline, parse_ip,
};

/// What every parsed `ip=` promises the network setup.
fn check_ip(ip: &IpConfig) {
    assert!(ip.device.as_bytes().len() < IFNAMSIZ);
    assert!(!ip.device.as_bytes().contains(&b'/') && !ip.device.as_bytes().contains(&0));
    assert_eq!(ip.device.as_bytes_with_nul().last(), Some(&0));
    if ip.mode == IpMode::Static {
        assert!(mask_is_valid(ip.netmask), "{ip:?}");
        assert_ne!(ip.gateway, Some([0; 4]));
    }
}

fuzz_target!(|line: &[u8]| {
    // Every word is a piece of the line: no byte is invented or read out of bounds.
    let range = line.as_ptr_range();
    let mut words = 0usize;
    let (mut key_word, mut digest_word) = (None, None);
    for_each_param(line, |k, v| {
        match k {
            b"bb.key" => key_word = Some(PresharedKey::parse_hex(v)),
            b"bb.digest" => digest_word = Some(parse_hex32(v)),
            _ => {}
        }
        for s in [k, v] {
            assert!(s.is_empty() || (range.contains(&s.as_ptr()) && s.len() <= line.len()));
        }
        words += 1;
    });
    assert!(words <= line.len());

    if let Ok(ip) = parse_ip(line) {
        check_ip(&ip);
    }
    if let Ok(c) = parse_cmdline(line) {
        assert!(c.server.is_some());
        let dev = c.dev.as_bytes();
        assert!(dev.starts_with(b"/dev/") && dev.len() > 5 && dev.len() < DEV_MAX);
        assert!(!dev.contains(&b' ') && !dev.contains(&0));
        assert!(c.group.is_none_or(|g| g[0] & 0xf0 == 0xe0));
        assert!(c.port.is_none_or(|p| p != 0));
        assert!((1..=86400).contains(&c.timeout));
        // The key and the pinned digest are those of the last bb.key= and bb.digest= words
        // (later words win, as for every parameter), and only ever from 64 hex digits.
        assert_eq!(c.key, key_word.map(|k| k.unwrap()));
        assert_eq!(c.digest, digest_word.map(|d| d.unwrap()));
        check_ip(&c.ip);
        if !c.ip_given {
            assert_eq!(c.ip, IpConfig::dhcp());
        }
    }
});
