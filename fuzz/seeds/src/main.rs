//! Seeds for the fuzz corpora: valid packets of every type, whole transfers for the state
//! machines, and typical command lines, DHCP replies and option values, each written to
//! `fuzz/corpus/<target>/seed-<name>` in the input format of its target. The fuzzer starts
//! from these instead of rediscovering magic numbers, CRCs and block checks.
//! Usage: cargo run --manifest-path fuzz/seeds/Cargo.toml [CORPUS_DIR]

use std::fs;
use std::path::{Path, PathBuf};

use bb_proto::digest::{DigestAccumulator, block_check, content_hash};
use bb_proto::wire::auth::{self, Direction, MacKey, PresharedKey, SERVER_SENDER};
use bb_proto::wire::{
    self, Announce, AnnounceFlags, ClientPhase, Data, DataHead, DeficitRange, Encoding, FailReason,
    Geometry, PacketType, ResultOutcome, ResultReport, StatusHead, ZeroRange,
};

/// Session id the receiver targets bind to (fuzz_targets/common/rx.rs).
const RX_SESSION: u64 = 7;
/// Session id of the sender target (fuzz_targets/sender.rs).
const TX_SESSION: u64 = 9;

/// The pre-shared key of the keyed targets (fuzz_targets/common/packets.rs `KEY`).
const KEY: [u8; 32] = *b"broadband fuzz pre-shared key 32";

/// `pkt` tagged as its sender would under [`KEY`] with `counter` (as the keyed targets'
/// `mac_key` derives the key: the server's, or for a status report or result its client's).
fn tagged(pkt: &[u8], counter: u64) -> Vec<u8> {
    let psk = PresharedKey::from_bytes(KEY);
    let session = u64::from_le_bytes(pkt[8..16].try_into().unwrap());
    let key = if pkt[5] == PacketType::Status as u8 || pkt[5] == PacketType::Result as u8 {
        let id = wire::field::status::CLIENT_ID;
        let client = u64::from_le_bytes(pkt[id].try_into().unwrap());
        MacKey::derive(&psk, session, Direction::FromClient, client)
    } else {
        MacKey::derive(&psk, session, Direction::FromServer, SERVER_SENDER)
    };
    let mut out = pkt.to_vec();
    out.resize(pkt.len() + auth::TRAILER_LEN, 0);
    let n = auth::sign(&mut out, pkt.len(), &key, counter).unwrap();
    out.truncate(n);
    out
}

/// Index of `ty` in fuzz_targets/common/packets.rs `TYPES` (the first byte of packet_keyed).
fn keyed_type_index(ty: u8) -> u8 {
    [
        PacketType::Data,
        PacketType::Announce,
        PacketType::Status,
        PacketType::Result,
        PacketType::ResultAck,
        PacketType::ZeroMap,
    ]
    .iter()
    .position(|&t| t as u8 == ty)
    .unwrap() as u8
}

struct Corpus(PathBuf);

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("seed-{name}"));
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// One packet built by a `write_*` function into a fresh buffer.
fn build(f: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let n = f(&mut buf);
    buf.truncate(n);
    buf
}

/// Deterministic image bytes (not all zero, not periodic within a block).
fn image(size: u64) -> Vec<u8> {
    (0..size).map(|i| ((i * 2654435761) >> 13) as u8).collect()
}

/// The source symbols (raw encoding) of every block of `g` whose bit in `skip` is clear.
fn data_packets(g: &Geometry, session: u64, img: &[u8], skip: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let ss = g.symbol_size as usize;
    for block in 0..g.block_count() {
        if skip >> block & 1 == 1 {
            continue;
        }
        let off = g.block_offset(block) as usize;
        let bytes = &img[off..off + g.block_len(block)];
        let check = block_check(block, &content_hash(bytes));
        for (esi, chunk) in bytes.chunks(ss).enumerate() {
            let mut sym = vec![0u8; ss];
            sym[..chunk.len()].copy_from_slice(chunk);
            let head = DataHead {
                block,
                esi: esi as u16,
                encoding: Encoding::Raw,
                seq: block * 64 + esi as u32,
                block_check: check,
                coded_len: bytes.len() as u32,
            };
            out.push(build(|b| {
                wire::write_data(
                    b,
                    session,
                    &Data {
                        head,
                        payload: &sym,
                    },
                )
                .unwrap()
            }));
        }
    }
    out
}

