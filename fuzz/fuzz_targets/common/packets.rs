#![allow(dead_code)]
//! Shared by the packet targets: a fuzzed body framed as a packet of one type, and the
//! checks every packet that parses must pass (parse -> emit -> the same bytes).

use bb_proto::wire::auth::{self, COUNTER_LEN, Direction, MacKey, PresharedKey, SERVER_SENDER};
use bb_proto::wire::{self, DeficitRange, MAX_DATAGRAM, MAX_RANGES, PacketType, ZeroRange};

/// How packets are authenticated: the one parameter that separates the keyless targets
/// from their keyed twins.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    /// No tag: the CRC is the only trailer.
    Keyless,
    /// Tagged (protocol section 9) with the session keys derived from this pre-shared key:
    /// the packet's own sender's key, as the server or the client named in it would.
    Keyed([u8; 32]),
}

/// The pre-shared key of the keyed targets.
pub const KEY: [u8; 32] = *b"broadband fuzz pre-shared key 32";

/// The MAC key of the sender of a `ty` packet of `session`: the server's, or for a status
/// report or result the client's whose id it names (`sender`).
pub fn mac_key(psk: &[u8; 32], ty: PacketType, session: u64, sender: u64) -> MacKey {
    let psk = PresharedKey::from_bytes(*psk);
    match ty {
        PacketType::Status | PacketType::Result => {
            MacKey::derive(&psk, session, Direction::FromClient, sender)
        }
        _ => MacKey::derive(&psk, session, Direction::FromServer, SERVER_SENDER),
    }
}

/// Every packet type, in wire order of their numbers.
pub const TYPES: [PacketType; 6] = [
    PacketType::Data,
    PacketType::Announce,
    PacketType::Status,
    PacketType::Result,
    PacketType::ResultAck,
    PacketType::ZeroMap,
];

/// The packet type numbered `b` on the wire.
pub fn packet_type(b: u8) -> Option<PacketType> {
    TYPES.into_iter().find(|&t| t as u8 == b)
}

/// The client id a status report or result names (0 when the packet is too short to name
/// one: its tag is then checked under client 0's key, as `open_keyed` would not).
pub fn sender_of(pkt: &[u8]) -> u64 {
    let id = wire::field::status::CLIENT_ID;
    pkt.get(id)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

/// Session id of every framed packet.
pub const SESSION: u64 = 0x0123_4567_89ab_cdef;

/// `body` (everything after the common header) as a `ty` packet with a valid common header
/// and trailer, so that the fuzzer spends its time in the type's own field checks.
pub fn frame(ty: PacketType, body: &[u8], auth: Auth) -> Vec<u8> {
    let mut p = Vec::with_capacity(wire::HEADER_LEN + body.len() + wire::CRC_LEN);
    p.extend_from_slice(&wire::MAGIC.to_le_bytes());
    p.push(wire::VERSION);
    p.push(ty as u8);
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&SESSION.to_le_bytes());
    p.extend_from_slice(body);
    match auth {
        Auth::Keyless => {
            let crc = wire::crc32(&p);
            p.extend_from_slice(&crc.to_le_bytes());
        }
        Auth::Keyed(psk) => {
            // The counter comes from the body, so that the fuzzer reaches any counter value.
            let counter = body.iter().fold(0u64, |c, &b| c.rotate_left(8) ^ b as u64);
            let len = p.len() + wire::CRC_LEN;
            p.resize(len + auth::TRAILER_LEN, 0);
            let key = mac_key(&psk, ty, SESSION, sender_of(&p));
            let n = auth::sign(&mut p, len, &key, counter).unwrap();
            p.truncate(n);
        }
    }
    p
}

/// Opens `pkt`; when it is a well-formed packet of any type, checks what its parser
/// promises and that re-emitting the parsed value gives back exactly `pkt`. Returns the
/// type of a well-formed packet.
pub fn round_trip(pkt: &[u8], auth: Auth) -> Option<PacketType> {
    let p = match auth {
        Auth::Keyless => {
            let p = wire::open(pkt).ok()?;
            // A keyed end drops every packet a keyless end accepts: no tag, no use.
            let key = mac_key(&KEY, p.ty(), p.session(), sender_of(pkt));
            assert_eq!(
                wire::open_keyed(pkt, |_, _| &key).err(),
                Some(wire::WireError::Unauthenticated)
            );
            p
        }
        Auth::Keyed(psk) => {
            let p = wire::open_keyed(pkt, |session, sender| {
                // open_keyed checked the type before it asks for the key.
                let ty = packet_type(pkt[5]).unwrap();
                mac_key(&psk, ty, session, sender)
            });
            // A keyless end never accepts a tagged packet.
            if p.is_ok() {
                assert_eq!(wire::open(pkt).err(), Some(wire::WireError::NeedsKey));
            }
            p.ok()?
        }
    };
    let session = p.session();
    let mut buf = vec![0u8; MAX_DATAGRAM + 64];
    let n = match p.ty() {
        PacketType::Data => {
            let d = p.data().ok()?;
            wire::write_data(&mut buf, session, &d).unwrap()
        }
        PacketType::Announce => {
            let a = p.announce().ok()?;
            let g = a.geometry;
            assert!(
                g.block_count() as u64 * g.block_bytes() >= g.image_size,
                "{g:?}"
            );
            wire::write_announce(&mut buf, session, &a).unwrap()
        }
        PacketType::Status => {
            let s = p.status().ok()?;
            let ranges: Vec<DeficitRange> = s.ranges().collect();
            assert!(ranges.len() <= MAX_RANGES);
            wire::write_status(&mut buf, session, &s.head, &ranges).unwrap()
        }
        PacketType::Result => {
            let r = p.result().ok()?;
            wire::write_result(&mut buf, session, &r).unwrap()
        }
        PacketType::ResultAck => {
            let id = p.result_ack().ok()?;
            wire::write_result_ack(&mut buf, session, id).unwrap()
        }
        PacketType::ZeroMap => {
            let m = p.zero_map().ok()?;
            let ranges: Vec<ZeroRange> = m.ranges().collect();
            // What the parser promises its users: non-empty, ascending, disjoint, in the span.
            let mut prev_end = m.span_first as u64;
            for r in &ranges {
                assert!(r.blocks > 0 && r.first as u64 >= prev_end, "{ranges:?}");
                assert!(r.end() <= m.span_end as u64, "{ranges:?}");
                prev_end = r.end();
            }
            wire::write_zero_map(&mut buf, session, m.span_first, m.span_end, &ranges).unwrap()
        }
    };
    let n = match auth {
        Auth::Keyless => n,
        Auth::Keyed(psk) => {
            // Tagged again with the packet's own counter: the same bytes, tag and all.
            let at = pkt.len() - auth::TAG_LEN - COUNTER_LEN;
            let counter = u64::from_le_bytes(pkt[at..at + COUNTER_LEN].try_into().unwrap());
            let key = mac_key(&psk, p.ty(), session, sender_of(pkt));
            auth::sign(&mut buf, n, &key, counter).unwrap()
        }
    };
    assert_eq!(&buf[..n], pkt, "re-emitted {:?} differs", p.ty());
    Some(p.ty())
}

/// The body of a packet target: `body` framed as `ty`, which must open (its header and
/// trailer are valid) and, when its fields are, round-trip as that type.
pub fn fuzz_type(ty: PacketType, body: &[u8], auth: Auth) {
    let pkt = frame(ty, body, auth);
    if let Some(parsed) = round_trip(&pkt, auth) {
        assert_eq!(parsed, ty);
    }
}
