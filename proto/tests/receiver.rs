//! The receiver against the real sender, in process: binding, memory limits, dropping what
//! is not its session, deficit reports and the final result.

use bb_proto::digest::content_hash;
use bb_proto::receiver::{
    Decompress, DecompressError, Dropped, Event, Expired, MAX_SLOTS, Outcome, Receiver,
    ReceiverConfig, ReceiverStorage, Slot, StorageError, Write, arrival_from_stamp,
};
use bb_proto::sender::{BlockSource, ClientInfo, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::auth::PresharedKey;
use bb_proto::wire::{self, DataHead, Encoding, FailReason, Geometry, PacketType};

struct RxMem {
    done: Vec<u64>,
    pool: Vec<u8>,
    slots: Vec<Slot>,
    esi_at: Vec<u16>,
    scratch: Vec<u8>,
    zero: Vec<u64>,
    out: Vec<u8>,
}

/// zstd through the standard crate, as the simulator's receivers use it.
struct Zstd;

impl Decompress for Zstd {
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError> {
        zstd::bulk::decompress_to_buffer(src, dst).map_err(|_| DecompressError)
    }
}

fn rx_mem(g: &Geometry, slots: usize, done_words: usize) -> RxMem {
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(g);
    RxMem {
        done: vec![0; done_words],
        pool: vec![0; slot_bytes * slots],
        slots: vec![Slot::FREE; slots],
        esi_at: vec![0; esis * slots],
        scratch: vec![0; scratch],
        zero: vec![0; done_words],
        out: vec![0; g.block_bytes() as usize],
    }
}

fn receiver(m: &mut RxMem, id: u64) -> Receiver<'_> {
    receiver_with(m, ReceiverConfig::new(id), 0)
}

fn receiver_with(m: &mut RxMem, cfg: ReceiverConfig, now_us: u64) -> Receiver<'_> {
    Receiver::new(cfg, storage(m), now_us).unwrap()
}

fn storage(m: &mut RxMem) -> ReceiverStorage<'_> {
    ReceiverStorage {
        done: &mut m.done,
        pool: &mut m.pool,
        slots: &mut m.slots,
        esi_at: &mut m.esi_at,
        scratch: &mut m.scratch,
        zero: &mut m.zero,
        out: &mut m.out,
    }
}

struct TxMem {
    a: Vec<u16>,
    b: Vec<u16>,
    esi: Vec<u16>,
    checks: Vec<u32>,
    coded: Vec<u32>,
    clients: Vec<Option<ClientInfo<u32>>>,
}

fn tx_mem(g: &Geometry) -> TxMem {
    let (tree, n) = SenderStorage::<u32>::words(g);
    TxMem {
        a: vec![0; tree],
        b: vec![0; tree],
        esi: vec![0; n],
        checks: vec![0; n],
        coded: vec![0; n],
        clients: vec![None; 4],
    }
}

fn sender(m: &mut TxMem, session: u64, g: Geometry) -> Sender<'_, u32> {
    let mut c = SenderConfig::new(session, g);
    c.rate_bps = 10_000_000_000;
    c.adapt_rate = false;
    let st = SenderStorage {
        repair_tree: &mut m.a,
        resend_tree: &mut m.b,
        next_repair_esi: &mut m.esi,
        block_checks: &mut m.checks,
        coded_len: &mut m.coded,
        clients: &mut m.clients,
    };
    Sender::new(c, st, 0).unwrap()
}

/// What the server's shell makes of a block: zero, raw, or a zstd frame when it saves a
/// symbol (with `compress`). Returns the source and the coded bytes padded to symbols.
fn code_block(g: &Geometry, img: &[u8], b: u32, compress: bool) -> (BlockSource, Vec<u8>) {
    let s = g.symbol_size as usize;
    let off = g.block_offset(b) as usize;
    let data = &img[off..off + g.block_len(b)];
    if data.iter().all(|&x| x == 0) {
        return (BlockSource::Zero, Vec::new());
    }
    let hash = content_hash(data);
    let frame = compress.then(|| zstd::bulk::compress(data, 3).unwrap());
    let (src, mut coded) = match frame {
        Some(f) if f.len().div_ceil(s) < data.len().div_ceil(s) => (
            BlockSource::Zstd {
                hash,
                coded_len: f.len() as u32,
            },
            f,
        ),
        _ => (BlockSource::Raw { hash }, data.to_vec()),
    };
    coded.resize(coded.len().div_ceil(s) * s, 0);
    (src, coded)
}

fn image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// Runs sender and receiver against each other until the receiver finishes; `drop_data`
/// decides which data packets (by block, esi) never arrive. Returns what was written.
fn transfer(
    g: Geometry,
    img: &[u8],
    drop_data: &mut dyn FnMut(u32, u16) -> bool,
) -> (Vec<u8>, Outcome, u64) {
    let (out, outcome, rx) = transfer_coded(g, img, Coding::default(), &mut Zstd, drop_data);
    (out, outcome, rx.reports)
}

/// How [`transfer_coded`] codes and receives the image.
#[derive(Clone, Copy, Default)]
struct Coding {
    /// Compress blocks with zstd when it saves a symbol (zero blocks are always skipped).
    compress: bool,
    /// The receiver hands out blocks strictly in order (a stdout sink).
    in_order: bool,
    /// Before the first symbol of each block reaches the receiver, a forged copy of it
    /// arrives with a wrong block check and garbage payload (an attacker on the LAN).
    forge_first_symbol: bool,
}

