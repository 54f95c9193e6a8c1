//! Authentication (PROTOCOL.md section 9) and the pinned digest: the tag on every packet
//! type, what a wrong or missing key does to a transfer, and the key file format.

use bb_proto::digest::content_hash;
use bb_proto::receiver::{Outcome, Receiver, ReceiverConfig, ReceiverStats, ReceiverStorage, Slot};
use bb_proto::sender::{
    BlockSource, ClientInfo, Sender, SenderConfig, SenderStats, SenderStorage, Transmit,
};
use bb_proto::wire::auth::{
    COUNTER_LEN, Direction, FLAG_TAGGED, KeyFileError, MacKey, PresharedKey, SERVER_SENDER,
    SessionMacs, TAG_LEN, TRAILER_LEN, parse_hex32, sign,
};
use bb_proto::wire::{self, *};

const SESSION: u64 = 0x0123_4567_89ab_cdef;

fn key(fill: u8) -> PresharedKey {
    PresharedKey::from_bytes([fill; 32])
}

fn geometry() -> Geometry {
    Geometry::new(200_000, 1024, 32).unwrap()
}

/// One packet of every type, untagged, as the writers build them.
fn every_packet() -> Vec<Vec<u8>> {
    let g = geometry();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    let a = Announce {
        geometry: g,
        flags: AnnounceFlags::STARTED,
        seq: 7,
        report_interval_ms: 200,
        digest: Some([9; 32]),
    };
    let n = write_announce(&mut buf, SESSION, &a).unwrap();
    out.push(buf[..n].to_vec());
    let head = DataHead {
        block: 1,
        esi: 3,
        encoding: Encoding::Raw,
        seq: 11,
        block_check: 0xabcd,
        coded_len: 32 * 1024,
    };
    let payload = vec![0x5a; 1024];
    let n = write_data(
        &mut buf,
        SESSION,
        &Data {
            head,
            payload: &payload,
        },
    )
    .unwrap();
    out.push(buf[..n].to_vec());
    let sh = StatusHead {
        client_id: 42,
        report_seq: 1,
        last_seq: 2,
        blocks_done: 3,
        loss_ppm: 4,
        phase: ClientPhase::Receiving,
        resumed: false,
        interval_received: 0,
        last_seq_age_us: 0,
    };
    let ranges = [DeficitRange {
        first: 2,
        len: 3,
        deficit: 4,
    }; 1];
    let n = write_status(&mut buf, SESSION, &sh, &ranges).unwrap();
    out.push(buf[..n].to_vec());
    let r = ResultReport {
        client_id: 42,
        outcome: ResultOutcome::Verified,
        bytes_written: 200_000,
        digest: [9; 32],
    };
    let n = write_result(&mut buf, SESSION, &r).unwrap();
    out.push(buf[..n].to_vec());
    let n = write_result_ack(&mut buf, SESSION, 42).unwrap();
    out.push(buf[..n].to_vec());
    let z = [ZeroRange {
        first: 2,
        blocks: 1,
    }];
    let n = write_zero_map(&mut buf, SESSION, 0, 5, &z).unwrap();
    out.push(buf[..n].to_vec());
    out
}

/// Counter of the packets [`tagged`] signs with a bare key.
const COUNTER: u64 = 0x0102_0304_0506_0708;

fn tagged(pkt: &[u8], mac: &MacKey) -> Vec<u8> {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + TRAILER_LEN, 0);
    assert_eq!(
        sign(&mut buf, pkt.len(), mac, COUNTER).unwrap(),
        pkt.len() + TRAILER_LEN
    );
    buf
}

/// `pkt` as one end of a session sends it (its own key and next counter).
fn sent_by(end: &SessionMacs, pkt: &[u8]) -> Vec<u8> {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + TRAILER_LEN, 0);
    assert_eq!(end.sign(&mut buf, pkt.len()).unwrap(), buf.len());
    buf
}

