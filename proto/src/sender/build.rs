//! Building the packets the sender asks the shell to send: announces, data symbols (the
//! block's coded bytes through the erasure code), zero maps and result acknowledgements.

use super::SourceAddr;
use super::{Sender, SenderError};
use crate::wire::{
    self, Announce, AnnounceFlags, DATA_HEADER_LEN, DATA_OVERHEAD, DataHead, MAX_ZERO_RANGES,
    WireError, ZeroRange,
};

impl<A: SourceAddr> Sender<'_, A> {
    /// Builds the announce packet; returns its length.
    pub fn build_announce(&self, buf: &mut [u8]) -> Result<usize, SenderError> {
        let mut flags = AnnounceFlags::NONE;
        if self.started() {
            flags |= AnnounceFlags::STARTED;
        }
        if self.end.is_some() {
            flags |= AnnounceFlags::CLOSING;
        }
        let a = Announce {
            geometry: self.cfg.geometry,
            flags,
            seq: self.schedule.seq(),
            report_interval_ms: self.report_interval_ms(),
            digest: self.digest().copied(),
        };
        let n = wire::write_announce(buf, self.cfg.session_id, &a).map_err(SenderError::Wire)?;
        self.finish_packet(buf, n)
    }

    /// Builds the data packet for a [`Transmit::Symbol`]. `coded` is the block's coded bytes
    /// (its image bytes, or its zstd frame) followed by zeros up to whole symbols:
    /// `coded_k * symbol_size` bytes.
    pub fn build_symbol(
        &mut self,
        block: u32,
        esi: u16,
        seq: u32,
        coded: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, SenderError> {
        let g = self.cfg.geometry;
        let s = g.symbol_size as usize;
        if block >= self.map.ready() || self.map.is_zero(block) {
            return Err(SenderError::BadBlock);
        }
        let k = self.map.coded_k(block) as usize;
        if coded.len() != k * s {
            return Err(SenderError::BadBlock);
        }
        if buf.len() < DATA_OVERHEAD + s + self.tag_len() {
            return Err(SenderError::Wire(WireError::BufferTooSmall));
        }
        let head = DataHead {
            block,
            esi,
            encoding: self.map.encoding(block),
            seq,
            block_check: self.map.check(block),
            coded_len: self.map.coded_len(block),
        };
        wire::write_data_header(buf, self.cfg.session_id, &head);
        let out = &mut buf[DATA_HEADER_LEN..DATA_HEADER_LEN + s];
        self.cfg
            .engine
            .encode_symbol(coded, k, s, esi, out)
            .map_err(SenderError::Fec)?;
        let n = wire::seal_data(buf, s);
        self.finish_packet(buf, n)
    }

    /// Builds the zero map for a [`Transmit::ZeroMap`]: the next span of the blocks given so
    /// far, with its zero ranges. A span that a client's report asked for (it reported a
    /// zero block missing) comes first; then blocks given since the last span, so clients
    /// learn a zero block before the data that follows it (an in-order sink could not write
    /// past it otherwise); then spans cycle through the image, so every client, late joiners
    /// too, learns the whole map.
    pub fn build_zero_map(&mut self, buf: &mut [u8]) -> Result<usize, SenderError> {
        // A span covers at most this many blocks, so building one never scans the whole map.
        const SPAN_SCAN: u32 = 1 << 16;
        let ready = self.map.ready();
        if self.zero_map_cursor >= ready {
            self.zero_map_cursor = 0;
        }
        let hint = self.zero_map_hint.take().filter(|&h| h < ready);
        let fresh = hint.is_none() && self.zero_map_fresh < ready;
        let first = match hint {
            Some(h) => h,
            None if fresh => self.zero_map_fresh,
            None => self.zero_map_cursor,
        };
        let limit = ready.min(first.saturating_add(SPAN_SCAN));
        let mut ranges = [ZeroRange::default(); MAX_ZERO_RANGES];
        let mut n = 0;
        let mut b = first;
        while b < limit {
            if !self.map.is_zero(b) {
                b += 1;
                continue;
            }
            if n == ranges.len() {
                break;
            }
            let start = b;
            while b < limit && self.map.is_zero(b) {
                b += 1;
            }
            ranges[n] = ZeroRange {
                first: start,
                blocks: b - start,
            };
            n += 1;
        }
        if fresh {
            self.zero_map_fresh = b;
        } else if hint.is_none() {
            self.zero_map_cursor = b;
        }
        let len = wire::write_zero_map(buf, self.cfg.session_id, first, b, &ranges[..n])
            .map_err(SenderError::Wire)?;
        self.finish_packet(buf, len)
    }

    /// Builds the acknowledgement of a client's result.
    pub fn build_result_ack(&self, client_id: u64, buf: &mut [u8]) -> Result<usize, SenderError> {
        let n = wire::write_result_ack(buf, self.cfg.session_id, client_id)
            .map_err(SenderError::Wire)?;
        self.finish_packet(buf, n)
    }
}