/// [`transfer`] with `coding`, decompressing through `dec`; returns the receiver's counters.
fn transfer_coded(
    g: Geometry,
    img: &[u8],
    coding: Coding,
    dec: &mut dyn Decompress,
    drop_data: &mut dyn FnMut(u32, u16) -> bool,
) -> (Vec<u8>, Outcome, bb_proto::receiver::ReceiverStats) {
    let compress = coding.compress;
    let mut tm = tx_mem(&g);
    let mut tx = sender(&mut tm, 77, g);
    let coded: Vec<(BlockSource, Vec<u8>)> = (0..g.block_count())
        .map(|b| code_block(&g, img, b, compress))
        .collect();
    for (b, (src, _)) in coded.iter().enumerate() {
        tx.block_ready(b as u32, *src).unwrap();
    }
    let mut rm = rx_mem(&g, 8, 64);
    let mut cfg = ReceiverConfig::new(5);
    cfg.in_order = coding.in_order;
    let mut rx = receiver_with(&mut rm, cfg, 0);
    // Written bytes start as 0xEE, so a zero range not written would show.
    let mut out = vec![0xEEu8; img.len()];
    let mut buf = vec![0u8; 9000];
    let mut up = vec![0u8; 1500];
    let mut now = 0u64;
    let mut forged = std::collections::HashSet::new();
    for _ in 0..2_000_000 {
        tx.handle_timeout(now);
        match tx.poll_transmit(now) {
            None => now = tx.poll_timeout(now).expect("session open").max(now + 1),
            Some(t) => {
                let (len, lost) = match t {
                    Transmit::Announce => (tx.build_announce(&mut buf).unwrap(), false),
                    Transmit::ZeroMap => (tx.build_zero_map(&mut buf).unwrap(), false),
                    Transmit::Symbol { block, esi, seq } => (
                        tx.build_symbol(block, esi, seq, &coded[block as usize].1, &mut buf)
                            .unwrap(),
                        drop_data(block, esi),
                    ),
                    Transmit::ResultAck { client_id, .. } => {
                        (tx.build_result_ack(client_id, &mut buf).unwrap(), false)
                    }
                };
                if let Transmit::Symbol { block, .. } = t
                    && coding.forge_first_symbol
                    && forged.insert(block)
                {
                    let _ = rx.handle_datagram(now, &forge_check(&buf[..len]));
                }
                if !lost {
                    let _ = rx.handle_datagram(now, &buf[..len]);
                }
            }
        }
        let mut written_to = 0;
        while let Some(w) = rx.poll_write(dec) {
            let (at, len) = match w {
                Write::Data { offset, data, .. } => {
                    out[offset as usize..offset as usize + data.len()].copy_from_slice(data);
                    (offset, data.len() as u64)
                }
                Write::Zeros { offset, len } => {
                    out[offset as usize..(offset + len) as usize].fill(0);
                    (offset, len)
                }
            };
            if coding.in_order {
                assert!(at >= written_to, "in order: {at} after {written_to}");
                written_to = at + len;
            }
            rx.write_done();
        }
        if rx.needs_flush() {
            rx.flushed(now, true);
        }
        while let Some(n) = rx.poll_transmit(now, 12345, &mut up) {
            tx.handle_datagram(now, 1, &up[..n]).unwrap();
        }
        if rx.finished() {
            return (out, rx.outcome().unwrap(), *rx.stats());
        }
    }
    panic!("transfer did not finish");
}

