//! Authentication (docs/PROTOCOL.md section 9): the pre-shared key, the per-session MAC
//! keys derived from it, and the trailer (a 64-bit packet counter and a 16-byte tag) that
//! ends every packet of a keyed session.
//!
//! The tag is the AES-128-GCM tag (NIST SP 800-38D) of the packet, counter included, sent
//! as the plaintext (the ciphertext is thrown away) under a 96-bit nonce `u32le(0) ||
//! u64le(counter)`. `bb-bench mac` measured it the fastest standard MAC on 1.4 KB packets:
//! ring's VAES/VPCLMULQDQ (or AES-NI/PCLMULQDQ) assembly runs on the plaintext path, about
//! 3x HMAC-SHA256 with SHA-NI and 1.4-2x GMAC (GCM with the packet as associated data, which
//! ring and RustCrypto hash one block at a time). Forging a tag for a new packet under a
//! nonce is forging a GCM ciphertext (the encryption is a bijection for a fixed nonce), so
//! GCM's authenticity bound holds as is.
//!
//! A nonce must never repeat under one key: one repeat gives away GHASH's key, and with it
//! forgeries of any packet under that key. Nonces are unique by construction: every key
//! has exactly one sender (the server's key is derived from the session id and the
//! direction, a client's also from its own 64-bit client id), and every sender counts its
//! packets from 0 upwards in one [`SessionMacs`], never reusing a value.

use core::borrow::Borrow;
use core::cell::{Cell, RefCell};

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use super::field::{get_u16, get_u64, header, put_u16, put_u32, put_u64};
use super::{CRC_LEN, HEADER_LEN, MAX_DATAGRAM, WireError, crc32};

/// Bytes of the tag that ends every packet of a keyed session.
pub const TAG_LEN: usize = 16;
/// Bytes of the sender's packet counter, just before the tag.
pub const COUNTER_LEN: usize = 8;
/// Bytes a keyed session adds to every packet: the counter and the tag.
pub const TRAILER_LEN: usize = COUNTER_LEN + TAG_LEN;
/// Bytes of a pre-shared key.
pub const KEY_LEN: usize = 32;
/// Header flag bit 0: the packet ends with a counter and a tag.
pub const FLAG_TAGGED: u16 = 1;

const KDF_CONTEXT: &str = "broadband 2026-12 session aes-128-gcm key v3";

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

/// The AES-128-GCM key of one sender of one session.
#[derive(Clone)]
pub struct MacKey {
    derived: [u8; 32],
    aead: LessSafeKey,
    /// Where a standard-MTU packet is copied to be encrypted (the ciphertext is dropped):
    /// kept, not zeroed again for every packet.
    scratch: RefCell<[u8; STANDARD_SCRATCH]>,
}

impl PartialEq for MacKey {
    fn eq(&self, other: &Self) -> bool {
        self.derived == other.derived
    }
}

impl Eq for MacKey {}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// Scratch bytes for the tag of a packet of a 1500-byte MTU (1472 at most, with room).
const STANDARD_SCRATCH: usize = 1536;

/// The sender of every packet from the server (`sender` of [`MacKey::derive`]).
pub const SERVER_SENDER: u64 = 0;

impl MacKey {
    /// BLAKE3 derive-key (context [`KDF_CONTEXT`]) over `psk || u64le(session) ||
    /// u8(direction) || u64le(sender)`; the AES-128 key is its first 16 bytes. `sender` is
    /// the client id for [`Direction::FromClient`], [`SERVER_SENDER`] for the server. A
    /// new session id (drawn at random by every server start) or client id (drawn at
    /// random by every client start) gives a new key, and a packet of one session,
    /// direction or client never verifies as another's.
    pub fn derive(psk: &PresharedKey, session: u64, direction: Direction, sender: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key(KDF_CONTEXT);
        h.update(&psk.0);
        h.update(&session.to_le_bytes());
        h.update(&[direction as u8]);
        h.update(&sender.to_le_bytes());
        let derived = *h.finalize().as_bytes();
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_128_GCM, &derived[..16]).expect("AES-128 takes a 16-byte key"),
        );
        Self {
            derived,
            aead,
            scratch: RefCell::new([0; STANDARD_SCRATCH]),
        }
    }

    /// The tag of `bytes` (a packet up to and including its counter) under the nonce
    /// `u32le(0) || u64le(counter)`: the AES-128-GCM tag of `bytes` as plaintext, with no
    /// associated data. `bytes` longer than [`MAX_DATAGRAM`] get no tag.
    pub fn tag(&self, counter: u64, bytes: &[u8]) -> Option<[u8; TAG_LEN]> {
        if let Ok(mut scratch) = self.scratch.try_borrow_mut()
            && bytes.len() <= STANDARD_SCRATCH
        {
            self.tag_in(counter, bytes, &mut scratch[..])
        } else {
            self.tag_in(counter, bytes, &mut [0u8; MAX_DATAGRAM])
        }
    }

    fn tag_in(&self, counter: u64, bytes: &[u8], scratch: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let plain = scratch.get_mut(..bytes.len())?;
        plain.copy_from_slice(bytes);
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        let tag = self
            .aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), plain)
            .ok()?;
        let mut t = [0; TAG_LEN];
        t.copy_from_slice(tag.as_ref());
        Some(t)
    }

    /// True when `tag` is the tag of `signed` (a packet ending with its 8-byte counter),
    /// compared without an early exit.
    pub fn verify(&self, signed: &[u8], tag: &[u8]) -> bool {
        if signed.len() < COUNTER_LEN || tag.len() != TAG_LEN {
            return false;
        }
        let counter = get_u64(signed, signed.len() - COUNTER_LEN..signed.len());
        match self.tag(counter, signed) {
            Some(want) => want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0,
            None => false,
        }
    }
}

