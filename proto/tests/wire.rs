//! Every packet type round-trips, and every field that can be malformed is rejected with a
//! typed error (never a panic), even when the CRC is made valid again.

use bb_proto::wire::*;

const SESSION: u64 = 0x1122_3344_5566_7788;

/// Recomputes the CRC trailer after a deliberate corruption, so the field check is what
/// rejects the packet, not the CRC.
fn reseal(pkt: &mut [u8]) {
    let n = pkt.len() - CRC_LEN;
    let c = crc32(&pkt[..n]);
    pkt[n..].copy_from_slice(&c.to_le_bytes());
}

fn geometry() -> Geometry {
    Geometry::new(10 * 1024 * 1024 + 17, 1408, 512).unwrap()
}

fn announce_pkt(flags: AnnounceFlags, digest: Option<[u8; 32]>) -> Vec<u8> {
    let a = Announce {
        geometry: geometry(),
        flags,
        seq: 99,
        report_interval_ms: 200,
        digest,
    };
    let mut buf = vec![0u8; ANNOUNCE_LEN];
    assert_eq!(write_announce(&mut buf, SESSION, &a).unwrap(), ANNOUNCE_LEN);
    buf
}

fn parse_any(pkt: &[u8]) -> Result<(), WireError> {
    let p = open(pkt)?;
    match p.ty() {
        PacketType::Data => p.data().map(|_| ()),
        PacketType::Announce => p.announce().map(|_| ()),
        PacketType::Status => p.status().map(|_| ()),
        PacketType::Result => p.result().map(|_| ()),
        PacketType::ResultAck => p.result_ack().map(|_| ()),
    }
}

#[test]
fn data_round_trips() {
    let payload: Vec<u8> = (0..1408).map(|i| (i * 31) as u8).collect();
    let d = Data {
        block: 123_456,
        esi: 700,
        seq: 0xdead_beef,
        block_check: 0x0102_0304,
        payload: &payload,
    };
    let mut buf = vec![0u8; 1500];
    let n = write_data(&mut buf, SESSION, &d).unwrap();
    assert_eq!(n, DATA_OVERHEAD + 1408);
    let p = open(&buf[..n]).unwrap();
    assert_eq!(
        p.header(),
        Header {
            ty: PacketType::Data,
            session: SESSION
        }
    );
    assert_eq!((p.ty(), p.session()), (PacketType::Data, SESSION));
    assert_eq!(p.as_bytes(), &buf[..n]);
    assert_eq!(p.data().unwrap(), d);
    // Byte layout (docs/PROTOCOL.md): magic, version, type, flags, session, block, esi.
    assert_eq!(&buf[0..4], b"BBND");
    assert_eq!((buf[4], buf[5]), (VERSION, 1));
    assert_eq!(&buf[8..16], &SESSION.to_le_bytes());
    assert_eq!(&buf[16..20], &123_456u32.to_le_bytes());
    assert_eq!(&buf[20..22], &700u16.to_le_bytes());
    assert_eq!(&buf[24..28], &0xdead_beefu32.to_le_bytes());
    assert_eq!(&buf[32..32 + 1408], &payload[..]);
}

#[test]
fn data_malformed_fields_are_rejected() {
    let payload = vec![7u8; 128];
    let d = Data {
        block: 1,
        esi: 2,
        seq: 3,
        block_check: 4,
        payload: &payload,
    };
    let mut buf = vec![0u8; 512];
    let n = write_data(&mut buf, SESSION, &d).unwrap();
    let good = buf[..n].to_vec();
    let data = |p: &[u8]| open(p).unwrap().data().map(|_| ());
    // esi 0xFFFF is reserved.
    let mut p = good.clone();
    p[20..22].copy_from_slice(&0xFFFFu16.to_le_bytes());
    reseal(&mut p);
    assert_eq!(data(&p), Err(WireError::BadField("esi")));
    // Reserved bytes must be zero.
    let mut p = good.clone();
    p[22] = 1;
    reseal(&mut p);
    assert_eq!(data(&p), Err(WireError::BadField("reserved")));
    // A payload that is not a whole number of 64-byte units.
    let mut p = good[..n - CRC_LEN - 10].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(data(&p), Err(WireError::BadLength));
    // A payload larger than any symbol.
    let big = vec![0u8; MAX_SYMBOL_SIZE as usize + SYMBOL_ALIGN as usize];
    let mut buf = vec![0u8; DATA_OVERHEAD + big.len()];
    let n = write_data(&mut buf, SESSION, &Data { payload: &big, ..d }).unwrap();
    assert_eq!(data(&buf[..n]), Err(WireError::BadLength));
    // No payload at all.
    let mut p = good[..DATA_HEADER_LEN].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(data(&p), Err(WireError::Truncated));
    // Output buffer too small.
    assert_eq!(
        write_data(&mut [0u8; 100], SESSION, &d),
        Err(WireError::BufferTooSmall)
    );
}