/// Datagrams in the framing of `keyed_datagrams` (fuzz_targets/common/datagrams.rs), sent
/// as they are, each tagged as `auth[i % auth.len()]` says (0: the right key, 2: another
/// key, 3: no tag).
fn framed_keyed(pkts: &[Vec<u8>], flags: u8, auth: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        assert!(
            p.len() <= 255,
            "a datagram of {} bytes does not fit",
            p.len()
        );
        out.extend_from_slice(&[p.len() as u8, flags & !1, auth[i % auth.len()]]);
        out.extend_from_slice(p);
    }
    out
}

/// Datagrams in the framing of fuzz_targets/common/datagrams.rs, sent as they are.
fn framed(pkts: &[Vec<u8>], flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pkts {
        assert!(
            p.len() <= 255,
            "a datagram of {} bytes does not fit the framing",
            p.len()
        );
        out.push(p.len() as u8);
        out.push(flags & !1);
        out.extend_from_slice(p);
    }
    out
}

fn packets(c: &Corpus) {
    let g = Geometry::new(1 << 20, 1408, 512).unwrap();
    let announce = |flags, digest| {
        build(|b| {
            let a = Announce {
                geometry: g,
                flags,
                seq: 42,
                report_interval_ms: 500,
                digest,
            };
            wire::write_announce(b, 0x1234, &a).unwrap()
        })
    };
    let status = |ranges: &[DeficitRange], phase| {
        build(|b| {
            let head = StatusHead {
                client_id: 0xfeed,
                report_seq: 3,
                last_seq: 1000,
                blocks_done: 5,
                loss_ppm: 10_000,
                phase,
                resumed: false,
                interval_received: 0,
                last_seq_age_us: 0,
            };
            wire::write_status(b, 0x1234, &head, ranges).unwrap()
        })
    };
    let result = |outcome| {
        build(|b| {
            let r = ResultReport {
                client_id: 0xfeed,
                outcome,
                bytes_written: 1 << 20,
                digest: [7; 32],
            };
            wire::write_result(b, 0x1234, &r).unwrap()
        })
    };
    let img = image(g.image_size);
    let data = data_packets(&g, 0x1234, &img, !1);
    let many: Vec<DeficitRange> = (0..wire::MAX_RANGES as u32)
        .map(|i| DeficitRange {
            first: i * 3,
            len: 2,
            deficit: 9,
        })
        .collect();
    let zeros: Vec<ZeroRange> = (0..40)
        .map(|i| ZeroRange {
            first: 5 * i,
            blocks: 3,
        })
        .collect();
    let all: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "packet_announce",
            "plain",
            announce(AnnounceFlags::NONE, None),
        ),
        (
            "packet_announce",
            "digest-started",
            announce(AnnounceFlags::STARTED, Some([3; 32])),
        ),
        (
            "packet_announce",
            "closing",
            announce(AnnounceFlags::CLOSING, Some([4; 32])),
        ),
        ("packet_data", "first-symbol", data[0].clone()),
        ("packet_data", "last-symbol", data[data.len() - 1].clone()),
        (
            "packet_status",
            "no-ranges",
            status(&[], ClientPhase::Receiving),
        ),
        (
            "packet_status",
            "two-ranges",
            status(
                &[
                    DeficitRange {
                        first: 2,
                        len: 3,
                        deficit: 40,
                    },
                    DeficitRange {
                        first: 9,
                        len: 1,
                        deficit: 512,
                    },
                ],
                ClientPhase::Finishing,
            ),
        ),
        (
            "packet_status",
            "most-ranges",
            status(&many, ClientPhase::Receiving),
        ),
        ("packet_result", "verified", result(ResultOutcome::Verified)),
        (
            "packet_result",
            "failed",
            result(ResultOutcome::Failed(FailReason::IoError)),
        ),
        (
            "packet_result_ack",
            "ack",
            build(|b| wire::write_result_ack(b, 0x1234, 0xfeed).unwrap()),
        ),
        (
            "packet_zero_map",
            "empty",
            build(|b| wire::write_zero_map(b, 0x1234, 0, 16, &[]).unwrap()),
        ),
        (
            "packet_zero_map",
            "ranges",
            build(|b| wire::write_zero_map(b, 0x1234, 0, 200, &zeros).unwrap()),
        ),
    ];
    for (target, name, pkt) in all {
        // The packet targets take what follows the common header, up to the CRC.
        c.put(
            target,
            name,
            &pkt[wire::HEADER_LEN..pkt.len() - wire::CRC_LEN],
        );
        c.put("wire", &format!("{target}-{name}"), &pkt);
        // Tagged: whole for wire, and as packet_keyed's input (type index, how to change
        // it, where, the body).
        let keyed = tagged(&pkt, 5);
        c.put("wire", &format!("{target}-{name}-keyed"), &keyed);
        for how in 0..5u8 {
            let mut input = vec![keyed_type_index(pkt[5]), how, 17, 0];
            input.extend_from_slice(&pkt[wire::HEADER_LEN..pkt.len() - wire::CRC_LEN]);
            c.put("packet_keyed", &format!("{target}-{name}-{how}"), &input);
        }
    }
}

