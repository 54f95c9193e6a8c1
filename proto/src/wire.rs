//! Wire format: every packet broadband puts on the network, byte by byte.
//!
//! docs/PROTOCOL.md is the normative text; this module is its implementation. All integers
//! are little-endian. Every packet starts with the 16-byte common header and ends with a
//! CRC32 (IEEE) of everything before it. Parsers validate every field and never trust a
//! length, count or offset from the wire: malformed input yields a [`WireError`], never a
//! panic.

use core::fmt;

/// "BBND" read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BBND");
/// Protocol version carried in every packet.
pub const VERSION: u8 = 1;
/// Bytes of the common header (magic, version, type, flags, session id).
pub const HEADER_LEN: usize = 16;
/// Bytes of the CRC32 trailer.
pub const CRC_LEN: usize = 4;
/// Bytes of a data packet before the payload.
pub const DATA_HEADER_LEN: usize = 32;
/// Bytes a data packet adds to its payload (header and CRC).
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + CRC_LEN;
/// Total length of an announce packet.
pub const ANNOUNCE_LEN: usize = 88;
/// Bytes of a status packet before its ranges.
pub const STATUS_FIXED_LEN: usize = 48;
/// Bytes of one deficit range in a status packet.
pub const RANGE_LEN: usize = 8;
/// Total length of a result packet.
pub const RESULT_LEN: usize = 72;
/// Total length of a result acknowledgement.
pub const RESULT_ACK_LEN: usize = 28;
/// Largest datagram broadband ever builds or accepts (jumbo frames: 9000 - 28).
pub const MAX_DATAGRAM: usize = 8972;
/// Deficit ranges that fit in a status packet of at most 1472 bytes (MTU 1500).
pub const MAX_RANGES: usize = (1472 - STATUS_FIXED_LEN - CRC_LEN) / RANGE_LEN;
/// Symbol sizes are multiples of this (the erasure code's SIMD layout).
pub const SYMBOL_ALIGN: u32 = 64;
/// Largest symbol that fits a jumbo frame.
pub const MAX_SYMBOL_SIZE: u32 =
    ((MAX_DATAGRAM - DATA_OVERHEAD) as u32 / SYMBOL_ALIGN) * SYMBOL_ALIGN;
/// Most source symbols per block.
pub const MAX_K: u32 = 4096;
/// Largest encoding symbol index: 0xFFFF is kept free as "no symbol".
pub const MAX_ESI: u16 = 0xFFFE;

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
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Data,
            2 => Self::Announce,
            3 => Self::Status,
            4 => Self::Result,
            5 => Self::ResultAck,
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
    /// Unknown packet type.
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
        }
    }
}

/// Image geometry: how the image is cut into blocks of k symbols of `symbol_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Image size in bytes.
    pub image_size: u64,
    /// Bytes per symbol: a positive multiple of [`SYMBOL_ALIGN`], at most [`MAX_SYMBOL_SIZE`].
    pub symbol_size: u32,
    /// Source symbols per full block, 1..=[`MAX_K`].
    pub k: u32,
}

impl Geometry {
    /// Checks every field and the derived block count (must fit a u32).
    pub fn new(image_size: u64, symbol_size: u32, k: u32) -> Result<Self, WireError> {
        if symbol_size == 0
            || !symbol_size.is_multiple_of(SYMBOL_ALIGN)
            || symbol_size > MAX_SYMBOL_SIZE
        {
            return Err(WireError::BadField("symbol_size"));
        }
        if k == 0 || k > MAX_K {
            return Err(WireError::BadField("k"));
        }
        let g = Self {
            image_size,
            symbol_size,
            k,
        };
        if g.block_count_u64() > u32::MAX as u64 {
            return Err(WireError::BadField("image_size"));
        }
        Ok(g)
    }

    /// Bytes in a full block.
    pub const fn block_bytes(&self) -> u64 {
        self.k as u64 * self.symbol_size as u64
    }

    fn block_count_u64(&self) -> u64 {
        self.image_size.div_ceil(self.block_bytes())
    }

    /// Number of blocks (the last may be short). 0 for an empty image.
    pub fn block_count(&self) -> u32 {
        self.block_count_u64() as u32
    }

    /// Byte offset of block `b` in the image.
    pub const fn block_offset(&self, b: u32) -> u64 {
        b as u64 * self.block_bytes()
    }

