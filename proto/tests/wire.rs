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
        PacketType::ZeroMap => p.zero_map().map(|_| ()),
    }
}

fn head() -> DataHead {
    DataHead {
        block: 123_456,
        esi: 700,
        encoding: Encoding::Zstd,
        seq: 0xdead_beef,
        block_check: 0x0102_0304,
        coded_len: 5000,
    }
}

fn data_pkt(head: DataHead, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; DATA_OVERHEAD + payload.len()];
    let n = write_data(&mut buf, SESSION, &Data { head, payload }).unwrap();
    assert_eq!(n, buf.len());
    buf
}

#[test]
fn data_round_trips() {
    let payload: Vec<u8> = (0..1408).map(|i| (i * 31) as u8).collect();
    let d = Data {
        head: head(),
        payload: &payload,
    };
    let buf = data_pkt(d.head, &payload);
    assert_eq!(buf.len(), DATA_OVERHEAD + 1408);
    let p = open(&buf).unwrap();
    assert_eq!(
        p.header(),
        Header {
            ty: PacketType::Data,
            session: SESSION
        }
    );
    assert_eq!((p.ty(), p.session()), (PacketType::Data, SESSION));
    assert_eq!(p.as_bytes(), &buf[..]);
    assert_eq!(p.data().unwrap(), d);
    // Each header field alone at its extremes comes back as written, so no two fields share
    // bytes and none is truncated.
    let h = head();
    let variants = [
        DataHead { block: 0, ..h },
        DataHead {
            block: u32::MAX,
            ..h
        },
        DataHead { esi: 0, ..h },
        DataHead { esi: MAX_ESI, ..h },
        DataHead {
            encoding: Encoding::Raw,
            ..h
        },
        DataHead { seq: 0, ..h },
        DataHead { seq: u32::MAX, ..h },
        DataHead {
            block_check: 0,
            ..h
        },
        DataHead {
            block_check: u32::MAX,
            ..h
        },
        DataHead { coded_len: 1, ..h },
        DataHead {
            coded_len: u32::MAX,
            ..h
        },
    ];
    for v in variants {
        let pkt = data_pkt(v, &payload[..64]);
        assert_eq!(open(&pkt).unwrap().data().unwrap().head, v, "{v:?}");
    }
    // The header split the sender uses (header, symbol in place, seal) gives the same bytes.
    let mut split = vec![0u8; DATA_OVERHEAD + payload.len()];
    write_data_header(&mut split, SESSION, &d.head);
    split[DATA_HEADER_LEN..DATA_HEADER_LEN + payload.len()].copy_from_slice(&payload);
    assert_eq!(seal_data(&mut split, payload.len()), buf.len());
    assert_eq!(split, buf);
    assert_eq!(Encoding::from_u8(0), Some(Encoding::Raw));
    assert_eq!(Encoding::from_u8(1), Some(Encoding::Zstd));
    assert_eq!(Encoding::from_u8(2), None);
}