#[test]
fn header_checks_reject_foreign_and_damaged_packets() {
    let good = announce_pkt(AnnounceFlags::NONE, None);
    assert!(parse_any(&good).is_ok());
    let mut p = good.clone();
    p[0] = b'X';
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadMagic);
    let mut p = good.clone();
    p[4] = 2;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadVersion);
    let mut p = good.clone();
    p[5] = 9;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadType);
    let mut p = good.clone();
    p[6] = 1;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadFlags);
    // Any single bit flipped without resealing is caught by the CRC.
    for byte in [8, 20, 50, ANNOUNCE_LEN - 1] {
        let mut p = good.clone();
        p[byte] ^= 0x10;
        assert_eq!(open(&p).unwrap_err(), WireError::BadCrc, "byte {byte}");
    }
    for len in 0..HEADER_LEN + CRC_LEN {
        assert_eq!(open(&good[..len]).unwrap_err(), WireError::Truncated);
    }
}

#[test]
fn announce_round_trips_and_rejects_bad_geometry() {
    let digest = [0xab; 32];
    let p = announce_pkt(AnnounceFlags::STARTED, Some(digest));
    let p = open(&p).unwrap();
    assert_eq!(p.ty(), PacketType::Announce);
    let a = p.announce().unwrap();
    assert_eq!(a.geometry, geometry());
    assert_eq!((a.seq, a.report_interval_ms), (99, 200));
    assert_eq!(a.flags, AnnounceFlags::STARTED);
    assert_eq!(a.digest, Some(digest));
    // Every combination of flags and digest comes back as it was written.
    let flag_sets = [
        AnnounceFlags::NONE,
        AnnounceFlags::STARTED,
        AnnounceFlags::CLOSING,
        AnnounceFlags::STARTED | AnnounceFlags::CLOSING,
    ];
    for flags in flag_sets {
        for digest in [None, Some(digest), Some([0; 32])] {
            let a = open(&announce_pkt(flags, digest))
                .unwrap()
                .announce()
                .unwrap();
            assert_eq!((a.flags, a.digest), (flags, digest));
        }
    }
    // The digest-known bit (1) follows the digest; started is 2, closing 4.
    let flags_word =
        |flags, digest| u32::from_le_bytes(announce_pkt(flags, digest)[36..40].try_into().unwrap());
    assert_eq!(flags_word(AnnounceFlags::NONE, None), 0);
    assert_eq!(flags_word(AnnounceFlags::NONE, Some([0; 32])), 1);
    assert_eq!(flags_word(AnnounceFlags::STARTED, None), 2);
    assert_eq!(flags_word(AnnounceFlags::CLOSING, Some(digest)), 5);
    assert!((AnnounceFlags::STARTED | AnnounceFlags::CLOSING).contains(AnnounceFlags::CLOSING));
    assert!(!AnnounceFlags::STARTED.contains(AnnounceFlags::CLOSING));

    let cases: &[(usize, &[u8], WireError)] = &[
        (
            24,
            &1000u32.to_le_bytes(),
            WireError::BadField("symbol_size"),
        ), // not a multiple of 64
        (24, &0u32.to_le_bytes(), WireError::BadField("symbol_size")),
        (
            24,
            &(1u32 << 20).to_le_bytes(),
            WireError::BadField("symbol_size"),
        ), // larger than a jumbo frame
        (28, &0u32.to_le_bytes(), WireError::BadField("k")),
        (28, &5000u32.to_le_bytes(), WireError::BadField("k")),
        (32, &7u32.to_le_bytes(), WireError::BadField("block_count")),
        (
            36,
            &0x80u32.to_le_bytes(),
            WireError::BadField("announce flags"),
        ),
        (
            44,
            &1u32.to_le_bytes(),
            WireError::BadField("report_interval_ms"),
        ),
        (
            44,
            &1_000_000u32.to_le_bytes(),
            WireError::BadField("report_interval_ms"),
        ),
        (80, &1u32.to_le_bytes(), WireError::BadField("reserved")),
    ];
    for (at, bytes, err) in cases {
        let mut p = announce_pkt(AnnounceFlags::NONE, Some(digest));
        p[*at..*at + bytes.len()].copy_from_slice(bytes);
        reseal(&mut p);
        assert_eq!(parse_any(&p), Err(*err), "offset {at}");
    }
    // A digest without the flag that says it is valid.
    let mut p = announce_pkt(AnnounceFlags::NONE, None);
    p[48] = 1;
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("digest")));
    // An image so large its block count overflows u32.
    let mut p = announce_pkt(AnnounceFlags::NONE, None);
    p[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("image_size")));
    // Wrong length.
    let mut p = announce_pkt(AnnounceFlags::NONE, None);
    p.insert(30, 0);
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadLength));
}

