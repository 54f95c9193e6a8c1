//! Every packet type with a tag (protocol section 9), the type taken from the first input
//! byte: a fuzzed body framed and tagged under the fuzz key. Never a panic; every body that
//! parses re-emits to the same bytes, tag included; a keyless end refuses it; and one change
//! the input picks (a byte flipped, the trailer cut or stripped, another key, another
//! session) makes the keyed end refuse it before anything in it is used.
#![no_main]

use bb_proto::wire::{self, PacketType, WireError, auth};
use libfuzzer_sys::fuzz_target;

#[path = "common/packets.rs"]
mod packets;
use packets::{Auth, KEY, SESSION, TYPES, frame, mac_key, round_trip, sender_of};

fuzz_target!(|input: &[u8]| {
    let [ty, how, at_lo, at_hi, body @ ..] = input else {
        return;
    };
    let ty = TYPES[*ty as usize % TYPES.len()];
    let pkt = frame(ty, body, Auth::Keyed(KEY));
    if let Some(parsed) = round_trip(&pkt, Auth::Keyed(KEY)) {
        assert_eq!(parsed, ty);
    }
    // The right key opens the untouched packet whatever its body (the tag is checked before
    // the body is read), unless it is a client's packet too short to name its client (whose
    // key is then unknown).
    let right = mac_key(&KEY, ty, SESSION, sender_of(&pkt));
    let names_no_client = matches!(ty, PacketType::Status | PacketType::Result)
        && pkt.len() < wire::field::status::CLIENT_ID.end + wire::CRC_LEN + auth::TRAILER_LEN;
    match wire::open_keyed(&pkt, |_, _| &right) {
        Ok(_) => assert!(!names_no_client),
        Err(e) => assert!(names_no_client && e == WireError::Truncated, "{e:?}"),
    }

    let at = u16::from_le_bytes([*at_lo, *at_hi]) as usize % pkt.len();
    let mut forged = pkt.clone();
    let key = match how % 5 {
        // One byte changed anywhere: header, body, CRC, counter or tag.
        0 => {
            forged[at] ^= how | 1;
            right
        }
        // The trailer cut short.
        1 => {
            forged.truncate(pkt.len() - 1 - at % auth::TRAILER_LEN);
            right
        }
        // The trailer removed and the flag cleared: a valid keyless packet.
        2 => {
            let len = pkt.len() - auth::TRAILER_LEN;
            forged.truncate(len);
            forged[6] &= !1;
            let crc = wire::crc32(&forged[..len - wire::CRC_LEN]);
            forged[len - wire::CRC_LEN..].copy_from_slice(&crc.to_le_bytes());
            assert!(wire::open(&forged).is_ok());
            right
        }
        // The checker holds another pre-shared key.
        3 => {
            let mut other = KEY;
            other[at % 32] ^= how | 1;
            mac_key(&other, ty, SESSION, sender_of(&pkt))
        }
        // The checker derives the key of another session or (for a client's packet) of
        // another client: the keys of one session's senders never open each other's packets.
        _ => mac_key(&KEY, ty, SESSION ^ (at as u64 + 1), sender_of(&pkt)),
    };
    let r = wire::open_keyed(&forged, |_, _| &key);
    assert!(
        matches!(
            r,
            Err(WireError::BadTag
                | WireError::Unauthenticated
                | WireError::Truncated
                | WireError::BadMagic
                | WireError::BadVersion
                | WireError::BadType
                | WireError::BadFlags)
        ),
        "a changed packet opened: {r:?}"
    );
});
