//! Shared by the packet targets: a fuzzed body framed as a packet of one type, and the
//! checks every packet that parses must pass (parse -> emit -> the same bytes).

use bb_proto::wire::{self, DeficitRange, MAX_DATAGRAM, MAX_RANGES, PacketType, ZeroRange};

/// How packets are authenticated: the one parameter that separates the keyless targets
/// from their keyed twins. Only keyless packets exist in protocol v2; when the MAC tag
/// lands (issue 9 item 1), add `Keyed([u8; 32])`, make [`frame`] append the tag and
/// [`round_trip`] open and re-emit with it, and add `packet_*_keyed` targets passing it.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    /// No tag: the CRC is the only trailer.
    Keyless,
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
    }
    p
}

/// Opens `pkt`; when it is a well-formed packet of any type, checks what its parser
/// promises and that re-emitting the parsed value gives back exactly `pkt`. Returns the
/// type of a well-formed packet.
pub fn round_trip(pkt: &[u8], auth: Auth) -> Option<PacketType> {
    let p = match auth {
        Auth::Keyless => wire::open(pkt).ok()?,
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