fn status_pkt(ranges: &[DeficitRange]) -> Vec<u8> {
    let head = StatusHead {
        client_id: 42,
        report_seq: 5,
        last_seq: 77,
        blocks_done: 3,
        loss_ppm: 10_000,
        phase: ClientPhase::Receiving,
    };
    let mut buf = vec![0u8; 1500];
    let n = write_status(&mut buf, SESSION, &head, ranges).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn status_round_trips_with_ranges() {
    let ranges: Vec<DeficitRange> = (0..MAX_RANGES as u32)
        .map(|i| DeficitRange {
            first: i * 10,
            len: 3,
            deficit: (i % 500 + 1) as u16,
        })
        .collect();
    let p = status_pkt(&ranges);
    assert!(p.len() <= 1472, "a full status fits an MTU-1500 datagram");
    let p = open(&p).unwrap();
    assert_eq!(p.ty(), PacketType::Status);
    let s = p.status().unwrap();
    assert_eq!(s.range_count(), MAX_RANGES);
    assert_eq!(s.head.client_id, 42);
    assert_eq!(
        (
            s.head.report_seq,
            s.head.last_seq,
            s.head.blocks_done,
            s.head.loss_ppm
        ),
        (5, 77, 3, 10_000)
    );
    assert_eq!(s.head.phase, ClientPhase::Receiving);
    assert_eq!(s.ranges().collect::<Vec<_>>(), ranges);
    assert!(
        write_status(
            &mut [0u8; 4096],
            SESSION,
            &s.head,
            &vec![
                DeficitRange {
                    first: 0,
                    len: 1,
                    deficit: 1
                };
                MAX_RANGES + 1
            ]
        )
        .is_err()
    );
}

#[test]
fn status_malformed_fields_are_rejected() {
    let r = |first, len, deficit| DeficitRange {
        first,
        len,
        deficit,
    };
    let bad_ranges: &[(&[DeficitRange], &str)] = &[
        (&[r(5, 0, 1)], "range len"),
        (&[r(5, 1, 0)], "range deficit"),
        (&[r(5, 1, 5000)], "range deficit"),
        (&[r(10, 5, 1), r(12, 1, 1)], "range order"),
        (&[r(10, 1, 1), r(3, 1, 1)], "range order"),
        (&[r(u32::MAX, 2, 1)], "range end"),
    ];
    for (ranges, field) in bad_ranges {
        assert_eq!(
            parse_any(&status_pkt(ranges)),
            Err(WireError::BadField(field)),
            "{ranges:?}"
        );
    }
    let good = status_pkt(&[r(1, 1, 1)]);
    let mut p = good.clone();
    p[42] = 7; // phase
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("phase")));
    let mut p = good.clone();
    p[36..40].copy_from_slice(&2_000_000u32.to_le_bytes()); // loss above 100%
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("loss_ppm")));
    let mut p = good.clone();
    p[40..42].copy_from_slice(&2u16.to_le_bytes()); // claims two ranges, carries one
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadLength));
    let mut p = good.clone();
    p[40..42].copy_from_slice(&0xFFFFu16.to_le_bytes()); // absurd count: never trusted as a length
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("range_count")));
    let mut p = good.clone();
    p[44] = 1;
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("reserved")));
    let mut p = good[..40].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::Truncated));
}

