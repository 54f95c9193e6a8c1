//! Wire format: every packet broadband puts on the network, byte by byte.
//!
//! docs/PROTOCOL.md is the normative text; this module is its implementation. All integers
//! are little-endian. Every packet starts with the 16-byte common header and ends with a
//! CRC32 (IEEE) of everything before it. [`field`] says where each field sits, counted from
//! the packet start; writers and parsers both go through it.
//!
//! Reading: [`open`] checks the header and CRC and hands back a [`Packet`], whose
//! [`Packet::data`], [`Packet::announce`], [`Packet::status`], [`Packet::result`],
//! [`Packet::result_ack`] and [`Packet::zero_map`] validate every field and never trust a length, count or offset
//! from the wire: malformed input yields a [`WireError`], never a panic. Writing: one
//! `write_*` function per packet type.

mod announce;
pub mod auth;
mod crc;
mod data;
pub mod field;
mod geometry;
mod result;
mod status;
mod zero_map;

use core::fmt;

pub use announce::{
    Announce, AnnounceFlags, MAX_REPORT_INTERVAL_MS, MIN_REPORT_INTERVAL_MS, write_announce,
};
pub use crc::crc32;
pub use data::{Data, DataHead, Encoding, seal_data, write_data, write_data_header};
use field::{get_u16, get_u32, get_u64, put_u8, put_u16, put_u32, put_u64};
pub use geometry::Geometry;
pub use result::{FailReason, ResultOutcome, ResultReport, write_result, write_result_ack};
pub use status::{ClientPhase, DeficitRange, STATUS_RESUMED, Status, StatusHead, write_status};
pub use zero_map::{MAX_ZERO_RANGES, ZERO_RANGE_LEN, ZeroMap, ZeroRange, write_zero_map};

/// "BBND" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BBND");
/// Protocol version carried in every packet.
pub const VERSION: u8 = 5;
/// Bytes of the common header (magic, version, type, flags, session id).
pub const HEADER_LEN: usize = field::header::LEN;
/// Bytes of the CRC32 trailer.
pub const CRC_LEN: usize = 4;
/// Bytes of a data packet before the payload.
pub const DATA_HEADER_LEN: usize = field::data::HEADER_LEN;
/// Bytes a data packet adds to its payload (header and CRC).
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + CRC_LEN;
/// Total length of an announce packet.
pub const ANNOUNCE_LEN: usize = field::announce::LEN;
/// Bytes of a status packet before its ranges.
pub const STATUS_FIXED_LEN: usize = field::status::FIXED_LEN;
/// Bytes of one deficit range in a status packet.
pub const RANGE_LEN: usize = field::status::range::LEN;
/// Total length of a result packet.
pub const RESULT_LEN: usize = field::result::LEN;
/// Total length of a result acknowledgement.
pub const RESULT_ACK_LEN: usize = field::result_ack::LEN;

/// Bytes of an Ethernet II header (no VLAN tag).
const ETHERNET_HEADER_LEN: usize = 14;
/// Bytes of an IPv4 header without options.
const IPV4_HEADER_LEN: usize = 20;
/// Bytes of a UDP header.
const UDP_HEADER_LEN: usize = 8;
/// Bytes of Ethernet, IP and UDP framing around every datagram: what each datagram costs
/// on the link beyond its own length, counted against the sending rate.
pub const FRAMING_BYTES: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Largest UDP payload of a standard 1500-byte MTU.
pub(crate) const STANDARD_DATAGRAM: usize = 1500 - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// Largest datagram broadband ever builds or accepts (jumbo frames: 9000 - 28).
pub const MAX_DATAGRAM: usize = 9000 - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// Deficit ranges that fit in a status packet of at most 1472 bytes (MTU 1500), counter
/// and tag included.
pub const MAX_RANGES: usize =
    (STANDARD_DATAGRAM - STATUS_FIXED_LEN - CRC_LEN - auth::TRAILER_LEN) / RANGE_LEN;
/// Symbol sizes are multiples of this (the erasure code's SIMD layout).
pub const SYMBOL_ALIGN: u32 = 64;
/// The default symbol: the largest whose data packet fits a standard 1500-byte MTU with a
/// key's counter and tag (1408 bytes: 1448-byte datagrams, 1472 tagged).
pub const DEFAULT_SYMBOL_SIZE: u32 =
    ((STANDARD_DATAGRAM - DATA_OVERHEAD - auth::TRAILER_LEN) as u32 / SYMBOL_ALIGN) * SYMBOL_ALIGN;
