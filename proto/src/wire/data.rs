//! Data packet: one encoding symbol of one block.

use super::field::{data as f, get_u8, get_u16, get_u32, put_u8, put_u16, put_u32};
use super::{
    DATA_HEADER_LEN, DATA_OVERHEAD, MAX_ESI, MAX_SYMBOL_SIZE, Packet, PacketType, SYMBOL_ALIGN,
    WireError, room, seal, write_header,
};

/// How a block's bytes are coded before the erasure code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    /// The image bytes themselves.
    Raw = 0,
    /// One zstd frame of the image bytes.
    Zstd = 1,
}

impl Encoding {
    /// Decodes the wire byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// What a data packet says about its block, besides the symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHead {
    /// Block index.
    pub block: u32,
    /// Encoding symbol index: < coded k source, >= coded k repair.
    pub esi: u16,
    /// How the block is coded.
    pub encoding: Encoding,
    /// Data packet sequence number (wraps), for loss estimates and report ordering.
    pub seq: u32,
    /// The block's check: verifies the decoded (and decompressed) block.
    pub block_check: u32,
    /// Bytes of the coded block before padding; its source symbols are this divided by the
    /// symbol size, rounded up.
    pub coded_len: u32,
}

/// One encoding symbol of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// The header fields.
    pub head: DataHead,
    /// The symbol.
    pub payload: &'a [u8],
}

/// Writes the data header into `buf[..DATA_HEADER_LEN]`; the caller has put (or will put)
/// the symbol at `buf[DATA_HEADER_LEN..DATA_HEADER_LEN + payload_len]`, then calls
/// [`seal_data`]. Split so the symbol can be encoded straight into the packet buffer.
pub fn write_data_header(buf: &mut [u8], session: u64, h: &DataHead) {
    write_header(buf, PacketType::Data, session);
    put_u32(buf, f::BLOCK, h.block);
    put_u16(buf, f::ESI, h.esi);
    put_u8(buf, f::ENCODING, h.encoding as u8);
    put_u8(buf, f::RESERVED, 0);
    put_u32(buf, f::SEQ, h.seq);
    put_u32(buf, f::BLOCK_CHECK, h.block_check);
    put_u32(buf, f::CODED_LEN, h.coded_len);
}

/// Appends the CRC to a data packet whose header and payload are in place.
pub fn seal_data(buf: &mut [u8], payload_len: usize) -> usize {
    seal(buf, DATA_HEADER_LEN + payload_len)
}

/// Builds a complete data packet; returns its length.
pub fn write_data(buf: &mut [u8], session: u64, d: &Data<'_>) -> Result<usize, WireError> {
    room(buf, DATA_OVERHEAD + d.payload.len())?;
    write_data_header(buf, session, &d.head);
    buf[f::PAYLOAD][..d.payload.len()].copy_from_slice(d.payload);
    Ok(seal_data(buf, d.payload.len()))
}

impl<'a> Packet<'a> {
    /// Reads a data packet: the payload is a whole number of [`SYMBOL_ALIGN`] units, at
    /// most [`MAX_SYMBOL_SIZE`]; the esi is not the reserved 0xFFFF; the encoding is known
    /// and the coded length not zero. Whether the coded length fits the block is for the
    /// receiver to check against the geometry.
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
        let encoding =
            Encoding::from_u8(get_u8(b, f::ENCODING)).ok_or(WireError::BadField("encoding"))?;
        if get_u8(b, f::RESERVED) != 0 {
            return Err(WireError::BadField("reserved"));
        }
        let coded_len = get_u32(b, f::CODED_LEN);
        if coded_len == 0 {
            return Err(WireError::BadField("coded_len"));
        }
        Ok(Data {
            head: DataHead {
                block: get_u32(b, f::BLOCK),
                esi,
                encoding,
                seq: get_u32(b, f::SEQ),
                block_check: get_u32(b, f::BLOCK_CHECK),
                coded_len,
            },
            payload,
        })
    }
}