#[test]
fn result_and_ack_round_trip_and_reject_inconsistent_fields() {
    let res = ResultReport {
        client_id: 9,
        outcome: ResultOutcome::Failed(FailReason::TargetTooSmall),
        bytes_written: 0,
        digest: [3; 32],
    };
    let mut buf = vec![0u8; RESULT_LEN];
    let n = write_result(&mut buf, SESSION, &res).unwrap();
    assert_eq!(n, RESULT_LEN);
    assert_eq!(open(&buf).unwrap().result().unwrap(), res);
    // Every failure reason keeps its wire code and comes back as it was written.
    let reasons = [
        (FailReason::DigestMismatch, 1),
        (FailReason::IoError, 2),
        (FailReason::TargetTooSmall, 3),
        (FailReason::ImageTooLarge, 4),
        (FailReason::ServerGone, 5),
        (FailReason::Timeout, 6),
        (FailReason::Interrupted, 7),
    ];
    for (reason, code) in reasons {
        let failed = ResultReport {
            outcome: ResultOutcome::Failed(reason),
            ..res
        };
        write_result(&mut buf, SESSION, &failed).unwrap();
        assert_eq!((buf[24], buf[25]), (0, code));
        assert_eq!(open(&buf).unwrap().result().unwrap(), failed);
        assert_eq!(FailReason::from_u8(code), Some(reason));
    }
    assert_eq!(FailReason::from_u8(0), None);
    let ok = ResultReport {
        outcome: ResultOutcome::Verified,
        bytes_written: 1 << 40,
        ..res
    };
    write_result(&mut buf, SESSION, &ok).unwrap();
    assert_eq!((buf[24], buf[25]), (1, 0));
    assert_eq!(open(&buf).unwrap().result().unwrap(), ok);

    let cases: &[(usize, u8, &str)] = &[
        (24, 2, "verified"),
        (25, 99, "reason"),
        (25, 1, "reason"),
        (26, 1, "reserved"),
    ];
    for &(at, v, field) in cases {
        let mut p = buf.clone();
        p[at] = v;
        reseal(&mut p);
        assert_eq!(
            parse_any(&p),
            Err(WireError::BadField(field)),
            "offset {at}"
        );
    }
    // Failed but with no reason is inconsistent too.
    let mut p = buf.clone();
    p[24] = 0;
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("reason")));

    let mut ack = vec![0u8; RESULT_ACK_LEN];
    assert_eq!(
        write_result_ack(&mut ack, SESSION, 9).unwrap(),
        RESULT_ACK_LEN
    );
    assert_eq!(open(&ack).unwrap().result_ack().unwrap(), 9);
    let mut p = ack.clone();
    p.insert(20, 0);
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadLength));
}

#[test]
fn geometry_arithmetic() {
    let g = geometry();
    let bb = 1408 * 512;
    assert_eq!(g.block_bytes(), bb as u64);
    assert_eq!(
        g.block_count(),
        (10 * 1024 * 1024 + 17usize).div_ceil(bb) as u32
    );
    let last = g.block_count() - 1;
    assert_eq!(
        g.block_len(last),
        10 * 1024 * 1024 + 17 - last as usize * bb
    );
    assert_eq!(g.block_k(last), (g.block_len(last) as u32).div_ceil(1408));
    assert_eq!(g.block_len(last + 1), 0);
    assert_eq!(
        g.source_symbols(),
        (10u64 * 1024 * 1024 + 17).div_ceil(1408)
    );
    // 16 TiB at the default geometry fits the block index.
    assert!(Geometry::new(16 << 40, 1408, 512).is_ok());
}