#[test]
fn every_packet_type_round_trips_tagged_and_the_tag_is_stripped() {
    let mac = MacKey::derive(&key(1), SESSION, Direction::FromServer, SERVER_SENDER);
    for pkt in every_packet() {
        let t = tagged(&pkt, &mac);
        assert_eq!(u16::from_le_bytes([t[6], t[7]]), FLAG_TAGGED);
        let p = wire::open_keyed(&t, |s, sender| {
            assert_eq!(s, SESSION);
            // The key of a client's packet is chosen by its client id (42 here).
            let from_client = matches!(pkt[5], 3 | 4);
            assert_eq!(sender, if from_client { 42 } else { SERVER_SENDER });
            &mac
        })
        .unwrap();
        // The typed view is the untagged packet with the flag set: same length, same body.
        assert_eq!(p.as_bytes().len(), pkt.len());
        assert_eq!(
            p.as_bytes()[16..pkt.len() - CRC_LEN],
            pkt[16..pkt.len() - CRC_LEN]
        );
        let parsed = match p.ty() {
            PacketType::Data => p.data().map(|_| ()),
            PacketType::Announce => p.announce().map(|_| ()),
            PacketType::Status => p.status().map(|_| ()),
            PacketType::Result => p.result().map(|_| ()),
            PacketType::ResultAck => p.result_ack().map(|_| ()),
            PacketType::ZeroMap => p.zero_map().map(|_| ()),
        };
        assert_eq!(parsed, Ok(()), "{:?}", p.ty());
        // A keyless end refuses it, a keyed end refuses the untagged original.
        assert_eq!(wire::open(&t).unwrap_err(), WireError::NeedsKey);
        assert_eq!(
            wire::open_keyed(&pkt, |_, _| &mac).unwrap_err(),
            WireError::Unauthenticated
        );
    }
}

#[test]
fn any_modified_byte_is_rejected_by_the_tag() {
    let mac = MacKey::derive(&key(1), SESSION, Direction::FromServer, SERVER_SENDER);
    for pkt in every_packet() {
        let t = tagged(&pkt, &mac);
        for i in 8..t.len() {
            let mut m = t.clone();
            m[i] ^= 0x01;
            assert_eq!(
                wire::open_keyed(&m, |_, _| &mac).unwrap_err(),
                WireError::BadTag,
                "byte {i} of a {}-byte packet",
                t.len()
            );
        }
        // Cut short or with the tag removed: never accepted.
        assert!(wire::open_keyed(&t[..t.len() - 1], |_, _| &mac).is_err());
        assert!(wire::open_keyed(&t[..t.len() - TAG_LEN], |_, _| &mac).is_err());
        assert!(wire::open_keyed(&t[..t.len() - TRAILER_LEN], |_, _| &mac).is_err());
    }
}

#[test]
fn a_foreign_key_another_session_or_the_other_direction_does_not_verify() {
    let psk = key(1);
    let server = SessionMacs::server(&psk, SESSION);
    let client = SessionMacs::client(&psk, SESSION, 42);
    let announce = &every_packet()[0];
    let t = sent_by(&server, announce);
    assert!(wire::open_keyed(&t, |_, s| client.receive_key(s)).is_ok());
    // Another key.
    let other = SessionMacs::client(&key(2), SESSION, 42);
    assert_eq!(
        wire::open_keyed(&t, |_, s| other.receive_key(s)).unwrap_err(),
        WireError::BadTag
    );
    // Reflected back at the server as if a client had sent it.
    assert_eq!(
        wire::open_keyed(&t, |_, s| server.receive_key(s)).unwrap_err(),
        WireError::BadTag
    );
    // A client's status verifies at the server; another client of the same key cannot
    // send one in its name (every client id has its own key).
    let status = &every_packet()[2];
    assert!(wire::open_keyed(&sent_by(&client, status), |_, s| server.receive_key(s)).is_ok());
    let impostor = SessionMacs::client(&psk, SESSION, 43);
    assert_eq!(
        wire::open_keyed(&sent_by(&impostor, status), |_, s| server.receive_key(s)).unwrap_err(),
        WireError::BadTag
    );
    // Replayed into another session: with its session id rewritten (and the CRC made
    // valid again) it is checked under that session's key and fails.
    let later = 0x0123_4567_89ab_cdf0;
    let mut replay = t.clone();
    replay[8..16].copy_from_slice(&u64::to_le_bytes(later));
    let body = replay.len() - TRAILER_LEN - CRC_LEN;
    let c = crc32(&replay[..body]);
    replay[body..body + CRC_LEN].copy_from_slice(&c.to_le_bytes());
    let later_keys = SessionMacs::client(&psk, later, 42);
    assert_eq!(
        wire::open_keyed(&replay, |_, s| later_keys.receive_key(s)).unwrap_err(),
        WireError::BadTag
    );
    assert!(
        wire::open_keyed(&sent_by(&server, announce), |_, s| later_keys
            .receive_key(s))
        .is_err(),
        "every session has its own keys"
    );
}

