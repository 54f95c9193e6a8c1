//! Authentication (docs/PROTOCOL.md section 9): the pre-shared key, the per-session MAC
//! keys derived from it, and the 16-byte tag that ends every packet of a keyed session.
//!
//! The MAC is HMAC-SHA256 (RFC 2104, FIPS 198-1) truncated to its first 128 bits (as
//! RFC 4868 truncates it for IPsec). `bb-bench mac` measures the candidates: with SHA-NI it
//! is the fastest one that needs no nonce (about twice keyed BLAKE3 on 1.4 KB packets,
//! where BLAKE3's SIMD lanes have a single chunk to work on). Only GMAC is faster, and a
//! nonce-based MAC (GMAC, Poly1305) needs a value that never repeats under one key in every
//! packet of every type from every sender: the wire has none (data sequence numbers wrap
//! after 2^32 packets, 5.6 TiB at the default geometry; announces, reports and results
//! carry no counter), and one repeated GMAC nonce gives away the hash key, so forgeries.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::field::{get_u16, header, put_u16, put_u32};
use super::{CRC_LEN, HEADER_LEN, WireError, crc32};

/// Bytes of the tag that ends every packet of a keyed session.
pub const TAG_LEN: usize = 16;
/// Bytes of a pre-shared key.
pub const KEY_LEN: usize = 32;
/// Header flag bit 0: the packet ends with a tag.
pub const FLAG_TAGGED: u16 = 1;

const KDF_CONTEXT: &str = "broadband 2026-12 session mac key v3";

/// The operator's 32-byte secret, shared by the server and its clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PresharedKey([u8; KEY_LEN]);

impl core::fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

/// Why a key file's contents are not a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// Hex text, but not 64 digits: the number of hex digits found.
    WrongLength(usize),
    /// A character that is neither a hex digit nor whitespace, at this byte offset.
    NotHex(usize),
    /// Neither hex text nor exactly 32 bytes: the file's length in bytes.
    NotAKey(usize),
}

impl core::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongLength(n) => write!(
                f,
                "{n} hex digits; expected 64 hex digits (32 bytes, whitespace allowed) or exactly 32 raw bytes"
            ),
            Self::NotAKey(n) => write!(
                f,
                "{n} bytes that are not hex text; expected 64 hex digits (32 bytes, whitespace allowed) or exactly 32 raw bytes"
            ),
            Self::NotHex(at) => write!(
                f,
                "byte {at} is not a hex digit; expected 64 hex digits (32 bytes, whitespace allowed) or exactly 32 raw bytes"
            ),
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Reads 32 bytes written as 64 hex digits, whitespace allowed anywhere (a key, or an
/// image digest to pin).
pub fn parse_hex32(text: &[u8]) -> Result<[u8; 32], KeyFileError> {
    let mut out = [0u8; 32];
    let mut digits = 0usize;
    for (at, &c) in text.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = hex_value(c).ok_or(KeyFileError::NotHex(at))?;
        if digits < 64 {
            out[digits / 2] |= v << (4 * (1 - digits % 2));
        }
        digits += 1;
    }
    if digits != 64 {
        return Err(KeyFileError::WrongLength(digits));
    }
    Ok(out)
}

impl PresharedKey {
    /// The key of these bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads a key file's contents: exactly 32 raw bytes, or 64 hex digits with any
    /// whitespace around and between them.
    pub fn parse(contents: &[u8]) -> Result<Self, KeyFileError> {
        if contents.len() == KEY_LEN {
            let mut k = [0; KEY_LEN];
            k.copy_from_slice(contents);
            return Ok(Self(k));
        }
        match Self::parse_hex(contents) {
            Err(KeyFileError::NotHex(_)) => Err(KeyFileError::NotAKey(contents.len())),
            other => other,
        }
    }

    /// Reads 64 hex digits, whitespace allowed (the `bb.key=` kernel parameter).
    pub fn parse_hex(text: &[u8]) -> Result<Self, KeyFileError> {
        parse_hex32(text).map(Self)
    }

    /// Writes the key as 64 lowercase hex digits.
    pub fn to_hex(&self, out: &mut [u8; 2 * KEY_LEN]) {
        crate::digest::to_hex(&self.0, out);
    }
}

/// Who sent a packet: each direction of a session has its own MAC key, so a client's
/// packet can never pass as the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    /// Data, announces, zero maps, result acks.
    FromServer = 1,
    /// Status reports, results.
    FromClient = 2,
}

/// The MAC key of one direction of one session, with HMAC's inner and outer pads already
/// hashed (two SHA-256 blocks saved per packet).
#[derive(Clone)]
pub struct MacKey {
    key: [u8; 32],
    keyed: hmac::Hmac<Sha256>,
}

impl PartialEq for MacKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for MacKey {}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// BLAKE3 derive-key (context [`KDF_CONTEXT`]) over `psk || u64le(session) ||
    /// u8(direction)`: a new session id, drawn at random by every server start, gives new
    /// keys, and a packet of one session or direction never verifies in another.
    pub fn derive(psk: &PresharedKey, session: u64, direction: Direction) -> Self {
        let mut h = blake3::Hasher::new_derive_key(KDF_CONTEXT);
        h.update(&psk.0);
        h.update(&session.to_le_bytes());
        h.update(&[direction as u8]);
        let key = *h.finalize().as_bytes();
        let keyed = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .expect("HMAC takes a key of any length");
        Self { key, keyed }
    }

    /// The tag of `bytes`: HMAC-SHA256, first 16 bytes.
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut m = self.keyed.clone();
        m.update(bytes);
        let full = m.finalize().into_bytes();
        let mut t = [0; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    /// True when `tag` is the tag of `bytes`, compared without an early exit.
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let want = self.tag(bytes);
        tag.len() == TAG_LEN && want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Turns the untagged packet of `len` bytes in `buf` (as a `write_*` function built it)
/// into a tagged one: sets header flag bit 0, recomputes the CRC, appends the tag over
/// everything before it. Returns the new length.
pub fn sign(buf: &mut [u8], len: usize, key: &MacKey) -> Result<usize, WireError> {
    if len < HEADER_LEN + CRC_LEN || len > buf.len() {
        return Err(WireError::BadLength);
    }
    if buf.len() < len + TAG_LEN {
        return Err(WireError::BufferTooSmall);
    }
    let flags = get_u16(buf, header::FLAGS) | FLAG_TAGGED;
    put_u16(buf, header::FLAGS, flags);
    let body = len - CRC_LEN;
    let crc = crc32(&buf[..body]);
    put_u32(buf, body..len, crc);
    let tag = key.tag(&buf[..len]);
    buf[len..len + TAG_LEN].copy_from_slice(&tag);
    Ok(len + TAG_LEN)
}

/// The two MAC keys one end of a session uses: one to tag what it sends, one to check
/// what it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionMacs {
    /// Tags this end's packets.
    pub send: MacKey,
    /// Checks the other end's packets.
    pub receive: MacKey,
}

impl SessionMacs {
    /// The server's keys for `session`.
    pub fn server(psk: &PresharedKey, session: u64) -> Self {
        Self {
            send: MacKey::derive(psk, session, Direction::FromServer),
            receive: MacKey::derive(psk, session, Direction::FromClient),
        }
    }
    /// A client's keys for `session`.
    pub fn client(psk: &PresharedKey, session: u64) -> Self {
        Self {
            send: MacKey::derive(psk, session, Direction::FromClient),
            receive: MacKey::derive(psk, session, Direction::FromServer),
        }
    }
}
