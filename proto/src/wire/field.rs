//! Where every field sits: per packet type, one table of byte ranges counted from the first
//! byte of the packet (the common header included), in the style of smoltcp's `wire`
//! modules. Writers and parsers both index through these tables, so each offset is written
//! down once. docs/PROTOCOL.md draws the same layouts.

/// Bytes `start..end` of a packet.
pub type Field = core::ops::Range<usize>;
/// Bytes from `start` to the end of the packet's body (the CRC trailer excluded).
pub type Rest = core::ops::RangeFrom<usize>;

/// The common header that starts every packet.
pub mod header {
    use super::Field;
    /// "BBND".
    pub const MAGIC: Field = 0..4;
    /// Protocol version.
    pub const VERSION: Field = 4..5;
    /// Packet type.
    pub const TYPE: Field = 5..6;
    /// Header flags; none are defined, all must be zero.
    pub const FLAGS: Field = 6..8;
    /// Session id.
    pub const SESSION: Field = 8..16;
    /// Bytes of the common header.
    pub const LEN: usize = SESSION.end;
}

/// Data packet: one encoding symbol of one block.
pub mod data {
    use super::{Field, Rest};
    /// Block index.
    pub const BLOCK: Field = 16..20;
    /// Encoding symbol index.
    pub const ESI: Field = 20..22;
    /// How the block's bytes are coded (0 raw, 1 zstd).
    pub const ENCODING: Field = 22..23;
    /// Must be zero.
    pub const RESERVED: Field = 23..24;
    /// Data sequence number.
    pub const SEQ: Field = 24..28;
    /// The block's check (from its leaf, see digest.rs).
    pub const BLOCK_CHECK: Field = 28..32;
    /// Bytes of the coded block before padding to whole symbols.
    pub const CODED_LEN: Field = 32..36;
    /// The symbol, up to the CRC trailer.
    pub const PAYLOAD: Rest = 36..;
    /// Bytes before the payload.
    pub const HEADER_LEN: usize = PAYLOAD.start;
}

/// Announce packet: session parameters.
pub mod announce {
    use super::Field;
    /// Image size in bytes.
    pub const IMAGE_SIZE: Field = 16..24;
    /// Bytes per symbol.
    pub const SYMBOL_SIZE: Field = 24..28;
    /// Source symbols per full block.
    pub const K: Field = 28..32;
    /// Number of blocks (redundant with the geometry: checked).
    pub const BLOCK_COUNT: Field = 32..36;
    /// Flag bits, see [`flag`].
    pub const FLAGS: Field = 36..40;
    /// Data sequence number the server will use next.
    pub const SEQ: Field = 40..44;
    /// Report interval in milliseconds.
    pub const REPORT_INTERVAL_MS: Field = 44..48;
    /// Image digest, all zero unless [`flag::DIGEST_KNOWN`] is set.
    pub const DIGEST: Field = 48..80;
    /// Must be zero.
    pub const RESERVED: Field = 80..84;
    /// CRC32 trailer.
    pub const CRC: Field = 84..88;
    /// Total length.
    pub const LEN: usize = CRC.end;

    /// Bits of [`FLAGS`].
    pub mod flag {
        /// The digest field is valid.
        pub const DIGEST_KNOWN: u32 = 1;
        /// The forward pass has started.
        pub const STARTED: u32 = 2;
        /// The server is ending the session.
        pub const CLOSING: u32 = 4;
        /// Every bit this version defines.
        pub const ALL: u32 = DIGEST_KNOWN | STARTED | CLOSING;
    }
}

/// Status packet: a client's progress, then `RANGE_COUNT` deficit ranges.
pub mod status {
    use super::{Field, Rest};
    /// Random id the client chose.
    pub const CLIENT_ID: Field = 16..24;
    /// Report counter.
    pub const REPORT_SEQ: Field = 24..28;
    /// Highest data sequence number seen.
    pub const LAST_SEQ: Field = 28..32;
    /// Blocks complete.
    pub const BLOCKS_DONE: Field = 32..36;
    /// Measured loss, parts per million.
    pub const LOSS_PPM: Field = 36..40;
    /// Number of ranges that follow the fixed part.
    pub const RANGE_COUNT: Field = 40..42;
    /// Client phase.
    pub const PHASE: Field = 42..43;
    /// Status flags: bit 0 resumed (version 3).
    pub const FLAGS: Field = 43..44;
    /// Data packets received since the client's previous report (version 3).
    pub const INTERVAL_RECEIVED: Field = 44..48;
    /// Microseconds from the arrival of the data packet `LAST_SEQ` to the building of
    /// the report (version 5).
    pub const LAST_SEQ_AGE: Field = 48..52;
    /// The ranges, [`range::LEN`] bytes each, up to the CRC trailer.
    pub const RANGES: Rest = 52..;
    /// Bytes before the ranges.
    pub const FIXED_LEN: usize = RANGES.start;

