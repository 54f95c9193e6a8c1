//! Status packet: a client's progress and the blocks it still lacks.

use super::field::{
    get_u8, get_u16, get_u32, get_u64, put_u8, put_u16, put_u32, put_u64, status as f,
};
use super::{
    CRC_LEN, MAX_K, MAX_RANGES, Packet, PacketType, RANGE_LEN, STATUS_FIXED_LEN, WireError, room,
    seal, write_header,
};

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
    /// The client holds blocks of this image written in an earlier session of it (a
    /// server restarted on the same image): flag bit 0 (`STATUS_RESUMED`).
    pub resumed: bool,
    /// Data packets received since its previous report: with the previous report's
    /// `last_seq`, the share of the packets sent in between that arrived, which is what the
    /// sender's rate control compares with the rate it sent at.
    pub interval_received: u32,
    /// Microseconds from the arrival of data packet `last_seq` at the client (when the
    /// kernel received it, where the client can tell) to the building of this report: the
    /// sender takes it off the report's arrival, so that a client that ran late (a busy
    /// machine) or read its socket in bursts does not look like a queue in front of its
    /// link (version 5).
    pub last_seq_age_us: u32,
}

/// Status flag bit 0: the client resumed from an earlier session of the same image.
pub const STATUS_RESUMED: u8 = 1;

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
        use f::range;
        self.raw_ranges
            .chunks_exact(RANGE_LEN)
            .map(|r| DeficitRange {
                first: get_u32(r, range::FIRST),
                len: get_u16(r, range::BLOCKS),
                deficit: get_u16(r, range::DEFICIT),
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
    use f::range;
    if ranges.len() > MAX_RANGES {
        return Err(WireError::BadField("range_count"));
    }
    let len = STATUS_FIXED_LEN + ranges.len() * RANGE_LEN + CRC_LEN;
    room(buf, len)?;
    write_header(buf, PacketType::Status, session);
    put_u64(buf, f::CLIENT_ID, head.client_id);
    put_u32(buf, f::REPORT_SEQ, head.report_seq);
    put_u32(buf, f::LAST_SEQ, head.last_seq);
    put_u32(buf, f::BLOCKS_DONE, head.blocks_done);
    put_u32(buf, f::LOSS_PPM, head.loss_ppm);
    put_u16(buf, f::RANGE_COUNT, ranges.len() as u16);
    put_u8(buf, f::PHASE, head.phase as u8);
    put_u8(buf, f::FLAGS, if head.resumed { STATUS_RESUMED } else { 0 });
    put_u32(buf, f::INTERVAL_RECEIVED, head.interval_received);
    put_u32(buf, f::LAST_SEQ_AGE, head.last_seq_age_us);
    let entries = buf[f::RANGES].chunks_exact_mut(RANGE_LEN);
    for (entry, r) in entries.zip(ranges) {
        put_u32(entry, range::FIRST, r.first);
        put_u16(entry, range::BLOCKS, r.len);
        put_u16(entry, range::DEFICIT, r.deficit);
    }
    Ok(seal(buf, len - CRC_LEN))
}

impl<'a> Packet<'a> {
    /// Reads a status packet, checking that the ranges are non-empty, ascending and
    /// non-overlapping, and that the count matches the length.
    pub fn status(&self) -> Result<Status<'a>, WireError> {
        self.expect(PacketType::Status)?;
        let b = self.bytes;
        if b.len() < STATUS_FIXED_LEN + CRC_LEN {
            return Err(WireError::Truncated);
        }
        let count = get_u16(b, f::RANGE_COUNT) as usize;
        if count > MAX_RANGES {
            return Err(WireError::BadField("range_count"));
        }
        if b.len() != STATUS_FIXED_LEN + count * RANGE_LEN + CRC_LEN {
            return Err(WireError::BadLength);
        }
        let phase = match get_u8(b, f::PHASE) {
            0 => ClientPhase::Receiving,
            1 => ClientPhase::Finishing,
            _ => return Err(WireError::BadField("phase")),
        };
        let flags = get_u8(b, f::FLAGS);
        if flags & !STATUS_RESUMED != 0 {
            return Err(WireError::BadField("status flags"));
        }
        let loss_ppm = get_u32(b, f::LOSS_PPM);
        if loss_ppm > 1_000_000 {
            return Err(WireError::BadField("loss_ppm"));
        }
        let s = Status {
            head: StatusHead {
                client_id: get_u64(b, f::CLIENT_ID),
                report_seq: get_u32(b, f::REPORT_SEQ),
                last_seq: get_u32(b, f::LAST_SEQ),
                blocks_done: get_u32(b, f::BLOCKS_DONE),
                loss_ppm,
                phase,
                resumed: flags & STATUS_RESUMED != 0,
                interval_received: get_u32(b, f::INTERVAL_RECEIVED),
                last_seq_age_us: get_u32(b, f::LAST_SEQ_AGE),
            },
            raw_ranges: &b[f::RANGES.start..self.body_end()],
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
}