/// Each table lists its packet's fields in order, without gaps or overlaps, from the end of
/// the common header to the packet's length (or to where its variable part starts).
#[test]
fn field_tables_tile_each_packet() {
    use bb_proto::wire::field::{self, Field};
    fn tiles(fields: &[Field], start: usize, end: usize) {
        let mut at = start;
        for f in fields {
            assert_eq!(f.start, at, "{fields:?}");
            assert!(f.end > f.start, "{fields:?}");
            at = f.end;
        }
        assert_eq!(at, end, "{fields:?}");
    }
    use field::{
        announce as a, data as d, header as h, result as r, result_ack as ra, status as s,
    };
    tiles(
        &[h::MAGIC, h::VERSION, h::TYPE, h::FLAGS, h::SESSION],
        0,
        HEADER_LEN,
    );
    tiles(
        &[d::BLOCK, d::ESI, d::RESERVED, d::SEQ, d::BLOCK_CHECK],
        HEADER_LEN,
        d::PAYLOAD.start,
    );
    tiles(
        &[
            a::IMAGE_SIZE,
            a::SYMBOL_SIZE,
            a::K,
            a::BLOCK_COUNT,
            a::FLAGS,
            a::SEQ,
            a::REPORT_INTERVAL_MS,
            a::DIGEST,
            a::RESERVED,
            a::CRC,
        ],
        HEADER_LEN,
        ANNOUNCE_LEN,
    );
    tiles(
        &[
            s::CLIENT_ID,
            s::REPORT_SEQ,
            s::LAST_SEQ,
            s::BLOCKS_DONE,
            s::LOSS_PPM,
            s::RANGE_COUNT,
            s::PHASE,
            s::RESERVED,
        ],
        HEADER_LEN,
        s::RANGES.start,
    );
    tiles(
        &[s::range::FIRST, s::range::BLOCKS, s::range::DEFICIT],
        0,
        RANGE_LEN,
    );
    tiles(
        &[
            r::CLIENT_ID,
            r::VERIFIED,
            r::REASON,
            r::RESERVED,
            r::BYTES_WRITTEN,
            r::DIGEST,
            r::CRC,
        ],
        HEADER_LEN,
        RESULT_LEN,
    );
    tiles(&[ra::CLIENT_ID, ra::CRC], HEADER_LEN, RESULT_ACK_LEN);
    // The sizes docs/PROTOCOL.md states.
    assert_eq!(
        (HEADER_LEN, DATA_HEADER_LEN, ANNOUNCE_LEN, STATUS_FIXED_LEN),
        (16, 32, 88, 48)
    );
    assert_eq!((RANGE_LEN, RESULT_LEN, RESULT_ACK_LEN), (8, 72, 28));
}

#[test]
fn constants_keep_their_values() {
    assert_eq!(FRAMING_BYTES, 14 + 20 + 8);
    assert_eq!(MAX_DATAGRAM, 8972);
    assert_eq!(MAX_RANGES, 177);
    assert_eq!(MAX_SYMBOL_SIZE, 8896);
    assert_eq!((MAX_K, SYMBOL_ALIGN), (4096, 64));
    assert_eq!(
        (bb_proto::fec::MAX_K, bb_proto::fec::SYMBOL_ALIGN),
        (4096, 64)
    );
    assert_eq!((DEFAULT_DATA_PORT, DEFAULT_CONTROL_PORT), (7855, 7854));
}