/// Whole transfers of fuzz_targets/receiver.rs's image (5000 bytes, 64-byte symbols, k 8).
fn receiver(c: &Corpus) {
    let g = Geometry::new(5000, 64, 8).unwrap();
    let img = image(g.image_size);
    for (name, mode, skip) in [("all-any-order", 0u8, 0u64), ("all-in-order", 1, 0)] {
        let pkts = data_packets(&g, RX_SESSION, &img, skip);
        let mut input = vec![mode];
        input.extend(framed(&pkts, 0));
        c.put("receiver", name, &input);
        let mut input = vec![mode];
        input.extend(framed_keyed(&pkts, 0, &[0]));
        c.put("receiver_keyed", name, &input);
        // Each datagram also forged (another key) and untagged, before the real one.
        let tripled: Vec<Vec<u8>> = pkts
            .iter()
            .flat_map(|p| [p.clone(), p.clone(), p.clone()])
            .collect();
        let mut input = vec![mode];
        input.extend(framed_keyed(&tripled, 0, &[2, 3, 0]));
        c.put("receiver_keyed", &format!("{name}-forged-first"), &input);
    }
    // Announced with the image digest (right, then wrong), all data, then the server's
    // acknowledgement of client 1's result: the verification and result paths.
    let mut acc = DigestAccumulator::default();
    for b in 0..g.block_count() {
        let off = g.block_offset(b) as usize;
        acc.add(b, &content_hash(&img[off..off + g.block_len(b)]));
    }
    let right = acc.finish(&g);
    let mut wrong = right;
    wrong[0] ^= 1;
    for (name, digest) in [("verified", right), ("digest-mismatch", wrong)] {
        let a = Announce {
            geometry: g,
            flags: AnnounceFlags::STARTED,
            seq: 0,
            report_interval_ms: 100,
            digest: Some(digest),
        };
        let mut pkts = vec![build(|b| wire::write_announce(b, RX_SESSION, &a).unwrap())];
        pkts.extend(data_packets(&g, RX_SESSION, &img, 0));
        pkts.push(build(|b| wire::write_result_ack(b, RX_SESSION, 1).unwrap()));
        let mut input = vec![0u8];
        input.extend(framed(&pkts, 0));
        c.put("receiver", name, &input);
        let mut input = vec![0u8];
        input.extend(framed_keyed(&pkts, 0, &[0]));
        c.put("receiver_keyed", name, &input);
    }
    // Blocks 1 and 4 named zero by a zero map, the others sent as data.
    let map = build(|b| {
        let r = [
            ZeroRange {
                first: 1,
                blocks: 1,
            },
            ZeroRange {
                first: 4,
                blocks: 1,
            },
        ];
        wire::write_zero_map(b, RX_SESSION, 0, g.block_count(), &r).unwrap()
    });
    let mut pkts = vec![map];
    pkts.extend(data_packets(&g, RX_SESSION, &img, 1 << 1 | 1 << 4));
    let mut input = vec![0u8];
    input.extend(framed(&pkts, 0));
    c.put("receiver", "zero-map-and-data", &input);
    let mut input = vec![0u8];
    input.extend(framed_keyed(&pkts, 0, &[0]));
    c.put("receiver_keyed", "zero-map-and-data", &input);
}