/// A copy of data packet `pkt` with its block check flipped and its payload garbage, with a
/// valid CRC: what a forger on the LAN can send without a key.
fn forge_check(pkt: &[u8]) -> Vec<u8> {
    let p = wire::open(pkt).unwrap();
    let d = p.data().unwrap();
    let payload: Vec<u8> = d.payload.iter().map(|b| !b).collect();
    let mut head = d.head;
    head.block_check ^= 0x5A5A_5A5A;
    let mut buf = vec![0u8; pkt.len() + 64];
    let n = wire::write_data(
        &mut buf,
        p.session(),
        &wire::Data {
            head,
            payload: &payload,
        },
    )
    .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn a_forged_first_symbol_with_a_wrong_check_is_outvoted_by_the_block_s_real_symbols() {
    let g = Geometry::new(200_000, 1024, 16).unwrap();
    let img = image(g.image_size as usize);
    let coding = Coding {
        forge_first_symbol: true,
        ..Coding::default()
    };
    let (out, outcome, st) = transfer_coded(g, &img, coding, &mut Zstd, &mut |_, _| false);
    assert!(matches!(outcome, Outcome::Verified { .. }), "{outcome:?}");
    assert_eq!(out, img);
    assert_eq!(st.claims_overturned, g.block_count() as u64);
}

#[test]
fn lossless_transfer_verifies_byte_exact() {
    let g = Geometry::new(300_000, 1024, 64).unwrap();
    let img = image(300_000);
    let (out, outcome, _) = transfer(g, &img, &mut |_, _| false);
    assert_eq!(out, img);
    assert!(matches!(outcome, Outcome::Verified { .. }));
}

#[test]
fn lost_symbols_and_a_whole_lost_block_are_reported_and_repaired() {
    let g = Geometry::new(400_000, 1024, 64).unwrap();
    let img = image(400_000);
    let mut first_pass = std::collections::HashSet::new();
    // Lose symbols 3 and 9 of every block once, and every symbol of block 2 the first time.
    let (out, outcome, reports) = transfer(g, &img, &mut |b, e| {
        first_pass.insert((b, e)) && (e == 3 || e == 9 || b == 2)
    });
    assert_eq!(out, img);
    assert!(matches!(outcome, Outcome::Verified { .. }));
    assert!(reports >= 1);
}

/// A disk-like image: text-like blocks (zstd shrinks them), runs of zero blocks, a
/// random block (nothing to gain), and a short last block.
fn disk_like_image(g: &Geometry) -> (Vec<u8>, Vec<u32>) {
    let mut img = image(g.image_size as usize);
    for b in img.iter_mut() {
        *b = b"etaoin shrdlu\n"[(*b % 14) as usize];
    }
    let zero: Vec<u32> = [3, 4, 5, 6, 7, 8, 12, g.block_count() - 1].to_vec();
    for &b in &zero {
        let off = g.block_offset(b) as usize;
        img[off..off + g.block_len(b)].fill(0);
    }
    let r = g.block_offset(10) as usize;
    img[r..r + g.block_len(10)].copy_from_slice(&image(g.block_len(10) * 2)[..g.block_len(10)]);
    (img, zero)
}

#[test]
fn zero_blocks_never_travel_and_compressed_blocks_arrive_byte_exact_through_loss() {
    let g = Geometry::new(64 * 1024 * 20 + 5000, 1024, 64).unwrap();
    let (img, zero) = disk_like_image(&g);
    let mut first = std::collections::HashSet::new();
    let mut sent_blocks = std::collections::HashSet::new();
    let coding = Coding {
        compress: true,
        in_order: false,
        ..Coding::default()
    };
    let (out, outcome, stats) = transfer_coded(g, &img, coding, &mut Zstd, &mut |b, e| {
        sent_blocks.insert(b);
        first.insert((b, e)) && e % 5 == 1
    });
    assert_eq!(out, img, "every byte, the zero ranges included");
    assert!(matches!(outcome, Outcome::Verified { .. }));
    assert!(
        zero.iter().all(|b| !sent_blocks.contains(b)),
        "no data for zero blocks"
    );
    assert!(stats.decoded > 0, "lost symbols were repaired by decoding");
    assert_eq!(stats.check_failures, 0);
}

#[test]
fn an_in_order_sink_gets_the_zero_ranges_in_their_place() {
    let g = Geometry::new(64 * 1024 * 20 + 5000, 1024, 64).unwrap();
    let (img, _) = disk_like_image(&g);
    let coding = Coding {
        compress: true,
        in_order: true,
        ..Coding::default()
    };
    let mut first = std::collections::HashSet::new();
    let (out, outcome, _) = transfer_coded(g, &img, coding, &mut Zstd, &mut |b, e| {
        first.insert((b, e)) && (b + e as u32).is_multiple_of(7)
    });
    assert_eq!(out, img);
    assert!(matches!(outcome, Outcome::Verified { .. }));
}

/// Decompresses like [`Zstd`] but damages the first `bad` outputs (a memory fault, or a
/// frame forged to pass the CRC).
struct Damaging {
    bad: u32,
}

impl Decompress for Damaging {
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError> {
        let n = Zstd.decompress(src, dst)?;
        if self.bad > 0 {
            self.bad -= 1;
            dst[n / 2] ^= 1;
        }
        Ok(n)
    }
}

#[test]
fn a_decompressed_block_that_fails_its_check_is_fetched_again_never_written() {
    let g = Geometry::new(64 * 1024 * 20 + 5000, 1024, 64).unwrap();
    let (img, _) = disk_like_image(&g);
    let coding = Coding {
        compress: true,
        in_order: false,
        ..Coding::default()
    };
    let mut dec = Damaging { bad: 2 };
    let (out, outcome, stats) = transfer_coded(g, &img, coding, &mut dec, &mut |_, _| false);
    assert_eq!(out, img);
    assert!(matches!(outcome, Outcome::Verified { .. }));
    assert_eq!(stats.check_failures, 2);
}

#[test]
fn image_larger_than_the_bitmap_is_unsupported_before_any_write() {
    let g = Geometry::new(64 * 64 * 65, 64, 64).unwrap(); // 65 blocks
    let mut tm = tx_mem(&g);
    let tx = sender(&mut tm, 1, g);
    let mut buf = vec![0u8; 200];
    let n = tx.build_announce(&mut buf).unwrap();
    let mut rm = rx_mem(&g, 2, 1); // one word: 64 blocks at most
    let mut rx = receiver(&mut rm, 2);
    assert_eq!(
        rx.handle_datagram(0, &buf[..n]),
        Ok(Event::Unsupported { geometry: g })
    );
    assert!(rx.session().is_none());
}

#[test]
fn packets_of_other_sessions_and_garbage_are_dropped_and_counted() {
    let g = Geometry::new(10_000, 64, 16).unwrap();
    let (mut ma, mut mb) = (tx_mem(&g), tx_mem(&g));
    let a = sender(&mut ma, 1, g);
    let b = sender(&mut mb, 2, g);
    let mut buf = vec![0u8; 200];
    let mut rm = rx_mem(&g, 2, 4);
    let mut rx = receiver(&mut rm, 3);
    // Data before any announce is not trusted.
    let payload = [0u8; 64];
    let d = wire::Data {
        head: DataHead {
            block: 0,
            esi: 0,
            encoding: Encoding::Raw,
            seq: 0,
            block_check: 0,
            coded_len: g.block_len(0) as u32,
        },
        payload: &payload,
    };
    let n = wire::write_data(&mut buf, 1, &d).unwrap();
    assert_eq!(rx.handle_datagram(0, &buf[..n]), Err(Dropped::NotBound));
    let n = a.build_announce(&mut buf).unwrap();
    assert!(matches!(
        rx.handle_datagram(0, &buf[..n]),
        Ok(Event::Bound { session: 1, .. })
    ));
    let n = b.build_announce(&mut buf).unwrap();
    assert_eq!(
        rx.handle_datagram(0, &buf[..n]),
        Err(Dropped::ForeignSession)
    );
    assert!(matches!(
        rx.handle_datagram(0, b"\x42\x42\x4e\x44 garbage"),
        Err(Dropped::Malformed(_))
    ));
    // A block index beyond the image is never used as an offset.
    let d = wire::Data {
        head: DataHead {
            block: 1000,
            esi: 0,
            encoding: Encoding::Raw,
            seq: 1,
            block_check: 0,
            coded_len: 64,
        },
        payload: &payload,
    };
    let n = wire::write_data(&mut buf, 1, &d).unwrap();
    assert!(matches!(
        rx.handle_datagram(0, &buf[..n]),
        Err(Dropped::Malformed(_))
    ));
    // A result ack for another client, or before any result, is ignored.
    let n = wire::write_result_ack(&mut buf, 1, 999).unwrap();
    assert_eq!(rx.handle_datagram(0, &buf[..n]), Err(Dropped::Unexpected));
    let s = rx.stats();
    assert_eq!(
        (s.unbound, s.foreign, s.malformed, s.unexpected),
        (1, 1, 2, 1)
    );
    assert_eq!(rx.progress().0, 0);
}

#[test]
fn a_local_failure_is_reported_to_the_server() {
    let g = Geometry::new(10_000, 64, 16).unwrap();
    let mut tm = tx_mem(&g);
    let mut tx = sender(&mut tm, 1, g);
    let mut buf = vec![0u8; 200];
    let n = tx.build_announce(&mut buf).unwrap();
    let mut rm = rx_mem(&g, 2, 4);
    let mut rx = receiver(&mut rm, 3);
    rx.handle_datagram(0, &buf[..n]).unwrap();
    rx.fail(10, FailReason::TargetTooSmall);
    let n = rx.poll_transmit(10, 0, &mut buf).unwrap();
    assert_eq!(buf[5], PacketType::Result as u8);
    tx.handle_datagram(10, 9, &buf[..n]).unwrap();
    assert_eq!(
        tx.client(0).map(|c| c.state),
        Some(bb_proto::sender::ClientState::Failed(
            FailReason::TargetTooSmall
        ))
    );
    assert!(!rx.finished(), "repeats until acknowledged");
    assert_eq!(
        tx.poll_transmit(20),
        Some(Transmit::ResultAck {
            to: 9,
            client_id: 3
        })
    );
    let n = tx.build_result_ack(3, &mut buf).unwrap();
    assert_eq!(rx.handle_datagram(30, &buf[..n]), Ok(Event::ResultAcked));
    assert!(rx.finished());
    assert_eq!(
        rx.outcome(),
        Some(Outcome::Failed(FailReason::TargetTooSmall))
    );
}

#[test]
fn losing_the_tail_of_the_transfer_does_not_stall() {
    // The client misses the last symbols the server sends in its forward pass, then the whole
    // first repair burst: its view of the data sequence never moves past them, because the
    // server has nothing more to send. The server must not ignore its reports forever.
    let g = Geometry::new(200_000, 1024, 64).unwrap();
    let img = image(200_000);
    let last = g.block_count() - 1;
    let last_k = g.block_k(last) as u16;
    let mut seen = std::collections::HashSet::new();
    let (out, outcome, _) = transfer(g, &img, &mut |b, e| {
        let first = seen.insert((b, e));
        // The last three sources, and the first three repairs (the whole first burst).
        first && b == last && (e + 3 >= last_k && e < last_k + 3)
    });
    assert_eq!(out, img);
    assert!(matches!(outcome, Outcome::Verified { .. }));
}

/// One source symbol of `block` (a zero payload: only the block's check on completion would
/// notice, and these tests never complete a block).
fn data_packet(g: &Geometry, session: u64, block: u32, esi: u16, seq: u32) -> Vec<u8> {
    let payload = vec![0u8; g.symbol_size as usize];
    let d = wire::Data {
        head: DataHead {
            block,
            esi,
            encoding: Encoding::Raw,
            seq,
            block_check: 0,
            coded_len: g.block_len(block) as u32,
        },
        payload: &payload,
    };
    let mut buf = vec![0u8; 2048];
    let n = wire::write_data(&mut buf, session, &d).unwrap();
    buf.truncate(n);
    buf
}

fn announce_packet(g: Geometry, session: u64) -> Vec<u8> {
    let mut tm = tx_mem(&g);
    let tx = sender(&mut tm, session, g);
    let mut buf = vec![0u8; 200];
    let n = tx.build_announce(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

const SECOND: u64 = 1_000_000;

#[test]
fn storage_with_more_slots_than_the_report_limit_is_refused() {
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, MAX_SLOTS + 1, 512);
    assert_eq!(
        Receiver::new(ReceiverConfig::new(1), storage(&mut m), 0).err(),
        Some(StorageError::TooManySlots {
            given: MAX_SLOTS + 1
        })
    );
}

#[test]
fn every_slot_of_a_full_storage_is_reported() {
    // MAX_SLOTS partial blocks, each missing k - 1 symbols: one report lists all of them.
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, MAX_SLOTS, 512);
    let mut rx = receiver(&mut m, 4);
    assert!(matches!(
        rx.handle_datagram(0, &announce_packet(g, 9)),
        Ok(Event::Bound { .. })
    ));
    assert_eq!(rx.slot_count(), MAX_SLOTS);
    let blocks: Vec<u32> = (0..MAX_SLOTS as u32).map(|i| 2 * i).collect();
    for (seq, &b) in blocks.iter().enumerate() {
        rx.handle_datagram(10, &data_packet(&g, 9, b, 0, seq as u32))
            .unwrap();
    }
    let mut buf = vec![0u8; 1500];
    // Past the holdoff and the report interval, and past the point where data is taken to
    // have stopped.
    let now = SECOND;
    let n = rx.poll_transmit(now, 0, &mut buf).unwrap();
    let packet = wire::open(&buf[..n]).unwrap();
    let status = packet.status().unwrap();
    let partial: Vec<(u32, u16)> = status
        .ranges()
        .filter(|r| r.deficit == g.k as u16 - 1)
        .flat_map(|r| (r.first..r.first + r.len as u32).map(move |b| (b, r.deficit)))
        .collect();
    let want: Vec<(u32, u16)> = blocks.iter().map(|&b| (b, g.k as u16 - 1)).collect();
    assert_eq!(partial, want);
}

#[test]
fn no_session_within_the_silence_timeout_gives_up_without_a_server() {
    let g = Geometry::new(10_000, 64, 16).unwrap();
    let mut m = rx_mem(&g, 2, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.silence_timeout_us = 5 * SECOND;
    let start = 7 * SECOND;
    let mut rx = receiver_with(&mut m, cfg, start);
    let deadline = start + 5 * SECOND;
    assert_eq!(rx.poll_timeout(start), Some(deadline));
    // Packets that bind nothing do not hold the deadline off.
    let _ = rx.handle_datagram(start + SECOND, b"BBND garbage");
    let _ = rx.handle_datagram(start + 2 * SECOND, &data_packet(&g, 9, 0, 0, 0));
    assert_eq!(rx.poll_timeout(start + 2 * SECOND), Some(deadline));
    assert_eq!(rx.handle_timeout(deadline - 1), None);
    assert_eq!(rx.outcome(), None);
    assert_eq!(rx.handle_timeout(deadline), Some(Expired::NoSession));
    assert_eq!(rx.outcome(), Some(Outcome::Failed(FailReason::Timeout)));
    assert!(rx.finished(), "no server to report to");
    assert_eq!(rx.poll_timeout(deadline), None);
    assert_eq!(rx.poll_transmit(deadline, 0, &mut [0u8; 1500]), None);
}

#[test]
fn silence_after_binding_fails_with_timeout_and_reports_it() {
    let g = Geometry::new(10_000, 64, 16).unwrap();
    let mut m = rx_mem(&g, 2, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.silence_timeout_us = 5 * SECOND;
    let mut rx = receiver_with(&mut m, cfg, 0);
    // Bound late: the deadline counts from the announce, not from the start.
    let bound = 4 * SECOND;
    rx.handle_datagram(bound, &announce_packet(g, 9)).unwrap();
    let mut buf = vec![0u8; 1500];
    let mut now = bound;
    // Only heartbeats go out; nothing ends before the deadline.
    while now < bound + 5 * SECOND {
        assert_eq!(rx.handle_timeout(now), None);
        while rx.poll_transmit(now, 0, &mut buf).is_some() {}
        let next = rx.poll_timeout(now).unwrap();
        assert!(next > now && next <= bound + 5 * SECOND);
        now = next;
    }
    assert_eq!(now, bound + 5 * SECOND);
    assert_eq!(rx.handle_timeout(now), Some(Expired::Stalled));
    assert_eq!(rx.outcome(), Some(Outcome::Failed(FailReason::Timeout)));
    assert!(!rx.finished(), "the failure is reported first");
    rx.poll_transmit(now, 0, &mut buf).unwrap();
    assert_eq!(buf[5], PacketType::Result as u8);
}

#[test]
fn announces_without_new_symbols_are_a_stall_once_data_has_flowed() {
    let g = Geometry::new(100_000, 64, 16).unwrap();
    let mut m = rx_mem(&g, 4, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.silence_timeout_us = 5 * SECOND;
    let mut rx = receiver_with(&mut m, cfg, 0);
    let announce = announce_packet(g, 9);
    rx.handle_datagram(0, &announce).unwrap();
    // Before any data, announces are the session's sign of life.
    for t in 1..=8 {
        rx.handle_datagram(t * SECOND, &announce).unwrap();
        assert_eq!(rx.handle_timeout(t * SECOND), None);
    }
    // Data flows, then only announces and a symbol already held keep coming.
    let last_new = 9 * SECOND;
    rx.handle_datagram(last_new, &data_packet(&g, 9, 3, 0, 0))
        .unwrap();
    let mut t = last_new;
    while t < last_new + 5 * SECOND {
        t += SECOND / 2;
        rx.handle_datagram(t, &announce).unwrap();
        assert_eq!(
            rx.handle_datagram(t, &data_packet(&g, 9, 3, 0, 1)),
            Err(Dropped::Duplicate)
        );
        let expired = rx.handle_timeout(t);
        if t < last_new + 5 * SECOND {
            assert_eq!(expired, None, "at {t}");
        } else {
            assert_eq!(expired, Some(Expired::Stalled));
        }
    }
    assert_eq!(rx.outcome(), Some(Outcome::Failed(FailReason::Timeout)));
}

#[test]
fn waiting_for_the_acknowledgement_is_bounded() {
    let g = Geometry::new(10_000, 64, 16).unwrap();
    let mut m = rx_mem(&g, 2, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.result_repeats = u32::MAX; // only the wait bound can end it
    cfg.ack_wait_us = 3 * SECOND;
    let mut rx = receiver_with(&mut m, cfg, 0);
    rx.handle_datagram(0, &announce_packet(g, 9)).unwrap();
    let failed_at = SECOND;
    rx.fail(failed_at, FailReason::IoError);
    let mut buf = vec![0u8; 1500];
    let mut now = failed_at;
    let mut sent_at = Vec::new();
    loop {
        if let Some(e) = rx.handle_timeout(now) {
            assert_eq!(e, Expired::AckWait);
            break;
        }
        while rx.poll_transmit(now, 0, &mut buf).is_some() {
            sent_at.push((now - failed_at) / 1000);
        }
        now = rx.poll_timeout(now).unwrap();
        assert!(now <= failed_at + 3 * SECOND);
    }
    assert_eq!(now, failed_at + 3 * SECOND);
    assert!(rx.finished());
    assert_eq!(rx.poll_timeout(now), None);
    // The first repeats come soon (a lost acknowledgement should not keep a machine of the
    // room waiting), then one every 100 ms until the wait ends.
    assert_eq!(
        sent_at[..6],
        [0, 20, 60, 140, 240, 340],
        "results at (ms) {sent_at:?}"
    );
    assert_eq!(sent_at.len(), 32, "results at (ms) {sent_at:?}");
    assert_eq!(rx.outcome(), Some(Outcome::Failed(FailReason::IoError)));
}

#[test]
fn a_zero_map_frees_the_slots_of_the_partial_blocks_it_names() {
    // An in-order sink with two slots holds partial blocks 1 and 2; the server then says they
    // are zero (a server that sent both). Their slots must not stay taken for good.
    let g = Geometry::new(64 * 4 * 4, 64, 4).unwrap(); // 4 blocks of 4 symbols
    let mut rm = rx_mem(&g, 2, 4);
    let mut cfg = ReceiverConfig::new(3);
    cfg.in_order = true;
    let mut rx = receiver_with(&mut rm, cfg, 0);
    rx.handle_datagram(0, &announce_packet(g, 9)).unwrap();
    for b in [1, 2] {
        rx.handle_datagram(0, &data_packet(&g, 9, b, 0, b)).unwrap();
    }
    assert_eq!(
        rx.handle_datagram(0, &data_packet(&g, 9, 3, 0, 3)),
        Err(Dropped::NoSlot),
        "both slots taken"
    );
    let mut buf = vec![0u8; 200];
    let zero = [wire::ZeroRange {
        first: 1,
        blocks: 2,
    }];
    let n = wire::write_zero_map(&mut buf, 9, 0, 4, &zero).unwrap();
    rx.handle_datagram(0, &buf[..n]).unwrap();
    assert_eq!(
        rx.handle_datagram(0, &data_packet(&g, 9, 3, 0, 4)),
        Ok(Event::Nothing)
    );
}

/// Runs sender `tx` against `rx` (lossless) until `stop` says so; returns the data packets
/// sent and collects the receiver's events. Panics if it never stops.
#[allow(clippy::too_many_arguments)]
fn pump(
    tx: &mut Sender<'_, u32>,
    rx: &mut Receiver<'_>,
    coded: &[(BlockSource, Vec<u8>)],
    out: &mut [u8],
    now: &mut u64,
    events: &mut Vec<Event>,
    stop: &mut dyn FnMut(&Receiver<'_>) -> bool,
) -> u64 {
    let mut buf = vec![0u8; 9000];
    let mut up = vec![0u8; 1500];
    let mut data = 0;
    for _ in 0..2_000_000 {
        if stop(rx) {
            return data;
        }
        tx.handle_timeout(*now);
        match tx.poll_transmit(*now) {
            None => *now = tx.poll_timeout(*now).expect("session open").max(*now + 1),
            Some(t) => {
                let len = match t {
                    Transmit::Announce => tx.build_announce(&mut buf).unwrap(),
                    Transmit::ZeroMap => tx.build_zero_map(&mut buf).unwrap(),
                    Transmit::Symbol { block, esi, seq } => {
                        data += 1;
                        tx.build_symbol(block, esi, seq, &coded[block as usize].1, &mut buf)
                            .unwrap()
                    }
                    Transmit::ResultAck { client_id, .. } => {
                        tx.build_result_ack(client_id, &mut buf).unwrap()
                    }
                };
                if let Ok(e) = rx.handle_datagram(*now, &buf[..len])
                    && e != Event::Nothing
                {
                    events.push(e);
                }
            }
        }
        while let Some(w) = rx.poll_write(&mut Zstd) {
            match w {
                Write::Data { offset, data, .. } => {
                    out[offset as usize..offset as usize + data.len()].copy_from_slice(data)
                }
                Write::Zeros { offset, len } => {
                    out[offset as usize..(offset + len) as usize].fill(0)
                }
            }
            rx.write_done();
        }
        if rx.needs_flush() {
            rx.flushed(*now, true);
        }
        while let Some(n) = rx.poll_transmit(*now, 12345, &mut up) {
            let _ = tx.handle_datagram(*now, 1, &up[..n]);
        }
    }
    panic!("the transfer did not reach its stop");
}

/// A sender that waits for one client, with every block of `img` given.
fn restarted_sender<'m>(
    m: &'m mut TxMem,
    session: u64,
    g: Geometry,
    coded: &[(BlockSource, Vec<u8>)],
    now: u64,
    key: Option<PresharedKey>,
) -> Sender<'m, u32> {
    let mut c = SenderConfig::new(session, g);
    c.key = key;
    c.rate_bps = 10_000_000_000;
    c.adapt_rate = false;
    c.min_clients = 1;
    let st = SenderStorage {
        repair_tree: &mut m.a,
        resend_tree: &mut m.b,
        next_repair_esi: &mut m.esi,
        block_checks: &mut m.checks,
        coded_len: &mut m.coded,
        clients: &mut m.clients,
    };
    let mut tx = Sender::new(c, st, now).unwrap();
    for (b, (src, _)) in coded.iter().enumerate() {
        tx.block_ready(b as u32, *src).unwrap();
    }
    tx
}

#[test]
fn a_restarted_server_of_the_same_image_is_resumed_and_sends_only_what_is_lacking() {
    resume_after_restart(None);
}

#[test]
fn a_keyed_client_resumes_under_the_new_sessions_keys() {
    resume_after_restart(Some(PresharedKey::from_bytes([9; 32])));
}

fn resume_after_restart(key: Option<PresharedKey>) {
    let g = Geometry::new(2_000_000, 1024, 64).unwrap();
    let img = image(2_000_000);
    let coded: Vec<_> = (0..g.block_count())
        .map(|b| code_block(&g, &img, b, false))
        .collect();
    let blocks = g.block_count();
    let mut rm = rx_mem(&g, 8, 64);
    let mut cfg = ReceiverConfig::new(5);
    cfg.key = key;
    let mut rx = receiver_with(&mut rm, cfg, 0);
    let mut out = vec![0xEEu8; img.len()];
    let mut events = Vec::new();
    let mut now = 0;
    let mut tm = tx_mem(&g);
    let mut first = restarted_sender(&mut tm, 77, g, &coded, now, key);
    let sent_first = pump(
        &mut first,
        &mut rx,
        &coded,
        &mut out,
        &mut now,
        &mut events,
        &mut |rx| rx.progress().0 * 10 >= blocks * 4,
    );
    let kept = rx.progress().0;
    assert!(matches!(events[0], Event::Bound { session: 77, .. }));
    // The server dies; another one starts on the same image 3 s later.
    now += 3 * SECOND;
    let mut tm2 = tx_mem(&g);
    let mut second = restarted_sender(&mut tm2, 78, g, &coded, now, key);
    let sent_second = pump(
        &mut second,
        &mut rx,
        &coded,
        &mut out,
        &mut now,
        &mut events,
        &mut |rx| rx.finished(),
    );
    assert!(events.contains(&Event::Resumed {
        session: 78,
        blocks_kept: kept
    }));
    assert!(rx.resumed());
    assert_eq!(rx.stats().resumes, 1);
    assert!(matches!(rx.outcome(), Some(Outcome::Verified { .. })));
    assert_eq!(out, img);
    assert!(
        second.forward_skipped(),
        "every client resumed: no forward pass"
    );
    assert_eq!(second.tally().resumed, 1);
    // Only the blocks lacking travel again: at most 5% over them.
    let lacking = g.source_symbols() - (kept as u64 * g.k as u64);
    assert!(
        sent_second as f64 <= lacking as f64 * 1.05,
        "second run sent {sent_second} data packets for {lacking} lacking symbols"
    );
    let total = (sent_first + sent_second) as f64 / g.source_symbols() as f64;
    assert!(total <= 1.1, "both runs sent {total:.3} x the image");
}

#[test]
fn a_new_session_is_taken_over_only_after_silence_and_only_with_the_same_digest() {
    let g = Geometry::new(200_000, 1024, 64).unwrap();
    let img = image(200_000);
    let coded: Vec<_> = (0..g.block_count())
        .map(|b| code_block(&g, &img, b, false))
        .collect();
    let mut other = img.clone();
    other[5] ^= 1;
    let other_coded: Vec<_> = (0..g.block_count())
        .map(|b| code_block(&g, &other, b, false))
        .collect();
    let announce = |session: u64, coded: &[(BlockSource, Vec<u8>)]| {
        let mut tm = tx_mem(&g);
        let tx = restarted_sender(&mut tm, session, g, coded, 0, None);
        let mut buf = vec![0u8; 200];
        let n = tx.build_announce(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let mut rm = rx_mem(&g, 8, 64);
    let mut rx = receiver(&mut rm, 5);
    assert!(matches!(
        rx.handle_datagram(0, &announce(1, &coded)),
        Ok(Event::Bound { session: 1, .. })
    ));
    // A live session is never left: another announce within the quiet time is foreign.
    assert_eq!(
        rx.handle_datagram(SECOND, &announce(2, &coded)),
        Err(Dropped::ForeignSession)
    );
    // After the quiet time: another image (its digest differs) is never taken.
    assert_eq!(
        rx.handle_datagram(4 * SECOND, &announce(3, &other_coded)),
        Err(Dropped::ForeignSession)
    );
    // A session that does not announce a digest cannot prove its image.
    let no_digest = {
        let mut tm = tx_mem(&g);
        let tx = sender(&mut tm, 4, g);
        let mut buf = vec![0u8; 200];
        let n = tx.build_announce(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    assert_eq!(
        rx.handle_datagram(4 * SECOND, &no_digest),
        Err(Dropped::ForeignSession)
    );
    // The same image is.
    assert_eq!(
        rx.handle_datagram(4 * SECOND, &announce(5, &coded)),
        Ok(Event::Resumed {
            session: 5,
            blocks_kept: 0
        })
    );
    assert_eq!(rx.session().unwrap().0, 5);
}

#[test]
fn a_receiver_bound_without_a_digest_does_not_resume() {
    let g = Geometry::new(200_000, 1024, 64).unwrap();
    let img = image(200_000);
    let coded: Vec<_> = (0..g.block_count())
        .map(|b| code_block(&g, &img, b, false))
        .collect();
    let mut rm = rx_mem(&g, 8, 64);
    let mut rx = receiver(&mut rm, 5);
    // Bound to a session whose digest was never announced.
    rx.handle_datagram(0, &announce_packet(g, 1)).unwrap();
    let mut tm = tx_mem(&g);
    let tx = restarted_sender(&mut tm, 2, g, &coded, 0, None);
    let mut buf = vec![0u8; 200];
    let n = tx.build_announce(&mut buf).unwrap();
    assert_eq!(
        rx.handle_datagram(10 * SECOND, &buf[..n]),
        Err(Dropped::ForeignSession)
    );
}

/// The status report due at `now` (there must be one).
fn due_report(rx: &mut Receiver<'_>, now: u64) -> wire::StatusHead {
    let mut buf = vec![0u8; 1500];
    let n = rx.poll_transmit(now, 0, &mut buf).expect("a report is due");
    wire::open(&buf[..n]).unwrap().status().unwrap().head
}

#[test]
fn each_report_counts_the_data_packets_received_since_the_previous_one() {
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, 8, 512);
    let mut rx = receiver(&mut m, 4);
    rx.handle_datagram(0, &announce_packet(g, 9)).unwrap();
    let report = |rx: &mut Receiver<'_>, now: u64| due_report(rx, now).interval_received;
    assert_eq!(report(&mut rx, 1), 0, "nothing received yet");
    for seq in 0..5u32 {
        rx.handle_datagram(10, &data_packet(&g, 9, 0, seq as u16, seq))
            .unwrap();
    }
    // Data arrived: a report is due each interval even with nothing lacking.
    assert_eq!(report(&mut rx, SECOND / 2), 5);
    for seq in 5..8u32 {
        let esi = (seq - 5) as u16;
        rx.handle_datagram(SECOND / 2 + 10, &data_packet(&g, 9, 1, esi, seq))
            .unwrap();
    }
    assert_eq!(report(&mut rx, SECOND), 3);
}

/// A report says how long before it was built its newest data packet arrived: from when
/// the kernel took that packet in (read later, while the process did not run), and not
/// from an older packet that arrived after it.
#[test]
fn a_report_says_how_long_ago_its_newest_packet_arrived() {
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, 8, 512);
    let mut rx = receiver(&mut m, 4);
    rx.handle_datagram(0, &announce_packet(g, 9)).unwrap();
    let report = |rx: &mut Receiver<'_>, now: u64| {
        let h = due_report(rx, now);
        (h.last_seq, h.last_seq_age_us)
    };
    assert_eq!(report(&mut rx, 1), (0, 0), "no data yet: no age");
    // Packets 0-3 arrived at 10-13 ms, all read at 30 ms; then a copy of packet 1 that
    // arrived at 14 ms: packet 3 stays the newest.
    for seq in 0..4u32 {
        let arrived = 10_000 + 1000 * seq as u64;
        rx.handle_datagram_at(30_000, arrived, &data_packet(&g, 9, 0, seq as u16, seq))
            .unwrap();
    }
    let _ = rx.handle_datagram_at(30_000, 14_000, &data_packet(&g, 9, 0, 1, 1));
    let half = SECOND / 2;
    assert_eq!(report(&mut rx, half), (3, (half - 13_000) as u32));
    // A stamp later than the read (a wall clock set back) counts as the read.
    rx.handle_datagram_at(half + 10, half + 5_000, &data_packet(&g, 9, 0, 4, 4))
        .unwrap();
    assert_eq!(report(&mut rx, SECOND), (4, (SECOND - half - 10) as u32));
}

#[test]
fn a_report_for_the_rate_alone_does_not_delay_a_deficit() {
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, 8, 512);
    let mut rx = receiver(&mut m, 4);
    rx.handle_datagram(0, &announce_packet(g, 9)).unwrap();
    let mut buf = vec![0u8; 1500];
    assert!(
        rx.poll_transmit(1, 0, &mut buf).is_some(),
        "the first report"
    );
    // Four of block 0's sixteen symbols arrive; a report goes out at once for the rate
    // control (block 0 is not due yet: symbols came within the holdoff).
    let t = 100_000;
    for seq in 0..4u32 {
        rx.handle_datagram(t, &data_packet(&g, 9, 0, seq as u16, seq))
            .unwrap();
    }
    let n = rx.poll_transmit(t + 1, 0, &mut buf).expect("a rate report");
    let p = wire::open(&buf[..n]).unwrap();
    let st = p.status().unwrap();
    assert_eq!((st.head.interval_received, st.ranges().count()), (4, 0));
    // 25 ms later block 0 is due (no symbol for more than the 20 ms holdoff): it is
    // reported then, although the report interval (100 ms, gate at least 50 ms) has not
    // passed since the rate report.
    let due = t + 25_000;
    let mut at = t + 1;
    let report = loop {
        at = rx.poll_timeout(at).unwrap().max(at + 1);
        assert!(at <= due + 20_000, "no deficit report by {at} us");
        if let Some(n) = rx.poll_transmit(at, 0, &mut buf) {
            break buf[..n].to_vec();
        }
    };
    let p = wire::open(&report).unwrap();
    let st = p.status().unwrap();
    assert_eq!(st.ranges().count(), 1);
    assert!(at < t + 1 + 50_000, "reported at {at} us");
}

/// The first data after a wait (the server starts a moment after the first report) is
/// reported as soon as the report interval allows, not a holdoff after the last look found
/// nothing to report: the server's rate probing waits for that first sample.
#[test]
fn the_first_data_after_a_wait_is_reported_once_the_interval_allows() {
    let g = Geometry::new(1 << 20, 64, 16).unwrap();
    let mut m = rx_mem(&g, 8, 512);
    // No heartbeat, and no report of the whole image as lacking after a silence, within the
    // test's time: only data makes a report due.
    let mut cfg = ReceiverConfig::new(4);
    cfg.heartbeat_us = 60 * SECOND;
    cfg.rereport_us = 60 * SECOND;
    let mut rx = receiver_with(&mut m, cfg, 0);
    let announce = announce_packet(g, 9);
    let interval_us = wire::open(&announce)
        .unwrap()
        .announce()
        .unwrap()
        .report_interval_ms as u64
        * 1000;
    rx.handle_datagram(0, &announce).unwrap();
    let mut buf = vec![0u8; 1500];
    assert!(
        rx.poll_transmit(1, 0, &mut buf).is_some(),
        "the first report"
    );
    // Past any jitter of the interval, nothing received: nothing to report yet.
    let t = 2 * interval_us;
    assert!(t < 60 * SECOND);
    assert_eq!(rx.poll_transmit(t, 0, &mut buf), None);
    rx.handle_datagram(t + 10, &data_packet(&g, 9, 0, 0, 0))
        .unwrap();
    // Client 4's share of the spread over a quarter interval is 4 us.
    let n = rx
        .poll_transmit(t + 20, 0, &mut buf)
        .expect("the first data is reported at once");
    let p = wire::open(&buf[..n]).unwrap();
    assert_eq!(p.status().unwrap().head.interval_received, 1);
}

/// A datagram stamped 3 ms before the read arrived 3 ms before it on the receiver's
/// clock; no stamp, one from the future or one older than 10 s (the wall clock was
/// set meanwhile) leaves the read time.
#[test]
fn a_receive_stamp_moves_the_arrival_back_by_the_wait_it_shows() {
    let (now, wall) = (50_000_000, 1_700_000_000_000_000);
    assert_eq!(arrival_from_stamp(now, wall, wall - 3_000), now - 3_000);
    assert_eq!(arrival_from_stamp(now, wall, wall), now);
    assert_eq!(arrival_from_stamp(now, wall, 0), now);
    assert_eq!(arrival_from_stamp(now, wall, wall + 5_000), now);
    assert_eq!(arrival_from_stamp(now, wall, wall - 10_000_001), now);
    assert_eq!(arrival_from_stamp(2_000, wall, wall - 3_000), 0);
}
