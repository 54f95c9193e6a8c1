//! Shared by the receiver targets: a bound receiver driven by a sequence of datagrams, with
//! its invariants checked after every step against a shadow of what it was told.

use bb_proto::receiver::Dropped;
use bb_proto::receiver::{
    Decompress, DecompressError, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot, Write,
};
use bb_proto::wire::auth::{self, Direction, MacKey, PresharedKey, SERVER_SENDER};
use bb_proto::wire::{self, Announce, AnnounceFlags, Geometry, PacketType};

/// Packet types given to datagrams with a made-valid header: the ones a client acts on,
/// data and zero maps twice as often, and a status (which a client never expects).
pub const CLIENT_TYPES: [u8; 7] = [
    PacketType::Data as u8,
    PacketType::ZeroMap as u8,
    PacketType::Data as u8,
    PacketType::ZeroMap as u8,
    PacketType::Announce as u8,
    PacketType::ResultAck as u8,
    PacketType::Status as u8,
];

/// Session id of the announce that binds the receiver.
pub const SESSION: u64 = 7;
/// Status and result packets one step may build at most: a report and a result are each
/// paced by their own timer, so more in one call of the same instant is a runaway loop.
const TRANSMITS_PER_STEP: usize = 2;

/// The fuzzer links no zstd: every frame is refused, which is what a corrupt frame gets, so
/// zstd blocks exercise the failure path (the block is dropped and fetched again).
struct NoZstd;

impl Decompress for NoZstd {
    fn decompress(&mut self, _src: &[u8], _dst: &mut [u8]) -> Result<usize, DecompressError> {
        Err(DecompressError)
    }
}

/// `pkt` opened as a client does: keyless, or checked under the server's key.
fn open_as_client<'a>(pkt: &'a [u8], server_key: Option<&MacKey>) -> Option<wire::Packet<'a>> {
    match server_key {
        None => wire::open(pkt).ok(),
        Some(k) => wire::open_keyed(pkt, |_, _| k).ok(),
    }
}