/// Zero maps in the format of fuzz_targets/zero_map.rs.
fn zero_map(c: &Corpus) {
    // [flags][span_first u16][span_len u16][n][n x (gap, blocks)]
    c.put(
        "zero_map",
        "one-span",
        &[0, 1, 0, 0, 44, 1, 3, 2, 5, 3, 10, 0, 1],
    );
    c.put(
        "zero_map",
        "whole-image",
        &[1, 1, 0, 0, 44, 1, 1, 0, 255, 1, 45, 0, 255, 1, 0, 255],
    );
    c.put(
        "zero_map",
        "in-order",
        &[1, 1, 0, 0, 100, 0, 2, 0, 10, 5, 20],
    );
}

/// Status reports and results for fuzz_targets/sender.rs (6 blocks; the first byte is the
/// zero mask: blocks 1 and 3 zero).
fn sender(c: &Corpus) {
    let status = |id: u64, ranges: &[DeficitRange]| {
        build(|b| {
            let head = StatusHead {
                client_id: id,
                report_seq: 1,
                last_seq: 20,
                blocks_done: 2,
                loss_ppm: 50_000,
                phase: ClientPhase::Receiving,
                resumed: false,
                last_seq_age_us: 0,
                interval_received: 0,
            };
            wire::write_status(b, TX_SESSION, &head, ranges).unwrap()
        })
    };
    let result = |id: u64| {
        build(|b| {
            let r = ResultReport {
                client_id: id,
                outcome: ResultOutcome::Verified,
                bytes_written: 3172,
                digest: [0; 32],
            };
            wire::write_result(b, TX_SESSION, &r).unwrap()
        })
    };
    let deficits = [
        DeficitRange {
            first: 0,
            len: 1,
            deficit: 4,
        },
        DeficitRange {
            first: 4,
            len: 2,
            deficit: 8,
        },
    ];
    let pkts = [
        status(1, &[]),
        status(2, &deficits),
        status(1, &deficits),
        result(1),
        result(2),
    ];
    let mut input = vec![0b0000_1010];
    for (i, p) in pkts.iter().enumerate() {
        input.push(p.len() as u8);
        // Sent as they are (bit 0 clear), some transmissions each, time moves on.
        input.push(0x0e | (i as u8) << 4);
        input.extend_from_slice(p);
    }
    c.put("sender", "two-clients", &input);
    // The same, tagged with the clients' keys; then each also forged and untagged first.
    for (name, auth) in [
        ("two-clients", &[0u8][..]),
        ("two-clients-forged-first", &[2, 3, 0]),
    ] {
        let mut input = vec![0b0000_1010];
        for (i, p) in pkts.iter().enumerate() {
            for &a in auth {
                input.extend_from_slice(&[p.len() as u8, 0x0e | (i as u8) << 4, a]);
                input.extend_from_slice(p);
            }
        }
        c.put("sender_keyed", name, &input);
    }
}