    /// One deficit range. The only table not counted from the packet start: range `i`
    /// begins at `RANGES.start + i * LEN`, and these are counted from there.
    pub mod range {
        use super::Field;
        /// First block.
        pub const FIRST: Field = 0..4;
        /// Number of blocks.
        pub const BLOCKS: Field = 4..6;
        /// Symbols each block still needs.
        pub const DEFICIT: Field = 6..8;
        /// Bytes of one range.
        pub const LEN: usize = DEFICIT.end;
    }
}

/// Zero map packet: which blocks of a span hold only zeros.
pub mod zero_map {
    use super::{Field, Rest};
    /// First block of the span this packet describes completely.
    pub const SPAN_FIRST: Field = 16..20;
    /// One past the last block of the span.
    pub const SPAN_END: Field = 20..24;
    /// Number of ranges that follow.
    pub const RANGE_COUNT: Field = 24..26;
    /// Must be zero.
    pub const RESERVED: Field = 26..28;
    /// The zero ranges, [`range::LEN`] bytes each, up to the CRC trailer.
    pub const RANGES: Rest = 28..;
    /// Bytes before the ranges.
    pub const FIXED_LEN: usize = RANGES.start;

    /// One range of zero blocks, counted from the range's own start (range `i` begins at
    /// `RANGES.start + i * LEN`).
    pub mod range {
        use super::Field;
        /// First block.
        pub const FIRST: Field = 0..4;
        /// Number of blocks.
        pub const BLOCKS: Field = 4..8;
        /// Bytes of one range.
        pub const LEN: usize = BLOCKS.end;
    }
}

/// Result packet: a client's final outcome.
pub mod result {
    use super::Field;
    /// Random id the client chose.
    pub const CLIENT_ID: Field = 16..24;
    /// 1 when verified, 0 when failed.
    pub const VERIFIED: Field = 24..25;
    /// Failure reason code, 0 when verified.
    pub const REASON: Field = 25..26;
    /// Must be zero.
    pub const RESERVED: Field = 26..28;
    /// Bytes written to the target.
    pub const BYTES_WRITTEN: Field = 28..36;
    /// Digest the client computed.
    pub const DIGEST: Field = 36..68;
    /// CRC32 trailer.
    pub const CRC: Field = 68..72;
    /// Total length.
    pub const LEN: usize = CRC.end;
}

/// Result acknowledgement: the server recorded a client's result.
pub mod result_ack {
    use super::Field;
    /// The client whose result was recorded.
    pub const CLIENT_ID: Field = 16..24;
    /// CRC32 trailer.
    pub const CRC: Field = 24..28;
    /// Total length.
    pub const LEN: usize = CRC.end;
}

// Little-endian access through a table entry. A table entry of the wrong width for its
// accessor is a bug in this module (caught by the round-trip tests), never a wire error:
// parsers check a packet's length before they read any field.

fn array<const N: usize>(b: &[u8], f: Field) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[f]);
    a
}

pub(crate) fn get_u8(b: &[u8], f: Field) -> u8 {
    u8::from_le_bytes(array(b, f))
}
pub(crate) fn get_u16(b: &[u8], f: Field) -> u16 {
    u16::from_le_bytes(array(b, f))
}
pub(crate) fn get_u32(b: &[u8], f: Field) -> u32 {
    u32::from_le_bytes(array(b, f))
}
pub(crate) fn get_u64(b: &[u8], f: Field) -> u64 {
    u64::from_le_bytes(array(b, f))
}
pub(crate) fn get_bytes32(b: &[u8], f: Field) -> [u8; 32] {
    array(b, f)
}
pub(crate) fn put_u8(b: &mut [u8], f: Field, v: u8) {
    b[f].copy_from_slice(&[v]);
}
pub(crate) fn put_u16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(b: &mut [u8], f: Field, v: u64) {
    b[f].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_bytes(b: &mut [u8], f: Field, v: &[u8]) {
    b[f].copy_from_slice(v);
}
/// True when every byte of `f` is zero (reserved fields).
pub(crate) fn is_zero(b: &[u8], f: Field) -> bool {
    b[f].iter().all(|&x| x == 0)
}