/// Largest symbol that fits a jumbo frame.
pub const MAX_SYMBOL_SIZE: u32 =
    ((MAX_DATAGRAM - DATA_OVERHEAD - auth::TRAILER_LEN) as u32 / SYMBOL_ALIGN) * SYMBOL_ALIGN;
/// Most source symbols per block.
pub const MAX_K: u32 = 4096;
/// Largest encoding symbol index: 0xFFFF is kept free as "no symbol".
pub const MAX_ESI: u16 = 0xFFFE;

/// UDP port the server sends data and announces to, by default.
pub const DEFAULT_DATA_PORT: u16 = 7855;
/// UDP port the server receives status reports and results on, by default.
pub const DEFAULT_CONTROL_PORT: u16 = 7854;

/// Packet types (byte 5 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// Server to clients: one encoding symbol of one block.
    Data = 1,
    /// Server to clients: session parameters and, once known, the image digest.
    Announce = 2,
    /// Client to server: progress and per-block deficits.
    Status = 3,
    /// Client to server: final outcome (verified or failed) with the digest computed.
    Result = 4,
    /// Server to one client: its result was recorded.
    ResultAck = 5,
    /// Server to clients: which blocks of a span hold only zeros.
    ZeroMap = 6,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Data,
            2 => Self::Announce,
            3 => Self::Status,
            4 => Self::Result,
            5 => Self::ResultAck,
            6 => Self::ZeroMap,
            _ => return None,
        })
    }
}

/// Why a datagram was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the smallest packet of its type.
    Truncated,
    /// Not broadband at all.
    BadMagic,
    /// A broadband packet of a version this build does not speak.
    BadVersion,
    /// Unknown packet type, or a packet read as a type it is not.
    BadType,
    /// Flags this version does not define are set.
    BadFlags,
    /// The CRC32 trailer does not match: damaged in transit.
    BadCrc,
    /// Length does not match what the type requires.
    BadLength,
    /// A field is out of its valid range (named).
    BadField(&'static str),
    /// The output buffer is too small for the packet.
    BufferTooSmall,
    /// A tagged packet (header flag bit 0), and this end has no key.
    NeedsKey,
    /// An untagged packet, and this end has a key: it accepts only tagged ones.
    Unauthenticated,
    /// The tag does not match: forged, modified, or made with another key.
    BadTag,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated packet"),
            Self::BadMagic => f.write_str("not a broadband packet (bad magic)"),
            Self::BadVersion => f.write_str("unsupported protocol version"),
            Self::BadType => f.write_str("unknown packet type"),
            Self::BadFlags => f.write_str("undefined flags set"),
            Self::BadCrc => f.write_str("CRC mismatch (damaged packet)"),
            Self::BadLength => f.write_str("length does not match packet type"),
            Self::BadField(name) => write!(f, "field out of range: {name}"),
            Self::BufferTooSmall => f.write_str("output buffer too small"),
            Self::NeedsKey => f.write_str("authenticated packet, and no key to check it"),
            Self::Unauthenticated => f.write_str("packet without a tag, and a key is in use"),
            Self::BadTag => f.write_str("tag mismatch (forged, modified or another key)"),
        }
    }
}

/// Writes the common header of a `ty` packet into `buf[..HEADER_LEN]`.
fn write_header(buf: &mut [u8], ty: PacketType, session: u64) {
    use field::header;
    put_u32(buf, header::MAGIC, MAGIC);
    put_u8(buf, header::VERSION, VERSION);
    put_u8(buf, header::TYPE, ty as u8);
    put_u16(buf, header::FLAGS, 0);
    put_u64(buf, header::SESSION, session);
}

/// Appends the CRC over `buf[..len]` at `len`; returns the full length.
fn seal(buf: &mut [u8], len: usize) -> usize {
    let c = crc32(&buf[..len]);
    put_u32(buf, len..len + CRC_LEN, c);
    len + CRC_LEN
}

/// Checks that a buffer has room for a `len`-byte packet.
fn room(buf: &[u8], len: usize) -> Result<(), WireError> {
    if buf.len() < len {
        return Err(WireError::BufferTooSmall);
    }
    Ok(())
}

/// The common header of a packet that passed the magic, version, flags and CRC checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub ty: PacketType,
    /// Session the packet belongs to.
    pub session: u64,
}