fn cmdline(c: &Corpus) {
    let lines: [(&str, &[u8]); 4] = [
        ("ipxe", b"BOOT_IMAGE=vmlinuz console=ttyS0 quiet bb.server=10.99.0.1 bb.dev=/dev/vda ip=10.99.0.101::10.99.0.1:255.255.255.0\n"),
        ("all", b"bb.server=192.168.7.1 bb.dev=/dev/nvme0n1 bb.group=239.1.2.3 bb.port=9000 bb.done=reboot bb.timeout=120 bb.key=\"00112233445566778899aabbccddeeff 00112233445566778899aabbccddeeff\" bb.digest=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100 bb.assume-zeroed ip=dhcp"),
        ("ip-full", b"192.168.1.5:192.168.1.1:192.168.1.254:24:box:eth1:off:10.0.0.1"),
        ("ip-device-dhcp", b"bb.server=1.2.3.4 bb.dev=/dev/sda ip=:::::eth2:dhcp"),
    ];
    for (name, l) in lines {
        c.put("cmdline", name, l);
    }
}

fn dhcp(c: &Corpus) {
    // Must match fuzz_targets/dhcp.rs.
    const XID: u32 = 0x5eed_1234;
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let mut p = vec![0u8; 240];
    p[..3].copy_from_slice(&[2, 1, 6]);
    p[4..8].copy_from_slice(&XID.to_be_bytes());
    p[16..20].copy_from_slice(&[10, 99, 0, 150]);
    p[20..24].copy_from_slice(&[10, 99, 0, 1]);
    p[28..34].copy_from_slice(&MAC);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[
        53, 1, 2, 54, 4, 10, 99, 0, 1, 1, 4, 255, 255, 255, 0, 0, 3, 4, 10, 99, 0, 254,
    ]);
    p.extend_from_slice(&[51, 4, 0, 0, 14, 16, 28, 4, 10, 99, 0, 255, 255]);
    let mut offer = vec![0u8];
    offer.extend_from_slice(&p);
    c.put("dhcp", "offer", &offer);
    let mut ack = offer.clone();
    ack[1 + 242] = 5;
    ack[0] = 3; // also build a request from the first bytes
    c.put("dhcp", "ack-and-request", &ack);
}

fn cli(c: &Corpus) {
    let values: [(&str, &[u8]); 13] = [
        ("rate", b"500M"),
        ("rate-bits", b"1.5Gbit/s"),
        ("symbol-size", b"8896"),
        ("level", b"off"),
        ("seconds", b"0.25"),
        ("sim-size", b"64MiB"),
        ("sim-duration", b"200us"),
        ("client", b"10.0.0.1\0-o\0/dev/sda\0--port\x009000\0-t\x005\0-g\x00239.1.2.3\0-i\0eth0\0--assume-zeroed"),
        ("client-init", b"--init\0-q"),
        ("client-key", b"--key-file\0/etc/bb.key\0--digest=00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\x0010.0.0.1\0/dev/sda"),
        ("key-hex", b"00112233445566778899aabbccddeeff\n00112233445566778899aabbccddeeff\n"),
        ("key-raw", b"0123456789abcdefghijklmnopqrstuv"),
        ("key-hex-spaced", b" 0011 2233 4455 6677 8899 aabb ccdd eeff 0011 2233 4455 6677 8899 aabb ccdd eeff "),
    ];
    for (name, v) in values {
        c.put("cli", name, v);
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus"));
    let c = Corpus(dir);
    packets(&c);
    receiver(&c);
    zero_map(&c);
    sender(&c);
    cmdline(&c);
    dhcp(&c);
    cli(&c);
    println!("seeds written to {}", c.0.display());
}
