//! Every parser on arbitrary bytes: never a panic, and what parses re-encodes to the same bytes.
#![no_main]

use bb_proto::wire::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|pkt: &[u8]| {
    let Ok(p) = open(pkt) else { return };
    let session = p.session();
    let mut buf = vec![0u8; MAX_DATAGRAM + 64];
    let n = match p.ty() {
        PacketType::Data => match p.data() {
            Ok(d) => write_data(&mut buf, session, &d).unwrap(),
            Err(_) => return,
        },
        PacketType::Announce => match p.announce() {
            Ok(a) => write_announce(&mut buf, session, &a).unwrap(),
            Err(_) => return,
        },
        PacketType::Status => match p.status() {
            Ok(s) => {
                let ranges: Vec<DeficitRange> = s.ranges().collect();
                write_status(&mut buf, session, &s.head, &ranges).unwrap()
            }
            Err(_) => return,
        },
        PacketType::Result => match p.result() {
            Ok(r) => write_result(&mut buf, session, &r).unwrap(),
            Err(_) => return,
        },
        PacketType::ResultAck => match p.result_ack() {
            Ok(id) => write_result_ack(&mut buf, session, id).unwrap(),
            Err(_) => return,
        },
        PacketType::ZeroMap => match p.zero_map() {
            Ok(m) => {
                let ranges: Vec<ZeroRange> = m.ranges().collect();
                write_zero_map(&mut buf, session, m.span_first, m.span_end, &ranges).unwrap()
            }
            Err(_) => return,
        },
    };
    assert_eq!(&buf[..n], pkt);
});
