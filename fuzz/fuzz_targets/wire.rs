//! Every parser on arbitrary bytes: never a panic, and what parses re-encodes to the same bytes.
#![no_main]

use bb_proto::wire::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|pkt: &[u8]| {
    let Ok((h, body)) = open(pkt) else { return };
    let mut buf = vec![0u8; MAX_DATAGRAM + 64];
    match h.ty {
        PacketType::Data => {
            if let Ok(d) = parse_data(body) {
                let n = write_data(&mut buf, h.session, &d).unwrap();
                assert_eq!(&buf[..n], pkt);
            }
        }
        PacketType::Announce => {
            if let Ok(a) = parse_announce(body) {
                let n = write_announce(&mut buf, h.session, &a).unwrap();
                assert_eq!(&buf[..n], pkt);
            }
        }
        PacketType::Status => {
            if let Ok(s) = parse_status(body) {
                let ranges: Vec<DeficitRange> = s.ranges().collect();
                let n = write_status(&mut buf, h.session, &s.head, &ranges).unwrap();
                assert_eq!(&buf[..n], pkt);
            }
        }
        PacketType::Result => {
            if let Ok(r) = parse_result(body) {
                let n = write_result(&mut buf, h.session, &r).unwrap();
                assert_eq!(&buf[..n], pkt);
            }
        }
        PacketType::ResultAck => {
            if let Ok(id) = parse_result_ack(body) {
                let n = write_result_ack(&mut buf, h.session, id).unwrap();
                assert_eq!(&buf[..n], pkt);
            }
        }
    }
});