    /// Bytes of image data in block `b` (without padding); 0 past the end.
    pub fn block_len(&self, b: u32) -> usize {
        let off = self.block_offset(b);
        if off >= self.image_size {
            return 0;
        }
        (self.image_size - off).min(self.block_bytes()) as usize
    }

    /// Source symbols in block `b` (k, or fewer for the last block).
    pub fn block_k(&self, b: u32) -> u32 {
        (self.block_len(b) as u64).div_ceil(self.symbol_size as u64) as u32
    }

    /// Source symbols in the whole image: what a perfect channel would need to carry.
    pub fn source_symbols(&self) -> u64 {
        self.image_size.div_ceil(self.symbol_size as u64)
    }
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// CRC32 (IEEE 802.3, the zlib/Ethernet polynomial) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

fn write_header(buf: &mut [u8], ty: PacketType, session: u64) {
    put_u32(buf, 0, MAGIC);
    buf[4] = VERSION;
    buf[5] = ty as u8;
    put_u16(buf, 6, 0);
    put_u64(buf, 8, session);
}

/// Appends the CRC over `buf[..len]` at `len`; returns the full length.
fn seal(buf: &mut [u8], len: usize) -> usize {
    let c = crc32(&buf[..len]);
    put_u32(buf, len, c);
    len + CRC_LEN
}

/// The common header of a packet that passed the magic, version, flags and CRC checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub ty: PacketType,
    /// Session the packet belongs to.
    pub session: u64,
}

/// Checks magic, version, type, flags and CRC; returns the header and the body between the
/// header and the CRC.
pub fn open(pkt: &[u8]) -> Result<(Header, &[u8]), WireError> {
    if pkt.len() < HEADER_LEN + CRC_LEN {
        return Err(WireError::Truncated);
    }
    if get_u32(pkt, 0) != MAGIC {
        return Err(WireError::BadMagic);
    }
    if pkt[4] != VERSION {
        return Err(WireError::BadVersion);
    }
    let ty = PacketType::from_u8(pkt[5]).ok_or(WireError::BadType)?;
    if get_u16(pkt, 6) != 0 {
        return Err(WireError::BadFlags);
    }
    let body_end = pkt.len() - CRC_LEN;
    if crc32(&pkt[..body_end]) != get_u32(pkt, body_end) {
        return Err(WireError::BadCrc);
    }
    Ok((
        Header {
            ty,
            session: get_u64(pkt, 8),
        },
        &pkt[HEADER_LEN..body_end],
    ))
}

/// One encoding symbol of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// Block index.
    pub block: u32,
    /// Encoding symbol index: < k source, >= k repair.
    pub esi: u16,
    /// Data packet sequence number (wraps), for loss estimates and report ordering.
    pub seq: u32,
    /// First 4 bytes of the block's hash: checks the decoded block.
    pub block_check: u32,
    /// The symbol.
    pub payload: &'a [u8],
}

/// Writes the data header into `buf[..DATA_HEADER_LEN]`; the caller has put (or will put)
/// the symbol at `buf[DATA_HEADER_LEN..DATA_HEADER_LEN + payload_len]`, then calls
/// [`seal_data`]. Split so the symbol can be encoded straight into the packet buffer.
pub fn write_data_header(
    buf: &mut [u8],
    session: u64,
    block: u32,
    esi: u16,
    seq: u32,
    block_check: u32,
) {
    write_header(buf, PacketType::Data, session);
    put_u32(buf, 16, block);
    put_u16(buf, 20, esi);
    put_u16(buf, 22, 0);
    put_u32(buf, 24, seq);
    put_u32(buf, 28, block_check);
}

/// Appends the CRC to a data packet whose header and payload are in place.
pub fn seal_data(buf: &mut [u8], payload_len: usize) -> usize {
    seal(buf, DATA_HEADER_LEN + payload_len)
}

/// Builds a complete data packet; returns its length.
pub fn write_data(buf: &mut [u8], session: u64, d: &Data<'_>) -> Result<usize, WireError> {
    if buf.len() < DATA_OVERHEAD + d.payload.len() {
        return Err(WireError::BufferTooSmall);
    }
    write_data_header(buf, session, d.block, d.esi, d.seq, d.block_check);
    buf[DATA_HEADER_LEN..DATA_HEADER_LEN + d.payload.len()].copy_from_slice(d.payload);
    Ok(seal_data(buf, d.payload.len()))
}

