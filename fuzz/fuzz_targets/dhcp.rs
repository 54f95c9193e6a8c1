//! The client's DHCP reply parser on arbitrary bytes (anyone on the segment can answer):
//! never a panic, a lease only from a well-formed reply to our transaction, and every
//! request we build parses back, as a reply, to what we put in.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../client-static/src/init/dhcp_packet.rs"]
mod dhcp_packet;
use dhcp_packet::{MAX_REPLY, OP_REPLY, PKT_LEN, REQUEST, build, parse};

const XID: u32 = 0x5eed_1234;
const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const COOKIE: [u8; 4] = [99, 130, 83, 99];

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut p = rest[..rest.len().min(MAX_REPLY)].to_vec();
    if mode & 1 == 1 && p.len() >= 240 {
        // A reply to our transaction, so that the options are what gets fuzzed.
        p[..3].copy_from_slice(&[OP_REPLY, 1, 6]);
        p[4..8].copy_from_slice(&XID.to_be_bytes());
        p[28..34].copy_from_slice(&MAC);
        p[236..240].copy_from_slice(&COOKIE);
    }
    if let Some(l) = parse(&p, XID, MAC) {
        assert!(p.len() >= 240 && p[0] == OP_REPLY);
        assert_ne!(l.msg_type, 0);
        assert_eq!(&l.yiaddr[..], &p[16..20]);
        assert_eq!(&l.siaddr[..], &p[20..24]);
    }
    if mode & 2 == 2 && rest.len() >= 18 {
        // Build a request from fuzzed fields; answered back verbatim it must parse to them.
        let xid = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let mac: [u8; 6] = rest[4..10].try_into().unwrap();
        let requested: [u8; 4] = rest[10..14].try_into().unwrap();
        let server: [u8; 4] = rest[14..18].try_into().unwrap();
        let mut req = [0u8; PKT_LEN];
        let n = build(
            &mut req,
            REQUEST,
            xid,
            mode as u16,
            mac,
            Some(requested),
            Some(server),
        );
        req[0] = OP_REPLY;
        let l = parse(&req[..n], xid, mac).expect("our own request, answered verbatim");
        assert_eq!((l.msg_type, l.server_id), (REQUEST, Some(server)));
        assert!(
            parse(&req[..n], xid ^ 1, mac).is_none(),
            "another transaction's reply"
        );
    }
});
