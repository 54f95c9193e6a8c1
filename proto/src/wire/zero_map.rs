//! Zero map packet: which blocks of a span hold only zeros (never sent as data).
//!
//! The server cycles through the blocks it has classified, one span per packet: every zero
//! block of `[span_first, span_end)` is in the packet's ranges, every other block of the
//! span holds data. Clients learn the whole map from successive packets, late joiners too.

use super::field::{get_u16, get_u32, is_zero, put_u16, put_u32, zero_map as f};
use super::{CRC_LEN, Packet, PacketType, STANDARD_DATAGRAM, WireError, room, seal, write_header};

/// Bytes of one zero range.
pub const ZERO_RANGE_LEN: usize = f::range::LEN;
/// Zero ranges that fit in a packet of at most 1472 bytes (MTU 1500).
pub const MAX_ZERO_RANGES: usize =
    (STANDARD_DATAGRAM - f::FIXED_LEN - CRC_LEN - super::auth::TRAILER_LEN) / ZERO_RANGE_LEN;

/// Blocks `[first, first + blocks)` hold only zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ZeroRange {
    /// First block.
    pub first: u32,
    /// Number of blocks, >= 1.
    pub blocks: u32,
}

impl ZeroRange {
    /// One past the last block, without overflow.
    pub fn end(&self) -> u64 {
        self.first as u64 + self.blocks as u64
    }
}

/// A parsed zero map: the span and its ranges, read lazily from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroMap<'a> {
    /// First block of the span.
    pub span_first: u32,
    /// One past the last block of the span.
    pub span_end: u32,
    raw_ranges: &'a [u8],
}

impl<'a> ZeroMap<'a> {
    /// The zero ranges, ascending, non-overlapping, inside the span.
    pub fn ranges(&self) -> impl Iterator<Item = ZeroRange> + 'a {
        self.raw_ranges
            .chunks_exact(ZERO_RANGE_LEN)
            .map(|r| ZeroRange {
                first: get_u32(r, f::range::FIRST),
                blocks: get_u32(r, f::range::BLOCKS),
            })
    }
}

/// Builds a zero map packet for the span `[span_first, span_end)`; returns its length.
pub fn write_zero_map(
    buf: &mut [u8],
    session: u64,
    span_first: u32,
    span_end: u32,
    ranges: &[ZeroRange],
) -> Result<usize, WireError> {
    if ranges.len() > MAX_ZERO_RANGES {
        return Err(WireError::BadField("range_count"));
    }
    let len = f::FIXED_LEN + ranges.len() * ZERO_RANGE_LEN + CRC_LEN;
    room(buf, len)?;
    write_header(buf, PacketType::ZeroMap, session);
    put_u32(buf, f::SPAN_FIRST, span_first);
    put_u32(buf, f::SPAN_END, span_end);
    put_u16(buf, f::RANGE_COUNT, ranges.len() as u16);
    buf[f::RESERVED].fill(0);
    for (entry, r) in buf[f::RANGES].chunks_exact_mut(ZERO_RANGE_LEN).zip(ranges) {
        put_u32(entry, f::range::FIRST, r.first);
        put_u32(entry, f::range::BLOCKS, r.blocks);
    }
    Ok(seal(buf, len - CRC_LEN))
}

impl<'a> Packet<'a> {
    /// Reads a zero map, checking the count against the length and that the ranges are
    /// non-empty, ascending, non-overlapping and inside the span.
    pub fn zero_map(&self) -> Result<ZeroMap<'a>, WireError> {
        self.expect(PacketType::ZeroMap)?;
        let b = self.bytes;
        if b.len() < f::FIXED_LEN + CRC_LEN {
            return Err(WireError::Truncated);
        }
        let count = get_u16(b, f::RANGE_COUNT) as usize;
        if count > MAX_ZERO_RANGES {
            return Err(WireError::BadField("range_count"));
        }
        if b.len() != f::FIXED_LEN + count * ZERO_RANGE_LEN + CRC_LEN {
            return Err(WireError::BadLength);
        }
        if !is_zero(b, f::RESERVED) {
            return Err(WireError::BadField("reserved"));
        }
        let m = ZeroMap {
            span_first: get_u32(b, f::SPAN_FIRST),
            span_end: get_u32(b, f::SPAN_END),
            raw_ranges: &b[f::RANGES.start..self.body_end()],
        };
        if m.span_first > m.span_end {
            return Err(WireError::BadField("span"));
        }
        let mut prev_end = m.span_first as u64;
        for r in m.ranges() {
            if r.blocks == 0 {
                return Err(WireError::BadField("range blocks"));
            }
            if (r.first as u64) < prev_end || r.end() > m.span_end as u64 {
                return Err(WireError::BadField("range order"));
            }
            prev_end = r.end();
        }
        Ok(m)
    }
}