/// Parses the body of a data packet (as returned by [`open`]).
pub fn parse_data(body: &[u8]) -> Result<Data<'_>, WireError> {
    let fixed = DATA_HEADER_LEN - HEADER_LEN;
    if body.len() < fixed + SYMBOL_ALIGN as usize {
        return Err(WireError::Truncated);
    }
    let payload = &body[fixed..];
    if !payload.len().is_multiple_of(SYMBOL_ALIGN as usize)
        || payload.len() > MAX_SYMBOL_SIZE as usize
    {
        return Err(WireError::BadLength);
    }
    let esi = get_u16(body, 4);
    if esi > MAX_ESI {
        return Err(WireError::BadField("esi"));
    }
    if get_u16(body, 6) != 0 {
        return Err(WireError::BadField("reserved"));
    }
    Ok(Data {
        block: get_u32(body, 0),
        esi,
        seq: get_u32(body, 8),
        block_check: get_u32(body, 12),
        payload,
    })
}

/// Announce flag: the image digest field is valid.
pub const ANNOUNCE_DIGEST_KNOWN: u32 = 1;
/// Announce flag: the forward pass has started (data is flowing).
pub const ANNOUNCE_STARTED: u32 = 2;
/// Announce flag: the server is ending the session; no more data will come.
pub const ANNOUNCE_CLOSING: u32 = 4;
const ANNOUNCE_FLAGS: u32 = ANNOUNCE_DIGEST_KNOWN | ANNOUNCE_STARTED | ANNOUNCE_CLOSING;

/// Session parameters, repeated through the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Image size and block geometry.
    pub geometry: Geometry,
    /// `ANNOUNCE_*` flags.
    pub flags: u32,
    /// Data sequence number the server will use next.
    pub seq: u32,
    /// How often each client should send a status report, in milliseconds; the server
    /// raises it with the number of clients so the report load stays bounded.
    pub report_interval_ms: u32,
    /// Image digest (valid when `ANNOUNCE_DIGEST_KNOWN` is set, zero otherwise).
    pub digest: [u8; 32],
}

impl Announce {
    /// The digest, if the server has announced it.
    pub fn digest(&self) -> Option<&[u8; 32]> {
        (self.flags & ANNOUNCE_DIGEST_KNOWN != 0).then_some(&self.digest)
    }
}

/// Builds an announce packet; returns its length.
pub fn write_announce(buf: &mut [u8], session: u64, a: &Announce) -> Result<usize, WireError> {
    if buf.len() < ANNOUNCE_LEN {
        return Err(WireError::BufferTooSmall);
    }
    write_header(buf, PacketType::Announce, session);
    put_u64(buf, 16, a.geometry.image_size);
    put_u32(buf, 24, a.geometry.symbol_size);
    put_u32(buf, 28, a.geometry.k);
    put_u32(buf, 32, a.geometry.block_count());
    put_u32(buf, 36, a.flags);
    put_u32(buf, 40, a.seq);
    put_u32(buf, 44, a.report_interval_ms);
    buf[48..80].copy_from_slice(&a.digest);
    put_u32(buf, 80, 0);
    Ok(seal(buf, ANNOUNCE_LEN - CRC_LEN))
}

/// Parses the body of an announce packet.
pub fn parse_announce(body: &[u8]) -> Result<Announce, WireError> {
    if body.len() != ANNOUNCE_LEN - HEADER_LEN - CRC_LEN {
        return Err(WireError::BadLength);
    }
    let geometry = Geometry::new(get_u64(body, 0), get_u32(body, 8), get_u32(body, 12))?;
    if get_u32(body, 16) != geometry.block_count() {
        return Err(WireError::BadField("block_count"));
    }
    let flags = get_u32(body, 20);
    if flags & !ANNOUNCE_FLAGS != 0 {
        return Err(WireError::BadField("announce flags"));
    }
    let report_interval_ms = get_u32(body, 28);
    if !(10..=60_000).contains(&report_interval_ms) {
        return Err(WireError::BadField("report_interval_ms"));
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&body[32..64]);
    if flags & ANNOUNCE_DIGEST_KNOWN == 0 && digest != [0u8; 32] {
        return Err(WireError::BadField("digest"));
    }
    if get_u32(body, 64) != 0 {
        return Err(WireError::BadField("reserved"));
    }
    Ok(Announce {
        geometry,
        flags,
        seq: get_u32(body, 24),
        report_interval_ms,
        digest,
    })
}