#[test]
fn data_malformed_fields_are_rejected() {
    let payload = vec![7u8; 128];
    let d = Data {
        head: DataHead {
            block: 1,
            esi: 2,
            encoding: Encoding::Raw,
            seq: 3,
            block_check: 4,
            coded_len: 100,
        },
        payload: &payload,
    };
    let good = data_pkt(d.head, &payload);
    let n = good.len();
    let data = |p: &[u8]| open(p).unwrap().data().map(|_| ());
    assert_eq!(data(&good), Ok(()));
    let cases: &[(usize, &[u8], &str)] = &[
        (20, &0xFFFFu16.to_le_bytes(), "esi"), // 0xFFFF means "no symbol"
        (22, &[2], "encoding"),
        (22, &[0xFF], "encoding"),
        (23, &[1], "reserved"),
        (23, &[0x80], "reserved"),
        (32, &0u32.to_le_bytes(), "coded_len"),
    ];
    for &(at, bytes, field) in cases {
        let mut p = good.clone();
        p[at..at + bytes.len()].copy_from_slice(bytes);
        reseal(&mut p);
        assert_eq!(data(&p), Err(WireError::BadField(field)), "offset {at}");
    }
    // A payload that is not a whole number of 64-byte units.
    let mut p = good[..n - CRC_LEN - 10].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(data(&p), Err(WireError::BadLength));
    // A payload larger than any symbol.
    let big = vec![0u8; MAX_SYMBOL_SIZE as usize + SYMBOL_ALIGN as usize];
    assert_eq!(data(&data_pkt(d.head, &big)), Err(WireError::BadLength));
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
    for version in [0, 1, VERSION - 1, VERSION + 1, 0xFF] {
        let mut p = good.clone();
        p[4] = version;
        reseal(&mut p);
        assert_eq!(open(&p).unwrap_err(), WireError::BadVersion, "v{version}");
    }
    let mut p = good.clone();
    p[5] = 9;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadType);
    let mut p = good.clone();
    p[6] = 2;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::BadFlags);
    // Flag bit 0 announces a tag: a keyless end drops the packet.
    let mut p = good.clone();
    p[6] = 1;
    reseal(&mut p);
    assert_eq!(open(&p).unwrap_err(), WireError::NeedsKey);
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
            &4u32.to_le_bytes(),
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
        resumed: false,
        interval_received: 900,
        last_seq_age_us: 2_500,
    };
    let mut buf = vec![0u8; 1500];
    let n = write_status(&mut buf, SESSION, &head, ranges).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn status_resumed_flag_round_trips_and_unknown_flags_are_dropped() {
    let head = StatusHead {
        client_id: 7,
        report_seq: 1,
        last_seq: 2,
        blocks_done: 3,
        loss_ppm: 0,
        phase: ClientPhase::Receiving,
        resumed: true,
        interval_received: 0,
        last_seq_age_us: 0,
    };
    let mut buf = vec![0u8; 1500];
    let n = write_status(&mut buf, SESSION, &head, &[]).unwrap();
    buf.truncate(n);
    assert_eq!(buf[43], bb_proto::wire::STATUS_RESUMED);
    assert!(open(&buf).unwrap().status().unwrap().head.resumed);
    assert!(
        !open(&status_pkt(&[]))
            .unwrap()
            .status()
            .unwrap()
            .head
            .resumed
    );
    for bit in 1..8 {
        let mut p = buf.clone();
        p[43] |= 1 << bit;
        reseal(&mut p);
        assert_eq!(
            open(&p).unwrap().status(),
            Err(WireError::BadField("status flags")),
            "flag bit {bit}"
        );
    }
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
    p[43] = 2; // a flag not defined
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::BadField("status flags")));
    let mut p = good[..40].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(parse_any(&p), Err(WireError::Truncated));
}

fn zr(first: u32, blocks: u32) -> ZeroRange {
    ZeroRange { first, blocks }
}

fn zero_map_pkt(span_first: u32, span_end: u32, ranges: &[ZeroRange]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let n = write_zero_map(&mut buf, SESSION, span_first, span_end, ranges).unwrap();
    assert_eq!(n, 28 + ranges.len() * ZERO_RANGE_LEN + CRC_LEN);
    buf.truncate(n);
    buf
}

#[test]
fn zero_map_round_trips() {
    let full: Vec<ZeroRange> = (0..MAX_ZERO_RANGES as u32)
        .map(|i| zr(1000 + i * 10, i % 9 + 1))
        .collect();
    let adjacent = [zr(10, 5), zr(15, 1), zr(16, 4)];
    let cases: &[(u32, u32, &[ZeroRange])] = &[
        (0, 0, &[]),
        (7, 7, &[]),
        (0, 100, &[]),
        (0, 100, &[zr(0, 100)]),
        (0, 100, &[zr(3, 1), zr(50, 7), zr(99, 1)]),
        (10, 20, &adjacent),
        (1000, 3000, &full),
        (
            u32::MAX - 5,
            u32::MAX,
            &[zr(u32::MAX - 5, 2), zr(u32::MAX - 1, 1)],
        ),
    ];
    for &(span_first, span_end, ranges) in cases {
        let pkt = zero_map_pkt(span_first, span_end, ranges);
        assert!(
            pkt.len() <= 1472,
            "a full zero map fits an MTU-1500 datagram"
        );
        let p = open(&pkt).unwrap();
        assert_eq!(
            p.header(),
            Header {
                ty: PacketType::ZeroMap,
                session: SESSION
            }
        );
        let m = p.zero_map().unwrap();
        assert_eq!((m.span_first, m.span_end), (span_first, span_end));
        assert_eq!(
            m.ranges().collect::<Vec<_>>(),
            ranges,
            "{span_first}..{span_end}"
        );
    }
    assert_eq!(zr(u32::MAX, u32::MAX).end(), 2 * u32::MAX as u64);
    // The writer refuses what no packet can carry, and a short buffer.
    let over = vec![zr(0, 1); MAX_ZERO_RANGES + 1];
    assert_eq!(
        write_zero_map(&mut [0u8; 4096], SESSION, 0, 10, &over),
        Err(WireError::BadField("range_count"))
    );
    let one = [zr(0, 1)];
    assert_eq!(
        write_zero_map(
            &mut [0u8; 28 + ZERO_RANGE_LEN + CRC_LEN - 1],
            SESSION,
            0,
            1,
            &one
        ),
        Err(WireError::BufferTooSmall)
    );
}