/// Every packet an end sends carries the next value of its own counter (the nonce), so
/// the same packet sent twice gets two different tags and no nonce repeats under a key.
#[test]
fn each_end_counts_its_packets_and_no_counter_repeats() {
    let psk = key(1);
    let server = SessionMacs::server(&psk, SESSION);
    let client = SessionMacs::client(&psk, SESSION, 42);
    let pkt = &every_packet()[0];
    let sent: Vec<Vec<u8>> = (0..3).map(|_| sent_by(&server, pkt)).collect();
    let counter = |t: &[u8]| {
        let at = t.len() - TRAILER_LEN;
        u64::from_le_bytes(t[at..at + COUNTER_LEN].try_into().unwrap())
    };
    assert_eq!(
        sent.iter().map(|t| counter(t)).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_ne!(sent[0][pkt.len()..], sent[1][pkt.len()..]);
    for t in &sent {
        assert!(wire::open_keyed(t, |_, s| client.receive_key(s)).is_ok());
    }
    // The counter is authenticated: another value under the same tag fails.
    let mut bumped = sent[2].clone();
    bumped[pkt.len()] ^= 0x08;
    assert_eq!(
        wire::open_keyed(&bumped, |_, s| client.receive_key(s)).unwrap_err(),
        WireError::BadTag
    );
    // The client counts on its own, from 0.
    assert_eq!(counter(&sent_by(&client, &every_packet()[2])), 0);
}

/// A tag that verifies covers the CRC: a keyed end does not check the CRC again (one
/// pass less over every packet), while a tag over another CRC fails as any change does.
#[test]
fn a_verified_tag_stands_for_the_crc() {
    let mac = MacKey::derive(&key(1), SESSION, Direction::FromServer, SERVER_SENDER);
    let pkt = &every_packet()[1];
    let mut t = tagged(pkt, &mac);
    let crc_at = pkt.len() - CRC_LEN;
    t[crc_at] ^= 0xff;
    assert_eq!(
        wire::open_keyed(&t, |_, _| &mac).unwrap_err(),
        WireError::BadTag
    );
    // The sender's own bytes, CRC included, are what the tag vouches for.
    let signed = pkt.len() + COUNTER_LEN;
    let retag = mac.tag(COUNTER, &t[..signed]).unwrap();
    t[signed..].copy_from_slice(&retag);
    let p = wire::open_keyed(&t, |_, _| &mac).unwrap();
    assert!(p.data().is_ok());
}

#[test]
fn sizes_with_the_tag_fit_a_standard_datagram() {
    let mac = MacKey::derive(&key(1), SESSION, Direction::FromServer, SERVER_SENDER);
    let sh = StatusHead {
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
    let ranges: Vec<DeficitRange> = (0..MAX_RANGES as u32)
        .map(|i| DeficitRange {
            first: i * 2,
            len: 1,
            deficit: 1,
        })
        .collect();
    let mut buf = vec![0u8; 2048];
    let n = write_status(&mut buf, SESSION, &sh, &ranges).unwrap();
    assert!(sign(&mut buf, n, &mac, 0).unwrap() <= 1472);
    let zr: Vec<ZeroRange> = (0..MAX_ZERO_RANGES as u32)
        .map(|i| ZeroRange {
            first: i * 2,
            blocks: 1,
        })
        .collect();
    let n = write_zero_map(&mut buf, SESSION, 0, MAX_ZERO_RANGES as u32 * 2, &zr).unwrap();
    assert!(sign(&mut buf, n, &mac, 0).unwrap() <= 1472);
    // The default geometry's data packet: 1448 bytes, 1472 with counter and tag.
    let payload = vec![0u8; 1408];
    let n = write_data(
        &mut buf,
        SESSION,
        &Data {
            head: DataHead {
                block: 0,
                esi: 0,
                encoding: Encoding::Raw,
                seq: 0,
                block_check: 0,
                coded_len: 1408,
            },
            payload: &payload,
        },
    )
    .unwrap();
    assert_eq!(sign(&mut buf, n, &mac, 0).unwrap(), 1472);
}

#[test]
fn key_files_are_32_raw_bytes_or_64_hex_digits() {
    let raw: Vec<u8> = (0..32u8).collect();
    assert_eq!(
        PresharedKey::parse(&raw).unwrap(),
        PresharedKey::from_bytes(raw.clone().try_into().unwrap())
    );
    let hex = b"000102030405060708090a0b0c0d0e0f\n101112131415161718191A1B1C1D1E1F\n";
    assert_eq!(PresharedKey::parse(hex), PresharedKey::parse(&raw));
    let mut out = [0u8; 64];
    PresharedKey::parse(&raw).unwrap().to_hex(&mut out);
    assert_eq!(
        &out[..],
        &b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"[..]
    );
    assert_eq!(
        PresharedKey::parse(&raw[..31]),
        Err(KeyFileError::NotAKey(31))
    );
    assert_eq!(PresharedKey::parse(b""), Err(KeyFileError::WrongLength(0)));
    assert_eq!(
        PresharedKey::parse(&hex[..60]),
        Err(KeyFileError::WrongLength(59))
    );
    let mut long = hex.to_vec();
    long.extend_from_slice(b"00");
    assert_eq!(
        PresharedKey::parse(&long),
        Err(KeyFileError::WrongLength(66))
    );
    assert_eq!(PresharedKey::parse(b"00zz"), Err(KeyFileError::NotAKey(4)));
    assert_eq!(
        PresharedKey::parse_hex(b"00zz"),
        Err(KeyFileError::NotHex(2))
    );
    assert_eq!(parse_hex32(&[b'f'; 64]), Ok([0xff; 32]));
    // The Debug form never shows the key.
    assert_eq!(format!("{:?}", key(7)), "PresharedKey(..)");
}

// ----- transfers between the real sender and receiver -----

struct Setup {
    server_key: Option<PresharedKey>,
    client_key: Option<PresharedKey>,
    pin: Option<[u8; 32]>,
    /// Give the sender the second half of its blocks only once the client has written the
    /// first half (the digest then comes late).
    late_blocks: bool,
}

struct Run {
    out: Vec<u8>,
    outcome: Option<Outcome>,
    rx: ReceiverStats,
    tx: SenderStats,
    writes: usize,
    digest: Option<[u8; 32]>,
    computed: [u8; 32],
}

fn image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect()
}

fn run(setup: Setup, steps: usize) -> Run {
    let g = geometry();
    let img = image(g.image_size as usize);
    let s = g.symbol_size as usize;
    let coded: Vec<(BlockSource, Vec<u8>)> = (0..g.block_count())
        .map(|b| {
            let off = g.block_offset(b) as usize;
            let data = &img[off..off + g.block_len(b)];
            let mut c = data.to_vec();
            c.resize(c.len().div_ceil(s) * s, 0);
            (
                BlockSource::Raw {
                    hash: content_hash(data),
                },
                c,
            )
        })
        .collect();
    let (tree, n) = SenderStorage::<u32>::words(&g);
    let (mut ta, mut tb, mut te) = (vec![0u16; tree], vec![0u16; tree], vec![0u16; n]);
    let (mut tc, mut tl) = (vec![0u32; n], vec![0u32; n]);
    let mut clients: Vec<Option<ClientInfo<u32>>> = vec![None; 4];
    let mut c = SenderConfig::new(SESSION, g);
    c.rate_bps = 10_000_000_000;
    c.adapt_rate = false;
    c.key = setup.server_key;
    c.session_timeout_us = Some(5_000_000);
    let mut tx = Sender::new(
        c,
        SenderStorage {
            repair_tree: &mut ta,
            resend_tree: &mut tb,
            next_repair_esi: &mut te,
            block_checks: &mut tc,
            coded_len: &mut tl,
            clients: &mut clients,
        },
        0,
    )
    .unwrap();
    let half = g.block_count() / 2;
    let ready = if setup.late_blocks {
        half
    } else {
        g.block_count()
    };
    for b in 0..ready {
        tx.block_ready(b, coded[b as usize].0).unwrap();
    }
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(&g);
    let (mut done, mut zero) = (vec![0u64; 64], vec![0u64; 64]);
    let mut pool = vec![0u8; slot_bytes * 4];
    let mut slots = vec![Slot::FREE; 4];
    let mut esi_at = vec![0u16; esis * 4];
    let mut scr = vec![0u8; scratch];
    let mut outbuf = vec![0u8; g.block_bytes() as usize];
    let mut rc = ReceiverConfig::new(5);
    rc.key = setup.client_key;
    rc.pinned_digest = setup.pin;
    rc.silence_timeout_us = 3_000_000;
    let mut rx = Receiver::new(
        rc,
        ReceiverStorage {
            done: &mut done,
            pool: &mut pool,
            slots: &mut slots,
            esi_at: &mut esi_at,
            scratch: &mut scr,
            zero: &mut zero,
            out: &mut outbuf,
        },
        0,
    )
    .unwrap();
    let mut out = vec![0xEEu8; img.len()];
    let mut writes = 0;
    let mut buf = vec![0u8; 9000];
    let mut up = vec![0u8; 1536];
    let mut now = 0u64;
    struct NoZstd;
    impl bb_proto::receiver::Decompress for NoZstd {
        fn decompress(
            &mut self,
            _: &[u8],
            _: &mut [u8],
        ) -> Result<usize, bb_proto::receiver::DecompressError> {
            Err(bb_proto::receiver::DecompressError)
        }
    }
    let mut late_given = false;
    for _ in 0..steps {
        if setup.late_blocks && !late_given && rx.progress().0 >= half {
            late_given = true;
            for b in half..g.block_count() {
                tx.block_ready(b, coded[b as usize].0).unwrap();
            }
        }
        tx.handle_timeout(now);
        let _ = rx.handle_timeout(now);
        match tx.poll_transmit(now) {
            None => match tx.poll_timeout(now) {
                Some(t) => now = t.max(now + 1),
                None => break,
            },
            Some(t) => {
                let len = match t {
                    Transmit::Announce => tx.build_announce(&mut buf).unwrap(),
                    Transmit::ZeroMap => tx.build_zero_map(&mut buf).unwrap(),
                    Transmit::Symbol { block, esi, seq } => tx
                        .build_symbol(block, esi, seq, &coded[block as usize].1, &mut buf)
                        .unwrap(),
                    Transmit::ResultAck { client_id, .. } => {
                        tx.build_result_ack(client_id, &mut buf).unwrap()
                    }
                };
                let _ = rx.handle_datagram(now, &buf[..len]);
            }
        }
        while let Some(w) = rx.poll_write(&mut NoZstd) {
            if let bb_proto::receiver::Write::Data { offset, data, .. } = w {
                out[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            }
            writes += 1;
            rx.write_done();
        }
        if rx.needs_flush() {
            rx.flushed(now, true);
        }
        while let Some(n) = rx.poll_transmit(now, 12345, &mut up) {
            let _ = tx.handle_datagram(now, 1, &up[..n]);
        }
        if rx.finished() {
            break;
        }
    }
    Run {
        out,
        outcome: rx.outcome(),
        rx: *rx.stats(),
        tx: *tx.stats(),
        writes,
        digest: tx.digest().copied(),
        computed: rx.computed_digest(),
    }
}

fn setup(server_key: Option<PresharedKey>, client_key: Option<PresharedKey>) -> Setup {
    Setup {
        server_key,
        client_key,
        pin: None,
        late_blocks: false,
    }
}

#[test]
fn keyed_server_and_client_verify_byte_exact_and_every_packet_is_tagged() {
    let r = run(setup(Some(key(3)), Some(key(3))), 200_000);
    assert!(
        matches!(r.outcome, Some(Outcome::Verified { .. })),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.out, image(geometry().image_size as usize));
    assert_eq!((r.rx.bad_tag, r.rx.untagged, r.rx.needs_key), (0, 0, 0));
    assert_eq!((r.tx.bad_tag, r.tx.untagged, r.tx.needs_key), (0, 0, 0));
    assert!(
        r.tx.status_reports + r.tx.results > 0,
        "the server accepted the client's packets"
    );
}

#[test]
fn a_client_with_another_key_never_binds_nor_writes() {
    let r = run(setup(Some(key(3)), Some(key(4))), 50_000);
    assert_eq!(r.writes, 0);
    assert!(r.rx.bad_tag > 0);
    assert_ne!(
        r.outcome,
        Some(Outcome::Verified {
            digest: r.digest.unwrap()
        })
    );
    assert_eq!(r.tx.status_reports, 0);
}

#[test]
fn a_keyed_client_ignores_a_keyless_server_and_the_reverse() {
    let r = run(setup(None, Some(key(3))), 50_000);
    assert_eq!(r.writes, 0);
    assert!(r.rx.untagged > 0 && r.rx.bad_tag == 0);
    let r = run(setup(Some(key(3)), None), 50_000);
    assert_eq!(r.writes, 0);
    assert!(r.rx.needs_key > 0 && r.rx.untagged == 0);
}

#[test]
fn a_pinned_digest_that_differs_is_refused_before_any_write() {
    let mut s = setup(Some(key(3)), Some(key(3)));
    s.pin = Some([0x77; 32]);
    let r = run(s, 50_000);
    assert_eq!(r.writes, 0);
    assert!(r.rx.pin_refused > 0);
    assert_eq!(r.rx.symbols, 0);
}

#[test]
fn the_right_pinned_digest_verifies() {
    let digest = run(setup(None, None), 200_000).digest.unwrap();
    let mut s = setup(None, None);
    s.pin = Some(digest);
    let r = run(s, 200_000);
    assert_eq!(r.outcome, Some(Outcome::Verified { digest }));
    assert_eq!(r.rx.pin_refused, 0);
}

#[test]
fn a_pin_against_a_digest_announced_late_fails_verification() {
    let mut s = setup(None, None);
    s.pin = Some([0x77; 32]);
    s.late_blocks = true;
    let r = run(s, 400_000);
    assert!(
        r.writes > 0,
        "the digest was not known at the start, so data was written"
    );
    assert_eq!(r.outcome, Some(Outcome::Failed(FailReason::DigestMismatch)));
    // The image arrived intact: it is the pin that it does not match.
    assert_eq!(Some(r.computed), r.digest);
}

/// The tag is exactly what PROTOCOL.md section 9 defines, computed here from its text with
/// other crates: BLAKE3 derive-key for the key, RustCrypto's AES-128-GCM (not ring) for
/// the tag of packet || counter under the nonce u32le(0) || u64le(counter).
#[test]
fn the_tag_follows_the_protocol_text() {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let psk = [0x5cu8; 32];
    // Every packet type, and a jumbo-frame data packet (tagged through another scratch
    // buffer than standard-MTU packets).
    let mut packets = every_packet();
    let mut buf = vec![0u8; 9000];
    let payload = vec![0xa5; 8192];
    let head = DataHead {
        block: 0,
        esi: 0,
        encoding: Encoding::Raw,
        seq: 0,
        block_check: 0,
        coded_len: 8192,
    };
    let data = Data {
        head,
        payload: &payload,
    };
    let n = write_data(&mut buf, SESSION, &data).unwrap();
    packets.push(buf[..n].to_vec());
    for (pkt, (dir, byte, sender)) in packets.iter().flat_map(|p| {
        [
            (Direction::FromServer, 1u8, 0u64),
            (Direction::FromClient, 2u8, 0x1122_3344_5566_7788),
        ]
        .map(|d| (p, d))
    }) {
        let mut material = psk.to_vec();
        material.extend_from_slice(&SESSION.to_le_bytes());
        material.push(byte);
        material.extend_from_slice(&sender.to_le_bytes());
        let k = blake3::derive_key("broadband 2026-12 session aes-128-gcm key v3", &material);
        let mut flagged = pkt.clone();
        flagged[6] |= 1;
        let body = flagged.len() - CRC_LEN;
        let c = crc32(&flagged[..body]);
        flagged[body..].copy_from_slice(&c.to_le_bytes());
        flagged.extend_from_slice(&COUNTER.to_le_bytes());
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&COUNTER.to_le_bytes());
        let gcm = aes_gcm::Aes128Gcm::new_from_slice(&k[..16]).unwrap();
        let mut ciphertext = flagged.clone();
        let want = gcm
            .encrypt_inout_detached(&nonce.into(), &[], ciphertext.as_mut_slice().into())
            .unwrap();
        let got = tagged(
            pkt,
            &MacKey::derive(&PresharedKey::from_bytes(psk), SESSION, dir, sender),
        );
        assert_eq!(&got[..flagged.len()], &flagged[..]);
        assert_eq!(&got[flagged.len()..], &want[..]);
    }
}

/// A client that moves to another session (resume) and back never starts its counter again:
/// a nonce used under session A's key is not used under it a second time.
#[test]
fn a_client_moving_between_sessions_never_repeats_a_counter() {
    let psk = key(1);
    let pkt = &every_packet()[0];
    let counter = |t: &[u8]| {
        let at = t.len() - TRAILER_LEN;
        u64::from_le_bytes(t[at..at + COUNTER_LEN].try_into().unwrap())
    };
    let in_a = SessionMacs::client(&psk, SESSION, 42);
    let first: Vec<u64> = (0..3).map(|_| counter(&sent_by(&in_a, pkt))).collect();
    let in_b = in_a.client_moved(&psk, SESSION + 1, 42);
    let second: Vec<u64> = (0..2).map(|_| counter(&sent_by(&in_b, pkt))).collect();
    let back_in_a = in_b.client_moved(&psk, SESSION, 42);
    let third = counter(&sent_by(&back_in_a, pkt));
    assert_eq!(first, [0, 1, 2]);
    assert_eq!(second, [3, 4]);
    assert_eq!(third, 5, "back in session A, the counter goes on");
}