/// Blocks `[first, first + len)` each still need `deficit` symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeficitRange {
    /// First block of the range.
    pub first: u32,
    /// Number of blocks, >= 1.
    pub len: u16,
    /// Symbols each block still needs, >= 1.
    pub deficit: u16,
}

impl DeficitRange {
    /// One past the last block, without overflow.
    pub fn end(&self) -> u64 {
        self.first as u64 + self.len as u64
    }
}

/// Client state carried in a status report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientPhase {
    /// Bound to the session, collecting blocks.
    Receiving = 0,
    /// Every block written; waiting for the digest or finishing the flush.
    Finishing = 1,
}

/// Status report fields other than the ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusHead {
    /// Random id the client chose at start.
    pub client_id: u64,
    /// Report counter (wraps).
    pub report_seq: u32,
    /// Highest data sequence number seen when the report was made.
    pub last_seq: u32,
    /// Blocks complete (decoded and written).
    pub blocks_done: u32,
    /// Data packet loss measured by the client, parts per million.
    pub loss_ppm: u32,
    /// What the client is doing.
    pub phase: ClientPhase,
}

/// A parsed status report. The ranges are read lazily from the packet: nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    /// Fixed fields.
    pub head: StatusHead,
    raw_ranges: &'a [u8],
}

impl<'a> Status<'a> {
    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.raw_ranges.len() / RANGE_LEN
    }
    /// The ranges, in the order sent (validated ascending and non-overlapping).
    pub fn ranges(&self) -> impl Iterator<Item = DeficitRange> + 'a {
        self.raw_ranges
            .chunks_exact(RANGE_LEN)
            .map(|r| DeficitRange {
                first: get_u32(r, 0),
                len: get_u16(r, 4),
                deficit: get_u16(r, 6),
            })
    }
}

/// Builds a status packet with `ranges`; returns its length.
pub fn write_status(
    buf: &mut [u8],
    session: u64,
    head: &StatusHead,
    ranges: &[DeficitRange],
) -> Result<usize, WireError> {
    if ranges.len() > MAX_RANGES {
        return Err(WireError::BadField("range_count"));
    }
    let len = STATUS_FIXED_LEN + ranges.len() * RANGE_LEN + CRC_LEN;
    if buf.len() < len {
        return Err(WireError::BufferTooSmall);
    }
    write_header(buf, PacketType::Status, session);
    put_u64(buf, 16, head.client_id);
    put_u32(buf, 24, head.report_seq);
    put_u32(buf, 28, head.last_seq);
    put_u32(buf, 32, head.blocks_done);
    put_u32(buf, 36, head.loss_ppm);
    put_u16(buf, 40, ranges.len() as u16);
    buf[42] = head.phase as u8;
    buf[43] = 0;
    put_u32(buf, 44, 0);
    for (i, r) in ranges.iter().enumerate() {
        let at = STATUS_FIXED_LEN + i * RANGE_LEN;
        put_u32(buf, at, r.first);
        put_u16(buf, at + 4, r.len);
        put_u16(buf, at + 6, r.deficit);
    }
    Ok(seal(buf, len - CRC_LEN))
}

/// Parses the body of a status packet, checking that the ranges are non-empty, ascending
/// and non-overlapping.
pub fn parse_status(body: &[u8]) -> Result<Status<'_>, WireError> {
    let fixed = STATUS_FIXED_LEN - HEADER_LEN;
    if body.len() < fixed {
        return Err(WireError::Truncated);
    }
    let count = get_u16(body, 24) as usize;
    if count > MAX_RANGES {
        return Err(WireError::BadField("range_count"));
    }
    if body.len() != fixed + count * RANGE_LEN {
        return Err(WireError::BadLength);
    }
    let phase = match body[26] {
        0 => ClientPhase::Receiving,
        1 => ClientPhase::Finishing,
        _ => return Err(WireError::BadField("phase")),
    };
    if body[27] != 0 || get_u32(body, 28) != 0 {
        return Err(WireError::BadField("reserved"));
    }
    let loss_ppm = get_u32(body, 20);
    if loss_ppm > 1_000_000 {
        return Err(WireError::BadField("loss_ppm"));
    }
    let s = Status {
        head: StatusHead {
            client_id: get_u64(body, 0),
            report_seq: get_u32(body, 8),
            last_seq: get_u32(body, 12),
            blocks_done: get_u32(body, 16),
            loss_ppm,
            phase,
        },
        raw_ranges: &body[fixed..],
    };
    let mut prev_end = 0u64;
    for r in s.ranges() {
        if r.len == 0 {
            return Err(WireError::BadField("range len"));
        }
        if r.deficit == 0 || r.deficit as u32 > MAX_K {
            return Err(WireError::BadField("range deficit"));
        }
        if (r.first as u64) < prev_end {
            return Err(WireError::BadField("range order"));
        }
        if r.end() > u32::MAX as u64 + 1 {
            return Err(WireError::BadField("range end"));
        }
        prev_end = r.end();
    }
    Ok(s)
}