/// A datagram whose header and CRC are valid (made only by [`open`]). Its fields are read
/// through the typed accessors, which check everything specific to the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> Packet<'a> {
    /// The common header.
    pub fn header(&self) -> Header {
        self.header
    }
    /// Packet type.
    pub fn ty(&self) -> PacketType {
        self.header.ty
    }
    /// Session the packet belongs to.
    pub fn session(&self) -> u64 {
        self.header.session
    }
    /// The whole datagram, header and CRC included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Bytes between the header and the CRC trailer.
    fn body_end(&self) -> usize {
        self.bytes.len() - CRC_LEN
    }
    /// `BadType` unless this is a `ty` packet.
    fn expect(&self, ty: PacketType) -> Result<(), WireError> {
        if self.header.ty != ty {
            return Err(WireError::BadType);
        }
        Ok(())
    }
}

/// Checks magic, version, type, flags and CRC of a packet for an end without a key;
/// returns the checked packet. A tagged packet is dropped with [`WireError::NeedsKey`].
pub fn open(bytes: &[u8]) -> Result<Packet<'_>, WireError> {
    open_inner(bytes, None::<fn(u64, u64) -> auth::MacKey>)
}

/// Checks a packet for an end that holds a key: it must be tagged, and its tag must verify
/// under `key_for(session id, sender)` before anything else in it is used (only the header
/// and, in a client's packet, the client id are read to choose the key; `sender` is the
/// client id of a status or result packet, [`auth::SERVER_SENDER`] for the server's
/// packets). The returned packet's bytes end at the CRC (counter and tag are stripped),
/// so the typed accessors read it as an untagged one.
pub fn open_keyed<K: core::borrow::Borrow<auth::MacKey>>(
    bytes: &[u8],
    key_for: impl FnOnce(u64, u64) -> K,
) -> Result<Packet<'_>, WireError> {
    open_inner(bytes, Some(key_for))
}

// open_inner reads a client's id from one place for status and result packets.
const _: () = assert!(
    field::status::CLIENT_ID.start == field::result::CLIENT_ID.start
        && field::status::CLIENT_ID.end == field::result::CLIENT_ID.end
);

fn open_inner<K: core::borrow::Borrow<auth::MacKey>>(
    bytes: &[u8],
    key_for: Option<impl FnOnce(u64, u64) -> K>,
) -> Result<Packet<'_>, WireError> {
    use field::header;
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(WireError::Truncated);
    }
    if get_u32(bytes, header::MAGIC) != MAGIC {
        return Err(WireError::BadMagic);
    }
    if field::get_u8(bytes, header::VERSION) != VERSION {
        return Err(WireError::BadVersion);
    }
    let ty = PacketType::from_u8(field::get_u8(bytes, header::TYPE)).ok_or(WireError::BadType)?;
    let flags = get_u16(bytes, header::FLAGS);
    if flags & !auth::FLAG_TAGGED != 0 {
        return Err(WireError::BadFlags);
    }
    let session = get_u64(bytes, header::SESSION);
    let tagged = flags & auth::FLAG_TAGGED != 0;
    // A tag that verifies covers the CRC too: only an untagged packet is checked against it.
    let (bytes, check_crc) = match (tagged, key_for) {
        (false, None) => (bytes, true),
        (true, None) => return Err(WireError::NeedsKey),
        (false, Some(_)) => return Err(WireError::Unauthenticated),
        (true, Some(key_for)) => {
            if bytes.len() < HEADER_LEN + CRC_LEN + auth::TRAILER_LEN {
                return Err(WireError::Truncated);
            }
            let sender = match ty {
                PacketType::Status | PacketType::Result => {
                    // Both carry the client id at the same place (field::status, result).
                    if bytes.len() < field::status::CLIENT_ID.end + CRC_LEN + auth::TRAILER_LEN {
                        return Err(WireError::Truncated);
                    }
                    get_u64(bytes, field::status::CLIENT_ID)
                }
                _ => auth::SERVER_SENDER,
            };
            let (signed, tag) = bytes.split_at(bytes.len() - auth::TAG_LEN);
            if !key_for(session, sender).borrow().verify(signed, tag) {
                return Err(WireError::BadTag);
            }
            (&signed[..signed.len() - auth::COUNTER_LEN], false)
        }
    };
    let body_end = bytes.len() - CRC_LEN;
    if check_crc && crc32(&bytes[..body_end]) != get_u32(bytes, body_end..bytes.len()) {
        return Err(WireError::BadCrc);
    }
    Ok(Packet {
        bytes,
        header: Header { ty, session },
    })
}
