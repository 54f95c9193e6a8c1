//! Announce packet: the session's parameters, repeated through the session.

use core::ops::{BitOr, BitOrAssign};

use super::field::{
    announce as f, get_bytes32, get_u32, get_u64, is_zero, put_bytes, put_u32, put_u64,
};
use super::{
    ANNOUNCE_LEN, CRC_LEN, Geometry, Packet, PacketType, WireError, room, seal, write_header,
};

/// The announce flags a sender sets by hand; whether the digest is known is not among
/// them, it follows from [`Announce::digest`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceFlags(u32);

impl AnnounceFlags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// The forward pass has started (data is flowing).
    pub const STARTED: Self = Self(f::flag::STARTED);
    /// The server is ending the session; no more data will come.
    pub const CLOSING: Self = Self(f::flag::CLOSING);

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for AnnounceFlags {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for AnnounceFlags {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

/// The shortest report interval an announce carries: what the server asks for while it
/// probes the links' rate (version 4; 10 ms before).
pub const MIN_REPORT_INTERVAL_MS: u32 = 5;
/// The longest report interval an announce carries.
pub const MAX_REPORT_INTERVAL_MS: u32 = 60_000;

/// Session parameters, repeated through the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Image size and block geometry.
    pub geometry: Geometry,
    /// Started, closing.
    pub flags: AnnounceFlags,
    /// Data sequence number the server will use next.
    pub seq: u32,
    /// How often each client should send a status report, in milliseconds; the server
    /// raises it with the number of clients so the report load stays bounded.
    pub report_interval_ms: u32,
    /// The image digest, once the server knows it.
    pub digest: Option<[u8; 32]>,
}

/// Builds an announce packet; returns its length.
pub fn write_announce(buf: &mut [u8], session: u64, a: &Announce) -> Result<usize, WireError> {
    room(buf, ANNOUNCE_LEN)?;
    let mut flags = a.flags.0;
    if a.digest.is_some() {
        flags |= f::flag::DIGEST_KNOWN;
    }
    write_header(buf, PacketType::Announce, session);
    put_u64(buf, f::IMAGE_SIZE, a.geometry.image_size);
    put_u32(buf, f::SYMBOL_SIZE, a.geometry.symbol_size);
    put_u32(buf, f::K, a.geometry.k);
    put_u32(buf, f::BLOCK_COUNT, a.geometry.block_count());
    put_u32(buf, f::FLAGS, flags);
    put_u32(buf, f::SEQ, a.seq);
    put_u32(buf, f::REPORT_INTERVAL_MS, a.report_interval_ms);
    put_bytes(buf, f::DIGEST, &a.digest.unwrap_or([0; 32]));
    put_u32(buf, f::RESERVED, 0);
    Ok(seal(buf, ANNOUNCE_LEN - CRC_LEN))
}

impl Packet<'_> {
    /// Reads an announce packet: a valid geometry with its block count, known flags only,
    /// a report interval of 5 ms to 60 s, and a zero digest unless it is flagged known.
    pub fn announce(&self) -> Result<Announce, WireError> {
        self.expect(PacketType::Announce)?;
        let b = self.bytes;
        if b.len() != ANNOUNCE_LEN {
            return Err(WireError::BadLength);
        }
        let geometry = Geometry::new(
            get_u64(b, f::IMAGE_SIZE),
            get_u32(b, f::SYMBOL_SIZE),
            get_u32(b, f::K),
        )?;
        if get_u32(b, f::BLOCK_COUNT) != geometry.block_count() {
            return Err(WireError::BadField("block_count"));
        }
        let flags = get_u32(b, f::FLAGS);
        if flags & !f::flag::ALL != 0 {
            return Err(WireError::BadField("announce flags"));
        }
        let report_interval_ms = get_u32(b, f::REPORT_INTERVAL_MS);
        if !(MIN_REPORT_INTERVAL_MS..=MAX_REPORT_INTERVAL_MS).contains(&report_interval_ms) {
            return Err(WireError::BadField("report_interval_ms"));
        }
        let digest = if flags & f::flag::DIGEST_KNOWN != 0 {
            Some(get_bytes32(b, f::DIGEST))
        } else if is_zero(b, f::DIGEST) {
            None
        } else {
            return Err(WireError::BadField("digest"));
        };
        if get_u32(b, f::RESERVED) != 0 {
            return Err(WireError::BadField("reserved"));
        }
        Ok(Announce {
            geometry,
            flags: AnnounceFlags(flags & !f::flag::DIGEST_KNOWN),
            seq: get_u32(b, f::SEQ),
            report_interval_ms,
            digest,
        })
    }
}
