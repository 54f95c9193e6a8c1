//! Data packet: one encoding symbol of one block.

use super::field::{data as f, get_u16, get_u32, put_u16, put_u32};
use super::{
    DATA_HEADER_LEN, DATA_OVERHEAD, MAX_ESI, MAX_SYMBOL_SIZE, Packet, PacketType, SYMBOL_ALIGN,
    WireError, room, seal, write_header,
};

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
    put_u32(buf, f::BLOCK, block);
    put_u16(buf, f::ESI, esi);
    put_u16(buf, f::RESERVED, 0);
    put_u32(buf, f::SEQ, seq);
    put_u32(buf, f::BLOCK_CHECK, block_check);
}

/// Appends the CRC to a data packet whose header and payload are in place.
pub fn seal_data(buf: &mut [u8], payload_len: usize) -> usize {
    seal(buf, DATA_HEADER_LEN + payload_len)
}

/// Builds a complete data packet; returns its length.
pub fn write_data(buf: &mut [u8], session: u64, d: &Data<'_>) -> Result<usize, WireError> {
    room(buf, DATA_OVERHEAD + d.payload.len())?;
    write_data_header(buf, session, d.block, d.esi, d.seq, d.block_check);
    buf[f::PAYLOAD][..d.payload.len()].copy_from_slice(d.payload);
    Ok(seal_data(buf, d.payload.len()))
}

impl<'a> Packet<'a> {
    /// Reads a data packet: the payload is a whole number of [`SYMBOL_ALIGN`] units, at
    /// most [`MAX_SYMBOL_SIZE`]; the esi is not the reserved 0xFFFF.
    pub fn data(&self) -> Result<Data<'a>, WireError> {
        self.expect(PacketType::Data)?;
        let b = self.bytes;
        if b.len() < DATA_OVERHEAD + SYMBOL_ALIGN as usize {
            return Err(WireError::Truncated);
        }
        let payload = &b[f::PAYLOAD.start..self.body_end()];
        if !payload.len().is_multiple_of(SYMBOL_ALIGN as usize)
            || payload.len() > MAX_SYMBOL_SIZE as usize
        {
            return Err(WireError::BadLength);
        }
        let esi = get_u16(b, f::ESI);
        if esi > MAX_ESI {
            return Err(WireError::BadField("esi"));
        }
        if get_u16(b, f::RESERVED) != 0 {
            return Err(WireError::BadField("reserved"));
        }
        Ok(Data {
            block: get_u32(b, f::BLOCK),
            esi,
            seq: get_u32(b, f::SEQ),
            block_check: get_u32(b, f::BLOCK_CHECK),
            payload,
        })
    }
}