/// Why a client failed (result packet byte 25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailReason {
    /// Not a failure.
    None = 0,
    /// The digest of what was written differs from the announced image digest.
    DigestMismatch = 1,
    /// Writing or flushing the target failed.
    IoError = 2,
    /// The target is smaller than the image.
    TargetTooSmall = 3,
    /// The image is larger than this client supports.
    ImageTooLarge = 4,
    /// The server stopped before the image was complete.
    ServerGone = 5,
    /// The client gave up waiting (timeout).
    Timeout = 6,
    /// The client was interrupted (signal).
    Interrupted = 7,
}

impl FailReason {
    /// Decodes the wire byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::None,
            1 => Self::DigestMismatch,
            2 => Self::IoError,
            3 => Self::TargetTooSmall,
            4 => Self::ImageTooLarge,
            5 => Self::ServerGone,
            6 => Self::Timeout,
            7 => Self::Interrupted,
            _ => return None,
        })
    }
    /// Short human text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "ok",
            Self::DigestMismatch => "digest mismatch",
            Self::IoError => "I/O error on target",
            Self::TargetTooSmall => "target too small",
            Self::ImageTooLarge => "image too large for client",
            Self::ServerGone => "server ended the session",
            Self::Timeout => "timed out",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A client's final outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultReport {
    /// Random id the client chose at start.
    pub client_id: u64,
    /// True when the whole image was written, flushed and matched the announced digest.
    pub verified: bool,
    /// Why not, when not verified (`FailReason::None` when verified).
    pub reason: FailReason,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// Digest the client computed over what it wrote (zero if it did not finish).
    pub digest: [u8; 32],
}

/// Builds a result packet; returns its length.
pub fn write_result(buf: &mut [u8], session: u64, r: &ResultReport) -> Result<usize, WireError> {
    if buf.len() < RESULT_LEN {
        return Err(WireError::BufferTooSmall);
    }
    write_header(buf, PacketType::Result, session);
    put_u64(buf, 16, r.client_id);
    buf[24] = r.verified as u8;
    buf[25] = r.reason as u8;
    put_u16(buf, 26, 0);
    put_u64(buf, 28, r.bytes_written);
    buf[36..68].copy_from_slice(&r.digest);
    Ok(seal(buf, RESULT_LEN - CRC_LEN))
}

/// Parses the body of a result packet.
pub fn parse_result(body: &[u8]) -> Result<ResultReport, WireError> {
    if body.len() != RESULT_LEN - HEADER_LEN - CRC_LEN {
        return Err(WireError::BadLength);
    }
    let verified = match body[8] {
        0 => false,
        1 => true,
        _ => return Err(WireError::BadField("verified")),
    };
    let reason = FailReason::from_u8(body[9]).ok_or(WireError::BadField("reason"))?;
    if verified != (reason == FailReason::None) {
        return Err(WireError::BadField("reason"));
    }
    if get_u16(body, 10) != 0 {
        return Err(WireError::BadField("reserved"));
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&body[20..52]);
    Ok(ResultReport {
        client_id: get_u64(body, 0),
        verified,
        reason,
        bytes_written: get_u64(body, 12),
        digest,
    })
}

/// Builds a result acknowledgement for `client_id`; returns its length.
pub fn write_result_ack(buf: &mut [u8], session: u64, client_id: u64) -> Result<usize, WireError> {
    if buf.len() < RESULT_ACK_LEN {
        return Err(WireError::BufferTooSmall);
    }
    write_header(buf, PacketType::ResultAck, session);
    put_u64(buf, 16, client_id);
    Ok(seal(buf, RESULT_ACK_LEN - CRC_LEN))
}

/// Parses the body of a result acknowledgement; returns the client id.
pub fn parse_result_ack(body: &[u8]) -> Result<u64, WireError> {
    if body.len() != RESULT_ACK_LEN - HEADER_LEN - CRC_LEN {
        return Err(WireError::BadLength);
    }
    Ok(get_u64(body, 0))
}
