//! Text without a heap: a fixed-buffer writer and integer-only number formatting.

use core::fmt::{self, Write};

/// A fixed-capacity text buffer implementing [`core::fmt::Write`]. Text past the capacity is
/// dropped (and [`Buf::truncated`] says so); it never fails a `write!`.
pub struct Buf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn as_str(&self) -> &str {
        // Only whole `str`s and whole UTF-8 characters of them are ever appended.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn truncated(&self) -> bool {
        self.truncated
    }
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }
    /// Appends raw bytes (cut at the capacity).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        if n < b.len() {
            self.truncated = true;
        }
        self
    }
    /// Appends a string, cut at a character boundary when it does not fit.
    pub fn str(&mut self, s: &str) -> &mut Self {
        let mut n = s.len().min(N - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes(&s.as_bytes()[..n]);
        if n < s.len() {
            self.truncated = true;
        }
        self
    }
    /// Appends anything `Display`.
    #[allow(dead_code)]
    pub fn show(&mut self, v: impl fmt::Display) -> &mut Self {
        let _ = write!(self, "{v}");
        self
    }
}

impl<const N: usize> Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// `value / 10^scale` with `decimals` digits after the point, rounded half up:
/// `Fixed { value: 12345, scale: 3, decimals: 1 }` shows "12.3".
#[derive(Clone, Copy, Debug)]
pub struct Fixed {
    pub value: u64,
    pub scale: u32,
    pub decimals: u32,
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.decimals.min(self.scale);
        let drop = 10u128.pow(self.scale - d);
        let v = (self.value as u128 + drop / 2) / drop;
        let unit = 10u128.pow(d);
        if d == 0 {
            write!(f, "{}", v)
        } else {
            write!(f, "{}.{:0w$}", v / unit, v % unit, w = d as usize)
        }
    }
}

/// Decimal megabytes per second (10^6 B/s) with one decimal, e.g. "112.5".
pub fn mb_per_s(bytes: u64, micros: u64) -> Fixed {
    // bytes / micros = MB/s exactly; keep three digits for rounding.
    let v = if micros == 0 {
        0
    } else {
        (bytes as u128 * 1000 / micros as u128).min(u64::MAX as u128) as u64
    };
    Fixed {
        value: v,
        scale: 3,
        decimals: 1,
    }
}

/// Seconds with one decimal from microseconds, e.g. "12.3".
pub fn seconds(micros: u64) -> Fixed {
    Fixed {
        value: micros,
        scale: 6,
        decimals: 1,
    }
}

/// A percentage with one decimal from parts per million, e.g. 12_345 ppm -> "1.2".
pub fn percent_ppm(ppm: u32) -> Fixed {
    Fixed {
        value: ppm as u64,
        scale: 4,
        decimals: 1,
    }
}

/// Percentage of `done` out of `total` with one decimal ("100.0" when total is 0).
pub fn percent(done: u64, total: u64) -> Fixed {
    let v = if total == 0 {
        1000
    } else {
        (done as u128 * 1000 / total as u128) as u64
    };
    Fixed {
        value: v,
        scale: 1,
        decimals: 1,
    }
}

/// Lower-case hex of a byte string.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An IPv4 address in dotted quad.
pub struct Ip(pub [u8; 4]);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
    }
}

/// Bytes that are mostly text (a path from argv): shown as UTF-8, invalid bytes as '?'.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("?")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: impl fmt::Display) -> std::string::String {
        let mut b = Buf::<64>::new();
        b.show(v);
        b.as_str().into()
    }

    #[test]
    fn fixed_rounds() {
        assert_eq!(
            show(Fixed {
                value: 12345,
                scale: 3,
                decimals: 1
            }),
            "12.3"
        );
        assert_eq!(
            show(Fixed {
                value: 12350,
                scale: 3,
                decimals: 1
            }),
            "12.4"
        );
        assert_eq!(
            show(Fixed {
                value: 5,
                scale: 3,
                decimals: 2
            }),
            "0.01"
        );
        assert_eq!(
            show(Fixed {
                value: 7,
                scale: 0,
                decimals: 1
            }),
            "7"
        );
        assert_eq!(
            show(Fixed {
                value: 999_999,
                scale: 6,
                decimals: 1
            }),
            "1.0"
        );
    }

    #[test]
    fn rates_and_units() {
        assert_eq!(show(mb_per_s(1_000_000, 1_000_000)), "1.0");
        assert_eq!(show(mb_per_s(4_294_967_296, 3_000_000)), "1431.7");
        assert_eq!(show(mb_per_s(10, 0)), "0.0");
        assert_eq!(show(seconds(12_345_678)), "12.3");
        assert_eq!(show(percent_ppm(12_345)), "1.2");
        assert_eq!(show(percent_ppm(0)), "0.0");
        assert_eq!(show(percent(1, 3)), "33.3");
        assert_eq!(show(percent(3, 3)), "100.0");
        assert_eq!(show(percent(0, 0)), "100.0");
        assert_eq!(show(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn hex_ip_lossy() {
        assert_eq!(show(Hex(&[0, 0xab, 0x10])), "00ab10");
        assert_eq!(show(Ip([10, 0, 0, 255])), "10.0.0.255");
        assert_eq!(show(Lossy(b"/dev/sd\xffa")), "/dev/sd?a");
    }

    #[test]
    fn buf_truncates() {
        let mut b = Buf::<5>::new();
        let _ = write!(b, "{}", 1234567);
        assert_eq!(b.as_str(), "12345");
        assert!(b.truncated());
        let mut b = Buf::<3>::new();
        b.str("aé€");
        assert_eq!(b.as_str(), "aé");
        b.clear();
        assert!(b.is_empty());
    }
}