#[test]
fn zero_map_malformed_fields_are_rejected() {
    let zero_map = |p: &[u8]| open(p).unwrap().zero_map().map(|_| ());
    // The writer copies ranges as given, so it builds each malformed map.
    let bad: &[(u32, u32, &[ZeroRange], &str)] = &[
        (10, 5, &[], "span"),
        (10, 20, &[zr(12, 0)], "range blocks"),
        (10, 20, &[zr(12, 2), zr(15, 0)], "range blocks"),
        (10, 20, &[zr(15, 1), zr(12, 1)], "range order"), // out of order
        (10, 20, &[zr(12, 3), zr(14, 1)], "range order"), // overlapping
        (10, 20, &[zr(12, 3), zr(12, 3)], "range order"), // repeated
        (10, 20, &[zr(9, 2)], "range order"),             // starts before the span
        (10, 20, &[zr(19, 2)], "range order"),            // ends after the span
        (10, 20, &[zr(25, 1)], "range order"),            // wholly after the span
        (10, 20, &[zr(12, u32::MAX)], "range order"),     // end past u32: no overflow
        (u32::MAX - 1, u32::MAX, &[zr(u32::MAX, 1)], "range order"),
    ];
    for &(span_first, span_end, ranges, field) in bad {
        assert_eq!(
            zero_map(&zero_map_pkt(span_first, span_end, ranges)),
            Err(WireError::BadField(field)),
            "{span_first}..{span_end} {ranges:?}"
        );
    }
    let good = zero_map_pkt(10, 20, &[zr(11, 2), zr(15, 1)]);
    assert_eq!(zero_map(&good), Ok(()));
    // A count that does not match the length, either way.
    for count in [0u16, 1, 3] {
        let mut p = good.clone();
        p[24..26].copy_from_slice(&count.to_le_bytes());
        reseal(&mut p);
        assert_eq!(zero_map(&p), Err(WireError::BadLength), "count {count}");
    }
    let mut p = good.clone();
    p.insert(30, 0);
    reseal(&mut p);
    assert_eq!(zero_map(&p), Err(WireError::BadLength));
    // A count over MAX_ZERO_RANGES is refused before it is trusted as a length: with its
    // ranges present, and absurdly large.
    let ranges: Vec<ZeroRange> = (0..MAX_ZERO_RANGES as u32 + 1)
        .map(|i| zr(2 * i, 1))
        .collect();
    let mut p = zero_map_pkt(0, 10_000, &ranges[..MAX_ZERO_RANGES]);
    p.truncate(p.len() - CRC_LEN);
    p.extend_from_slice(&ranges[MAX_ZERO_RANGES].first.to_le_bytes());
    p.extend_from_slice(&ranges[MAX_ZERO_RANGES].blocks.to_le_bytes());
    p.extend_from_slice(&[0; CRC_LEN]);
    p[24..26].copy_from_slice(&(MAX_ZERO_RANGES as u16 + 1).to_le_bytes());
    reseal(&mut p);
    assert_eq!(zero_map(&p), Err(WireError::BadField("range_count")));
    let mut p = good.clone();
    p[24..26].copy_from_slice(&0xFFFFu16.to_le_bytes());
    reseal(&mut p);
    assert_eq!(zero_map(&p), Err(WireError::BadField("range_count")));
    // Reserved bytes must be zero.
    for at in [26, 27] {
        let mut p = good.clone();
        p[at] = 1;
        reseal(&mut p);
        assert_eq!(
            zero_map(&p),
            Err(WireError::BadField("reserved")),
            "offset {at}"
        );
    }
    // Shorter than the fixed part.
    let mut p = good[..24].to_vec();
    p.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut p);
    assert_eq!(zero_map(&p), Err(WireError::Truncated));
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
        (FailReason::DigestConflict, 8),
        (FailReason::NoTarget, 9),
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
        zero_map as z,
    };
    tiles(
        &[h::MAGIC, h::VERSION, h::TYPE, h::FLAGS, h::SESSION],
        0,
        HEADER_LEN,
    );
    tiles(
        &[
            d::BLOCK,
            d::ESI,
            d::ENCODING,
            d::RESERVED,
            d::SEQ,
            d::BLOCK_CHECK,
            d::CODED_LEN,
        ],
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
            s::FLAGS,
            s::INTERVAL_RECEIVED,
            s::LAST_SEQ_AGE,
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
    tiles(
        &[z::SPAN_FIRST, z::SPAN_END, z::RANGE_COUNT, z::RESERVED],
        HEADER_LEN,
        z::RANGES.start,
    );
    tiles(&[z::range::FIRST, z::range::BLOCKS], 0, ZERO_RANGE_LEN);
    // The sizes docs/PROTOCOL.md states.
    assert_eq!(
        (HEADER_LEN, DATA_HEADER_LEN, ANNOUNCE_LEN, STATUS_FIXED_LEN),
        (16, 36, 88, 52)
    );
    assert_eq!((RANGE_LEN, RESULT_LEN, RESULT_ACK_LEN), (8, 72, 28));
    assert_eq!((z::FIXED_LEN, ZERO_RANGE_LEN), (28, 8));
}