/// Binds a receiver to `g` (3 slots; `in_order` for a stream sink; holding `key` when
/// given, and then bound by an announce tagged with it), then feeds it `datagrams`
/// (bytes, and whether they carry the right key's tag), 1 ms apart, handling its timers, writes, flush (failing when `flush_fails`)
/// and transmissions after each.
/// Checks: no panic; every write inside the image, on block boundaries, of a block never
/// written before; zeros only for blocks a zero map of the session named; a bounded number
/// of writes and transmissions per step; progress never past the total; verified only with
/// every block written and flushed. With a key, a datagram without the right key's tag is
/// dropped as malformed and changes nothing: no write, no progress, no moved deadline.
pub fn run(
    g: Geometry,
    in_order: bool,
    flush_fails: bool,
    key: Option<[u8; 32]>,
    datagrams: impl Iterator<Item = (Vec<u8>, bool)>,
) {
    let blocks = g.block_count();
    let words = (blocks as usize).div_ceil(64);
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(&g);
    let block_bytes = g.block_bytes() as usize;
    let (mut done, mut zero, mut out) =
        (vec![0u64; words], vec![0u64; words], vec![0u8; block_bytes]);
    let (mut pool, mut slots, mut esi_at, mut scr) = (
        vec![0u8; slot_bytes * 3],
        vec![Slot::FREE; 3],
        vec![0u16; esis * 3],
        vec![0u8; scratch],
    );
    // Short deadlines, so that inputs of a few dozen datagrams reach the timers too.
    let mut cfg = ReceiverConfig::new(1);
    cfg.in_order = in_order;
    cfg.silence_timeout_us = 20_000;
    cfg.ack_wait_us = 30_000;
    cfg.key = key.map(PresharedKey::from_bytes);
    let server_key = key.map(|k| {
        let psk = PresharedKey::from_bytes(k);
        MacKey::derive(&psk, SESSION, Direction::FromServer, SERVER_SENDER)
    });

    let storage = ReceiverStorage {
        done: &mut done,
        pool: &mut pool,
        slots: &mut slots,
        esi_at: &mut esi_at,
        scratch: &mut scr,
        zero: &mut zero,
        out: &mut out,
    };
    let mut rx = Receiver::new(cfg, storage, 0).unwrap();
    let mut buf = [0u8; 256];
    let a = Announce {
        geometry: g,
        flags: AnnounceFlags::NONE,
        seq: 0,
        report_interval_ms: 100,
        digest: None,
    };
    let mut n = wire::write_announce(&mut buf, SESSION, &a).unwrap();
    if let Some(k) = &server_key {
        // Counter 0; the datagrams' tags count from 1.
        n = auth::sign(&mut buf, n, k, 0).unwrap();
    }
    rx.handle_datagram(0, &buf[..n]).unwrap();

    // The shadow: blocks written so far, blocks some zero map of the session named.
    let mut written = vec![false; blocks as usize];
    let mut named_zero = vec![false; blocks as usize];
    let mut dec = NoZstd;
    let mut now = 0u64;
    let mut tx = [0u8; 1500];
    let mut flushed_ok = false;
    for (pkt, authentic) in datagrams {
        now += 1000;
        if let Some(p) = open_as_client(&pkt, server_key.as_ref())
            && p.session() == SESSION
            && p.ty() == PacketType::ZeroMap
            && let Ok(m) = p.zero_map()
            && m.span_end <= blocks
        {
            for r in m.ranges() {
                named_zero[r.first as usize..r.end() as usize].fill(true);
            }
        }
        if key.is_some() && !authentic {
            let (deadline, progress, bytes) =
                (rx.poll_timeout(now), rx.progress(), rx.bytes_written());
            let r = rx.handle_datagram(now, &pkt);
            assert!(
                matches!(r, Err(Dropped::Malformed(_))),
                "a datagram without the key's tag was used: {r:?}"
            );
            assert!(
                rx.poll_write(&mut dec).is_none(),
                "a forged datagram led to a write"
            );
            assert_eq!(rx.progress(), progress);
            assert_eq!(rx.bytes_written(), bytes);
            assert_eq!(
                rx.poll_timeout(now),
                deadline,
                "a forged datagram moved a deadline"
            );
        } else {
            let _ = rx.handle_datagram(now, &pkt);
        }
        if rx.poll_timeout(now).is_some_and(|t| t <= now) {
            rx.handle_timeout(now);
        }
        let mut writes = 0u32;
        while let Some(w) = rx.poll_write(&mut dec) {
            writes += 1;
            assert!(writes <= blocks, "more writes in one step than blocks");
            let (first, end) = match w {
                Write::Data {
                    block,
                    offset,
                    data,
                } => {
                    assert!(block < blocks);
                    assert_eq!(offset, g.block_offset(block));
                    assert_eq!(data.len(), g.block_len(block));
                    (block, block + 1)
                }
                Write::Zeros { offset, len } => {
                    assert!(len > 0 && offset + len <= g.image_size);
                    assert_eq!(offset % block_bytes as u64, 0);
                    let first = (offset / block_bytes as u64) as u32;
                    let end = (offset + len).div_ceil(block_bytes as u64) as u32;
                    assert_eq!(
                        offset + len,
                        g.image_size.min(end as u64 * block_bytes as u64)
                    );
                    let named = &named_zero[first as usize..end as usize];
                    assert!(
                        named.iter().all(|&z| z),
                        "zeros over blocks {first}..{end} no zero map named"
                    );
                    (first, end)
                }
            };
            for b in first..end {
                assert!(!written[b as usize], "block {b} written twice");
                written[b as usize] = true;
            }
            rx.write_done();
        }
        if rx.needs_flush() {
            assert!(
                written.iter().all(|&w| w),
                "flush asked before every block was written"
            );
            rx.flushed(now, !flush_fails);
            flushed_ok |= !flush_fails;
        }
        let (blocks_done, total) = rx.progress();
        assert!(blocks_done <= total && total == blocks);
        assert!(rx.bytes_written() <= g.image_size);
        let mut sent = 0;
        while rx.poll_transmit(now, 0, &mut tx).is_some() {
            sent += 1;
            assert!(
                sent <= TRANSMITS_PER_STEP,
                "transmissions in one step do not stop"
            );
        }
        if let Some(Outcome::Verified { .. }) = rx.outcome() {
            assert!(written.iter().all(|&w| w), "verified with blocks unwritten");
            assert!(flushed_ok, "verified without a successful flush");
        }
        // Everything due was done: the next deadline lies ahead, or the shell would spin.
        assert!(
            rx.poll_timeout(now).is_none_or(|t| t > now),
            "a deadline stays due at {now}"
        );
    }
}
