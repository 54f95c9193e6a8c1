//! Shared by the state-machine targets: the fuzz input read as a sequence of datagrams.

use bb_proto::wire::{self, CRC_LEN, VERSION};

/// Splits `input` into datagrams, each `[len u8][flags u8][len bytes]`. When bit 0 of the
/// flags is set the datagram gets a valid header for `session` (and, when `types` is not
/// empty, one of those packet types, chosen by the other flag bits) and a valid CRC, so the
/// field checks behind them are reached. Yields (flags, datagram).
pub fn datagrams(input: &[u8], session: u64, types: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = input;
    while rest.len() >= 2 {
        let (len, fix) = (rest[0] as usize, rest[1]);
        rest = &rest[2..];
        let take = len.min(rest.len());
        let mut pkt = rest[..take].to_vec();
        rest = &rest[take..];
        if fix & 1 == 1 && pkt.len() >= 16 + CRC_LEN {
            pkt[..4].copy_from_slice(b"BBND");
            pkt[4] = VERSION;
            if !types.is_empty() {
                pkt[5] = types[(fix >> 1) as usize % types.len()];
                pkt[6] = 0;
                pkt[7] = 0;
            }
            pkt[8..16].copy_from_slice(&session.to_le_bytes());
            let end = pkt.len() - CRC_LEN;
            let c = wire::crc32(&pkt[..end]);
            pkt[end..].copy_from_slice(&c.to_le_bytes());
        }
        out.push((fix, pkt));
    }
    out
}
