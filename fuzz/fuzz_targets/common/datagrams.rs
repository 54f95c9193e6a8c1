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

/// One datagram of a keyed state-machine target and whether it carries the right key's tag.
pub struct Keyed {
    pub flags: u8,
    pub bytes: Vec<u8>,
    /// Tagged by this target under `psk` (any other datagram must change nothing).
    pub authentic: bool,
}

/// Splits `input` into datagrams `[len u8][flags u8][auth u8][len bytes]`, the header and
/// CRC made valid by the flags as in [`datagrams`]; then `auth % 4` says how it is tagged:
/// 0 and 1 with the key of its sender under `psk` (the server's, or the client's named in
/// a status report or result), 2 with that sender's key under another pre-shared key, 3 not
/// at all. Counters count up from `first_counter`, one per tagged datagram.
pub fn keyed_datagrams(
    input: &[u8],
    session: u64,
    types: &[u8],
    psk: &[u8; 32],
    first_counter: u64,
) -> Vec<Keyed> {
    use super::packets::{mac_key, packet_type, sender_of};
    use bb_proto::wire::{HEADER_LEN, PacketType, auth};

    let mut other = *psk;
    other[0] ^= 0x80;
    let mut counter = first_counter;
    let mut out = Vec::new();
    let mut rest = input;
    while rest.len() >= 3 {
        let (len, how) = (rest[0], rest[2] % 4);
        let end = (3 + len as usize).min(rest.len());
        let mut split = datagrams(&[&[len, rest[1]], &rest[3..end]].concat(), session, types);
        let Some((flags, mut bytes)) = (!split.is_empty()).then(|| split.swap_remove(0)) else {
            break;
        };
        rest = &rest[end..];
        let mut authentic = false;
        if how < 3 && bytes.len() >= HEADER_LEN + CRC_LEN {
            let psk = if how < 2 { psk } else { &other };
            let ty = packet_type(bytes[5]).unwrap_or(PacketType::Data);
            let sender_session = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            let key = mac_key(psk, ty, sender_session, sender_of(&bytes));
            let n = bytes.len();
            bytes.resize(n + auth::TRAILER_LEN, 0);
            let n = auth::sign(&mut bytes, n, &key, counter).unwrap();
            bytes.truncate(n);
            counter += 1;
            authentic = how < 2;
        }
        out.push(Keyed {
            flags,
            bytes,
            authentic,
        });
    }
    out
}