/// A packet read as a type it is not is refused, and every writer refuses a short buffer.
#[test]
fn wrong_type_and_short_buffers_are_refused() {
    let p = announce_pkt(AnnounceFlags::NONE, None);
    let p = open(&p).unwrap();
    assert_eq!(p.data().unwrap_err(), WireError::BadType);
    assert_eq!(p.status().unwrap_err(), WireError::BadType);
    assert_eq!(p.result().unwrap_err(), WireError::BadType);
    assert_eq!(p.result_ack().unwrap_err(), WireError::BadType);
    let mut ack = [0u8; RESULT_ACK_LEN];
    write_result_ack(&mut ack, SESSION, 1).unwrap();
    assert_eq!(
        open(&ack).unwrap().announce().unwrap_err(),
        WireError::BadType
    );

    let a = open(&announce_pkt(AnnounceFlags::NONE, None))
        .unwrap()
        .announce()
        .unwrap();
    let short = &mut [0u8; 16];
    assert_eq!(
        write_announce(short, SESSION, &a),
        Err(WireError::BufferTooSmall)
    );
    assert_eq!(
        write_announce(&mut [0u8; ANNOUNCE_LEN - 1], SESSION, &a),
        Err(WireError::BufferTooSmall)
    );
    let res = ResultReport {
        client_id: 1,
        outcome: ResultOutcome::Verified,
        bytes_written: 0,
        digest: [0; 32],
    };
    assert_eq!(
        write_result(&mut [0u8; RESULT_LEN - 1], SESSION, &res),
        Err(WireError::BufferTooSmall)
    );
    assert_eq!(
        write_result_ack(&mut [0u8; RESULT_ACK_LEN - 1], SESSION, 1),
        Err(WireError::BufferTooSmall)
    );
    let head = StatusHead {
        client_id: 1,
        report_seq: 0,
        last_seq: 0,
        blocks_done: 0,
        loss_ppm: 0,
        phase: ClientPhase::Receiving,
    };
    let one = [DeficitRange {
        first: 0,
        len: 1,
        deficit: 1,
    }];
    assert_eq!(
        write_status(&mut [0u8; STATUS_FIXED_LEN + CRC_LEN], SESSION, &head, &one),
        Err(WireError::BufferTooSmall)
    );
}

/// Arbitrary bytes never panic any parser (a cheap in-tree fuzz; cargo fuzz goes further).
#[test]
fn random_bytes_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let seeds = [
        announce_pkt(AnnounceFlags::NONE, Some([1; 32])),
        status_pkt(&[DeficitRange {
            first: 1,
            len: 2,
            deficit: 3,
        }]),
    ];
    for i in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut p = if i % 2 == 0 {
            seeds[(i / 2) % 2].clone()
        } else {
            vec![0u8; (x % 200) as usize]
        };
        for _ in 0..(x % 4) {
            if p.is_empty() {
                break;
            }
            let at = (x >> 8) as usize % p.len();
            p[at] = (x >> 20) as u8;
            x = x.rotate_left(7);
        }
        if x.is_multiple_of(3) && p.len() >= CRC_LEN {
            reseal(&mut p);
        }
        let _ = parse_any(&p);
    }
}

/// Golden bytes: each packet type exactly as the protocol-1 writer produced it before the
/// field tables existed. Any change here is a wire-format change, not a refactoring.
mod golden {
    use super::*;

    const DATA: &str = "42424e440101000088776655443322110d0c0b0a34120000efbeadde0403020101080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccd3dae1e8eff6fd040b121920272e353c434a51585f666d747b828990979ea5acb3bad7037510";
    const ANNOUNCE_DIGEST: &str = "42424e440102000088776655443322111100a0000000000080050000000200000f0000000300000008070605fa000000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf00000000d6c50976";
    const ANNOUNCE_CLOSING_NO_DIGEST: &str = "42424e440102000088776655443322111100a0000000000080050000000200000f000000040000000300000060ea00000000000000000000000000000000000000000000000000000000000000000000000000009fb21b5b";
    const STATUS: &str = "42424e44010300008877665544332211080706050403020122221111444433334d0000003930000002000100000000000500000002000300000000010302050495e6ca8f";
    const RESULT_VERIFIED: &str = "42424e440104000088776655443322110807060504030201010000000605040302010000a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfb05f7df4";
    const RESULT_FAILED: &str = "42424e4401040000887766554433221109000000000000000007000000100000000000000000000000000000000000000000000000000000000000000000000000000000a1de0e9e";
    const RESULT_ACK: &str = "42424e44010500008877665544332211080706050403020143676a68";

    const CLIENT: u64 = 0x0102_0304_0506_0708;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn digest() -> [u8; 32] {
        core::array::from_fn(|i| (0xa0 + i) as u8)
    }