#[test]
fn constants_keep_their_values() {
    assert_eq!(FRAMING_BYTES, 14 + 20 + 8);
    assert_eq!(MAX_DATAGRAM, 8972);
    // Room for the 24-byte trailer (counter and tag) of a keyed session in a 1472-byte
    // datagram.
    assert_eq!(MAX_RANGES, 174);
    assert_eq!(MAX_ZERO_RANGES, 177);
    assert_eq!(VERSION, 5);
    assert_eq!(DATA_OVERHEAD, 40);
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
    assert_eq!(p.zero_map().unwrap_err(), WireError::BadType);
    let zm = zero_map_pkt(0, 4, &[zr(1, 2)]);
    let zm = open(&zm).unwrap();
    assert_eq!(zm.data().unwrap_err(), WireError::BadType);
    assert_eq!(zm.announce().unwrap_err(), WireError::BadType);
    assert_eq!(zm.status().unwrap_err(), WireError::BadType);
    assert_eq!(zm.result().unwrap_err(), WireError::BadType);
    assert_eq!(zm.result_ack().unwrap_err(), WireError::BadType);
    // A data packet whose type byte says zero map (CRC made valid) is read as a zero map and
    // refused (its sequence number read as a range count), never taken for one.
    let mut d = data_pkt(head(), &[0; 64]);
    d[5] = PacketType::ZeroMap as u8;
    reseal(&mut d);
    assert_eq!(parse_any(&d), Err(WireError::BadField("range_count")));
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
        resumed: false,
        interval_received: 0,
        last_seq_age_us: 0,
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
        data_pkt(head(), &[9; 64]),
        zero_map_pkt(5, 50, &[zr(6, 2), zr(20, 10)]),
    ];
    for i in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut p = if i % 2 == 0 {
            seeds[(i / 2) % seeds.len()].clone()
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

/// Golden bytes: each v2 packet is put together here field by field, in the order and at the
/// offsets docs/PROTOCOL.md and `wire::field` give, without the writer; the writer must
/// produce exactly these bytes and the parser must read them back. Any change here is a
/// wire-format change.
mod golden {
    use super::*;

    const CLIENT: u64 = 0x0102_0304_0506_0708;

    /// A data packet as protocol version 1 wrote it (32-byte header, no encoding or coded
    /// length): version 2 refuses it.
    const V1_DATA: &str = "42424e440101000088776655443322110d0c0b0a34120000efbeadde0403020101080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccd3dae1e8eff6fd040b121920272e353c434a51585f666d747b828990979ea5acb3bad7037510";
    /// A version 1 announce.
    const V1_ANNOUNCE: &str = "42424e440102000088776655443322111100a0000000000080050000000200000f000000040000000300000060ea00000000000000000000000000000000000000000000000000000000000000000000000000009fb21b5b";

    /// Little-endian bytes appended in field order; `at` asserts the offset reached, so each
    /// field visibly lands where the layout says.
    struct Bytes(Vec<u8>);

    impl Bytes {
        /// The common header: "BBND", version 5, `ty`, no flags, the session.
        fn header(ty: u8) -> Self {
            let b = Self(Vec::new())
                .raw(b"BBND")
                .u8(5)
                .u8(ty)
                .u16(0)
                .u64(SESSION);
            b.at(16)
        }
        fn raw(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
        fn u8(self, v: u8) -> Self {
            self.raw(&[v])
        }
        fn u16(self, v: u16) -> Self {
            self.raw(&v.to_le_bytes())
        }
        fn u32(self, v: u32) -> Self {
            self.raw(&v.to_le_bytes())
        }
        fn u64(self, v: u64) -> Self {
            self.raw(&v.to_le_bytes())
        }
        fn at(self, offset: usize) -> Self {
            assert_eq!(self.0.len(), offset, "field offset");
            self
        }
        /// Appends the CRC32 (IEEE) of everything so far.
        fn seal(self) -> Vec<u8> {
            let c = crc32(&self.0);
            self.u32(c).0
        }
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

    /// The trailer is the standard CRC-32 (the zlib/Ethernet one): its check value.
    #[test]
    fn crc_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn v1_packets_are_refused() {
        for v1 in [V1_DATA, V1_ANNOUNCE] {
            let pkt = unhex(v1);
            assert_eq!(pkt[4], 1);
            assert_eq!(open(&pkt).unwrap_err(), WireError::BadVersion);
        }
    }

    #[test]
    fn data_bytes_are_pinned() {
        let payload: Vec<u8> = (0..64u32).map(|i| (i * 7 + 1) as u8).collect();
        for (encoding, code) in [(Encoding::Raw, 0), (Encoding::Zstd, 1)] {
            let head = DataHead {
                block: 0x0a0b_0c0d,
                esi: 0x1234,
                encoding,
                seq: 0xdead_beef,
                block_check: 0x0102_0304,
                coded_len: 0x0000_3039,
            };
            let expected = Bytes::header(1)
                .u32(0x0a0b_0c0d) // block
                .at(20)
                .u16(0x1234) // esi
                .at(22)
                .u8(code) // encoding
                .u8(0) // reserved
                .at(24)
                .u32(0xdead_beef) // seq
                .at(28)
                .u32(0x0102_0304) // block check
                .at(32)
                .u32(0x3039) // coded length
                .at(36)
                .raw(&payload)
                .seal();
            let d = Data {
                head,
                payload: &payload,
            };
            let mut buf = vec![0u8; 512];
            let n = write_data(&mut buf, SESSION, &d).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{encoding:?}");
            assert_eq!(packet(&expected, PacketType::Data).data().unwrap(), d);
        }
    }

    #[test]
    fn zero_map_bytes_are_pinned() {
        let ranges = [
            ZeroRange {
                first: 0x0100_0002,
                blocks: 3,
            },
            ZeroRange {
                first: 0x0100_0010,
                blocks: 0x0203,
            },
        ];
        let expected = Bytes::header(6)
            .u32(0x0100_0000) // span first
            .at(20)
            .u32(0x0100_0400) // span end
            .at(24)
            .u16(2) // range count
            .at(26)
            .u16(0) // reserved
            .at(28)
            .u32(0x0100_0002) // range 0: first
            .u32(3) // range 0: blocks
            .at(36)
            .u32(0x0100_0010) // range 1: first
            .u32(0x0203) // range 1: blocks
            .at(44)
            .seal();
        let mut buf = [0u8; 128];
        let n = write_zero_map(&mut buf, SESSION, 0x0100_0000, 0x0100_0400, &ranges).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        let m = packet(&expected, PacketType::ZeroMap).zero_map().unwrap();
        assert_eq!((m.span_first, m.span_end), (0x0100_0000, 0x0100_0400));
        assert_eq!(m.ranges().collect::<Vec<_>>(), ranges);

        let empty = Bytes::header(6).u32(7).u32(9).u16(0).u16(0).at(28).seal();
        let n = write_zero_map(&mut buf, SESSION, 7, 9, &[]).unwrap();
        assert_eq!(&buf[..n], &empty[..]);
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
        let announce = |flags: u32, seq: u32, interval: u32, digest: [u8; 32]| {
            Bytes::header(2)
                .u64(10 * 1024 * 1024 + 17) // image size
                .at(24)
                .u32(1408) // symbol size
                .at(28)
                .u32(512) // k
                .at(32)
                .u32(15) // block count
                .at(36)
                .u32(flags)
                .at(40)
                .u32(seq)
                .at(44)
                .u32(interval) // report interval, ms
                .at(48)
                .raw(&digest)
                .at(80)
                .u32(0) // reserved
                .at(84)
                .seal()
        };
        // Written as `expected`, and read back as `a`.
        let mut pinned = |a: &Announce, expected: &[u8]| {
            write_announce(&mut buf, SESSION, a).unwrap();
            assert_eq!(&buf[..], expected);
            assert_eq!(
                packet(expected, PacketType::Announce).announce().unwrap(),
                *a
            );
        };
        // Digest known (1) and started (2).
        pinned(&with_digest, &announce(3, 0x0506_0708, 250, digest()));

        let closing = Announce {
            geometry: g,
            flags: AnnounceFlags::CLOSING,
            seq: 3,
            report_interval_ms: 60_000,
            digest: None,
        };
        pinned(&closing, &announce(4, 3, 60_000, [0; 32]));

        // The least interval (version 4), what the server asks for while it probes.
        let probing = Announce {
            report_interval_ms: 5,
            ..with_digest
        };
        pinned(&probing, &announce(3, 0x0506_0708, 5, digest()));
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
            resumed: true,
            interval_received: 0x5555_6666,
            last_seq_age_us: 0x7777_8888,
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
        let expected = Bytes::header(3)
            .u64(CLIENT)
            .at(24)
            .u32(0x1111_2222) // report seq
            .at(28)
            .u32(0x3333_4444) // last seq
            .at(32)
            .u32(77) // blocks done
            .at(36)
            .u32(12_345) // loss, ppm
            .at(40)
            .u16(2) // range count
            .at(42)
            .u8(1) // phase: finishing
            .u8(1) // flags: resumed
            .u32(0x5555_6666) // data packets received since the previous report
            .at(48)
            .u32(0x7777_8888) // microseconds since data packet `last seq` arrived
            .at(52)
            .u32(5)
            .u16(2)
            .u16(3)
            .at(60)
            .u32(0x0100_0000)
            .u16(0x0203)
            .u16(0x0405)
            .at(68)
            .seal();
        let mut buf = [0u8; 128];
        let n = write_status(&mut buf, SESSION, &head, &ranges).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        let s = packet(&expected, PacketType::Status).status().unwrap();
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
        let result = |client: u64, verified: u8, reason: u8, written: u64, digest: [u8; 32]| {
            Bytes::header(4)
                .u64(client)
                .at(24)
                .u8(verified)
                .u8(reason)
                .u16(0) // reserved
                .at(28)
                .u64(written)
                .at(36)
                .raw(&digest)
                .at(68)
                .seal()
        };
        let expected = result(CLIENT, 1, 0, 0x0102_0304_0506, digest());
        write_result(&mut buf, SESSION, &verified).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(
            packet(&expected, PacketType::Result).result().unwrap(),
            verified
        );

        let failed = ResultReport {
            client_id: 9,
            outcome: ResultOutcome::Failed(FailReason::Interrupted),
            bytes_written: 4096,
            digest: [0; 32],
        };
        let expected = result(9, 0, 7, 4096, [0; 32]);
        write_result(&mut buf, SESSION, &failed).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(
            packet(&expected, PacketType::Result).result().unwrap(),
            failed
        );
    }

    #[test]
    fn result_ack_bytes_are_pinned() {
        let expected = Bytes::header(5).u64(CLIENT).at(24).seal();
        let mut buf = [0u8; RESULT_ACK_LEN];
        write_result_ack(&mut buf, SESSION, CLIENT).unwrap();
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(
            packet(&expected, PacketType::ResultAck)
                .result_ack()
                .unwrap(),
            CLIENT
        );
    }
}

#[test]
fn the_default_symbol_fills_a_1500_byte_mtu_with_a_key() {
    // What docs/PROTOCOL.md and `bb-server --help` promise: 1408-byte symbols, whose keyed
    // data packets are the largest that fit a 1500-byte MTU (IPv4 and UDP headers: 28).
    assert_eq!(DEFAULT_SYMBOL_SIZE, 1408);
    let tagged = DATA_OVERHEAD + DEFAULT_SYMBOL_SIZE as usize + auth::TRAILER_LEN;
    assert!(tagged + 28 <= 1500);
    assert!(tagged + SYMBOL_ALIGN as usize + 28 > 1500);
    let payload = vec![0u8; DEFAULT_SYMBOL_SIZE as usize];
    assert_eq!(data_pkt(head(), &payload).len(), 1448);
}
