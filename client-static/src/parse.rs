//! Parsers of numbers and addresses shared by the command line (`args`) and the kernel
//! command line (`init::cmdline`).

/// Parses a dotted-quad IPv4 address ("10.0.0.1"), nothing else.
pub fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut part = 0usize;
    let mut val: u32 = 0;
    let mut digits = 0usize;
    for &c in s {
        match c {
            b'0'..=b'9' => {
                val = val * 10 + (c - b'0') as u32;
                digits += 1;
                if digits > 3 || val > 255 {
                    return None;
                }
            }
            b'.' => {
                if digits == 0 || part >= 3 {
                    return None;
                }
                out[part] = val as u8;
                part += 1;
                val = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 || part != 3 {
        return None;
    }
    out[3] = val as u8;
    Some(out)
}

/// Parses a decimal number that fits u32.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    if v > u32::MAX as u64 {
        None
    } else {
        Some(v as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4() {
        assert_eq!(parse_ipv4(b"10.99.0.1"), Some([10, 99, 0, 1]));
        assert_eq!(parse_ipv4(b"255.255.255.255"), Some([255; 4]));
        assert_eq!(parse_ipv4(b"0.0.0.0"), Some([0; 4]));
        for bad in [
            &b""[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"256.1.1.1",
            b"1..2.3",
            b"1.2.3.",
            b".1.2.3",
            b"a.b.c.d",
            b"1.2.3.4 ",
            b"0001.2.3.4",
            b"1.2.3.-4",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"12a"), None);
    }
}