/// Turns the untagged packet of `len` bytes in `buf` (as a `write_*` function built it)
/// into a tagged one: sets header flag bit 0, recomputes the CRC, appends `counter` and
/// the tag over everything before it. Returns the new length. The caller must never use
/// a counter twice with one key ([`SessionMacs::sign`] counts for it).
pub fn sign(buf: &mut [u8], len: usize, key: &MacKey, counter: u64) -> Result<usize, WireError> {
    if len < HEADER_LEN + CRC_LEN || len > buf.len() {
        return Err(WireError::BadLength);
    }
    if buf.len() < len + TRAILER_LEN {
        return Err(WireError::BufferTooSmall);
    }
    let flags = get_u16(buf, header::FLAGS) | FLAG_TAGGED;
    put_u16(buf, header::FLAGS, flags);
    let body = len - CRC_LEN;
    let crc = crc32(&buf[..body]);
    put_u32(buf, body..len, crc);
    put_u64(buf, len..len + COUNTER_LEN, counter);
    let signed = len + COUNTER_LEN;
    let tag = key
        .tag(counter, &buf[..signed])
        .ok_or(WireError::BadLength)?;
    buf[signed..signed + TAG_LEN].copy_from_slice(&tag);
    Ok(signed + TAG_LEN)
}

/// The keys that check what one end of a session receives.
// No heap to box the key into; one value per session.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum ReceiveKeys {
    /// A client checks the server's packets with one key.
    FromServer(MacKey),
    /// The server derives each client's key from its client id.
    FromClients { psk: PresharedKey, session: u64 },
}

/// A key to check one packet with: borrowed, or derived for this packet.
// No heap to box the derived key into; it lives on the stack for one packet.
#[allow(clippy::large_enum_variant)]
pub enum ReceiveKey<'a> {
    /// The session's key for the server's packets.
    Kept(&'a MacKey),
    /// A client's key, derived from its id.
    Derived(MacKey),
}

impl Borrow<MacKey> for ReceiveKey<'_> {
    fn borrow(&self) -> &MacKey {
        match self {
            Self::Kept(k) => k,
            Self::Derived(k) => k,
        }
    }
}

/// One end of a keyed session: the key and counter it tags its own packets with, and the
/// keys it checks the other end's packets with. Not `Clone`: two copies would count the same
/// nonces twice.
#[derive(Debug, PartialEq, Eq)]
pub struct SessionMacs {
    send: MacKey,
    /// The counter of the next packet this end sends (a `Cell` so that building a packet
    /// stays a `&self` operation; the value only ever grows).
    next_counter: Cell<u64>,
    receive: ReceiveKeys,
}

impl SessionMacs {
    /// The server's keys for `session`.
    pub fn server(psk: &PresharedKey, session: u64) -> Self {
        Self {
            send: MacKey::derive(psk, session, Direction::FromServer, SERVER_SENDER),
            next_counter: Cell::new(0),
            receive: ReceiveKeys::FromClients { psk: *psk, session },
        }
    }

    /// The keys of the client `client_id` for `session`.
    pub fn client(psk: &PresharedKey, session: u64, client_id: u64) -> Self {
        Self {
            send: MacKey::derive(psk, session, Direction::FromClient, client_id),
            next_counter: Cell::new(0),
            receive: ReceiveKeys::FromServer(MacKey::derive(
                psk,
                session,
                Direction::FromServer,
                SERVER_SENDER,
            )),
        }
    }

    /// The same end's keys for another session, counting on from this one's counter: a
    /// client that moves between sessions (resume) never starts a counter again, so no
    /// nonce repeats under a key it used before, even if it comes back to that session.
    pub fn client_moved(&self, psk: &PresharedKey, session: u64, client_id: u64) -> Self {
        let next = Self::client(psk, session, client_id);
        next.next_counter.set(self.next_counter.get());
        next
    }

    /// The counter the next packet will carry.
    pub fn next_counter(&self) -> u64 {
        self.next_counter.get()
    }

    /// Tags the `len`-byte packet in `buf` with this end's next counter ([`sign`]).
    pub fn sign(&self, buf: &mut [u8], len: usize) -> Result<usize, WireError> {
        let counter = self.next_counter.get();
        // 2^64 packets are never sent; stop rather than wrap to a used nonce.
        let next = counter.checked_add(1).ok_or(WireError::BufferTooSmall)?;
        let n = sign(buf, len, &self.send, counter)?;
        self.next_counter.set(next);
        Ok(n)
    }

    /// The key that checks a packet of the other end from `sender` (the client id of a
    /// client's packet, [`SERVER_SENDER`] for the server's).
    pub fn receive_key(&self, sender: u64) -> ReceiveKey<'_> {
        match &self.receive {
            ReceiveKeys::FromServer(k) => ReceiveKey::Kept(k),
            ReceiveKeys::FromClients { psk, session } => {
                ReceiveKey::Derived(MacKey::derive(psk, *session, Direction::FromClient, sender))
            }
        }
    }
}