    fn packet(pkt: &[u8], ty: PacketType) -> Packet<'_> {
        let p = open(pkt).unwrap();
        assert_eq!(
            p.header(),
            Header {
                ty,
                session: SESSION
            }
        );
        p
    }

    #[test]
    fn data_bytes_are_pinned() {
        let payload: Vec<u8> = (0..64u32).map(|i| (i * 7 + 1) as u8).collect();
        let d = Data {
            block: 0x0a0b_0c0d,
            esi: 0x1234,
            seq: 0xdead_beef,
            block_check: 0x0102_0304,
            payload: &payload,
        };
        let mut buf = vec![0u8; 512];
        let n = write_data(&mut buf, SESSION, &d).unwrap();
        assert_eq!(hex(&buf[..n]), DATA);
        let pkt = unhex(DATA);
        assert_eq!(packet(&pkt, PacketType::Data).data().unwrap(), d);
    }

    #[test]
    fn announce_bytes_are_pinned() {
        let g = geometry();
        let mut buf = [0u8; ANNOUNCE_LEN];
        let with_digest = Announce {
            geometry: g,
            flags: AnnounceFlags::STARTED,
            seq: 0x0506_0708,
            report_interval_ms: 250,
            digest: Some(digest()),
        };
        write_announce(&mut buf, SESSION, &with_digest).unwrap();
        assert_eq!(hex(&buf), ANNOUNCE_DIGEST);
        let pkt = unhex(ANNOUNCE_DIGEST);
        assert_eq!(
            packet(&pkt, PacketType::Announce).announce().unwrap(),
            with_digest
        );

        let closing = Announce {
            geometry: g,
            flags: AnnounceFlags::CLOSING,
            seq: 3,
            report_interval_ms: 60_000,
            digest: None,
        };
        write_announce(&mut buf, SESSION, &closing).unwrap();
        assert_eq!(hex(&buf), ANNOUNCE_CLOSING_NO_DIGEST);
        let pkt = unhex(ANNOUNCE_CLOSING_NO_DIGEST);
        assert_eq!(
            packet(&pkt, PacketType::Announce).announce().unwrap(),
            closing
        );
    }

    #[test]
    fn status_bytes_are_pinned() {
        let head = StatusHead {
            client_id: CLIENT,
            report_seq: 0x1111_2222,
            last_seq: 0x3333_4444,
            blocks_done: 77,
            loss_ppm: 12_345,
            phase: ClientPhase::Finishing,
        };
        let ranges = [
            DeficitRange {
                first: 5,
                len: 2,
                deficit: 3,
            },
            DeficitRange {
                first: 0x0100_0000,
                len: 0x0203,
                deficit: 0x0405,
            },
        ];
        let mut buf = [0u8; 128];
        let n = write_status(&mut buf, SESSION, &head, &ranges).unwrap();
        assert_eq!(hex(&buf[..n]), STATUS);
        let pkt = unhex(STATUS);
        let s = packet(&pkt, PacketType::Status).status().unwrap();
        assert_eq!(s.head, head);
        assert_eq!(s.ranges().collect::<Vec<_>>(), ranges);
    }

    #[test]
    fn result_bytes_are_pinned() {
        let mut buf = [0u8; RESULT_LEN];
        let verified = ResultReport {
            client_id: CLIENT,
            outcome: ResultOutcome::Verified,
            bytes_written: 0x0102_0304_0506,
            digest: digest(),
        };
        write_result(&mut buf, SESSION, &verified).unwrap();
        assert_eq!(hex(&buf), RESULT_VERIFIED);
        let pkt = unhex(RESULT_VERIFIED);
        assert_eq!(packet(&pkt, PacketType::Result).result().unwrap(), verified);

        let failed = ResultReport {
            client_id: 9,
            outcome: ResultOutcome::Failed(FailReason::Interrupted),
            bytes_written: 4096,
            digest: [0; 32],
        };
        write_result(&mut buf, SESSION, &failed).unwrap();
        assert_eq!(hex(&buf), RESULT_FAILED);
        let pkt = unhex(RESULT_FAILED);
        assert_eq!(packet(&pkt, PacketType::Result).result().unwrap(), failed);
    }

    #[test]
    fn result_ack_bytes_are_pinned() {
        let mut buf = [0u8; RESULT_ACK_LEN];
        write_result_ack(&mut buf, SESSION, CLIENT).unwrap();
        assert_eq!(hex(&buf), RESULT_ACK);
        let pkt = unhex(RESULT_ACK);
        assert_eq!(
            packet(&pkt, PacketType::ResultAck).result_ack().unwrap(),
            CLIENT
        );
    }
}
