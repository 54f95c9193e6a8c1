//! Shared by the sender targets: a sender over an image whose blocks the input makes zero
//! or raw, fed control datagrams between transmissions, its invariants checked each step.

use bb_proto::deficit::DeficitTree;
use bb_proto::digest::content_hash;
use bb_proto::sender::{BlockSource, Dropped, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::auth::{Direction, MacKey, PresharedKey, SERVER_SENDER};
use bb_proto::wire::{self, Geometry, Packet, PacketType};

use super::datagrams::{datagrams, keyed_datagrams};

const SESSION: u64 = 9;

/// `pkt` (which the sender built) opened as a client does: keyless, or under the server's key.
fn open_as_client<'a>(pkt: &'a [u8], server_key: Option<&MacKey>) -> Packet<'a> {
    match server_key {
        None => wire::open(pkt).unwrap(),
        Some(k) => wire::open_keyed(pkt, |_, _| k).unwrap(),
    }
}

/// The first input byte says which blocks are zero (bit b for block b), the rest is
/// datagrams (common/datagrams.rs: `datagrams` without a key, `keyed_datagrams` with one).
/// Checks: never a panic; every scheduled symbol belongs to a non-zero block; every zero
/// map names exactly the zero blocks of its span; the transmissions, events and deadlines
/// of one instant are bounded. With `key`: the sender holds it, everything it sends opens
/// under the server's key, and a datagram without the right client key's tag is dropped as
/// malformed with no event and no moved deadline.
pub fn run(input: &[u8], key: Option<[u8; 32]>) {
    let Some((&zero_mask, input)) = input.split_first() else {
        return;
    };
    let g = Geometry::new(64 * 8 * 6 + 100, 64, 8).unwrap();
    let n = g.block_count();
    let is_zero = |b: u32| zero_mask >> b & 1 == 1;
    let tree = DeficitTree::storage_len(n);
    let (mut a, mut b, mut esi, mut checks, mut coded_len, mut clients) = (
        vec![0u16; tree],
        vec![0u16; tree],
        vec![0u16; n as usize],
        vec![0u32; n as usize],
        vec![0u32; n as usize],
        vec![None; 4],
    );
    let st = SenderStorage {
        repair_tree: &mut a,
        resend_tree: &mut b,
        next_repair_esi: &mut esi,
        block_checks: &mut checks,
        coded_len: &mut coded_len,
        clients: &mut clients,
    };
    let mut cfg = SenderConfig::new(SESSION, g);
    cfg.key = key.map(PresharedKey::from_bytes);
    let mut s = Sender::<u32>::new(cfg, st, 0).unwrap();
    let server_key = key.map(|k| {
        let psk = PresharedKey::from_bytes(k);
        MacKey::derive(&psk, SESSION, Direction::FromServer, SERVER_SENDER)
    });
    // Each raw block's coded bytes: its image bytes padded with zeros to whole symbols.
    let mut coded = Vec::with_capacity(n as usize);
    for block in 0..n {
        let len = g.block_len(block);
        let mut bytes = vec![0u8; g.block_k(block) as usize * 64];
        bytes[..len].fill(0x5a ^ block as u8);
        let src = if is_zero(block) {
            BlockSource::Zero
        } else {
            BlockSource::Raw {
                hash: content_hash(&bytes[..len]),
            }
        };
        s.block_ready(block, src).unwrap();
        coded.push(bytes);
    }
    assert_eq!(s.blocks_ready(), n);
    let mut buf = vec![0u8; 2000];
    let mut now = 0u64;
    // Bounded work per step: the pacer's bucket holds at most this many of the smallest
    // datagrams, plus one result ack per client row, an announce and a zero map.
    let depth = s.config().burst_bytes.max(2 * 9000);
    let per_step = (depth / (wire::DATA_OVERHEAD as u64 + 64)) as usize + 4 + 2;
    // Events of the setup (the session started) are taken first: after a forged datagram
    // there must be none.
    let mut events = 0;
    while s.poll_event().is_some() {
        events += 1;
        assert!(events <= 64, "events do not stop");
    }
    let types = [PacketType::Status as u8, PacketType::Result as u8];
    let pkts: Vec<(u8, Vec<u8>, bool)> = match &key {
        None => datagrams(input, SESSION, &types)
            .into_iter()
            .map(|(f, p)| (f, p, true))
            .collect(),
        Some(k) => keyed_datagrams(input, SESSION, &types, k, 0)
            .into_iter()
            .map(|d| (d.flags, d.bytes, d.authentic))
            .collect(),
    };
    for (fix, pkt, authentic) in pkts {
        if key.is_some() && !authentic {
            let deadline = s.poll_timeout(now);
            let r = s.handle_datagram(now, u32::from(fix), &pkt);
            assert!(
                matches!(r, Err(Dropped::Malformed(_))),
                "a datagram without the key's tag was used: {r:?}"
            );
            assert!(
                s.poll_event().is_none(),
                "a forged datagram led to an event"
            );
            assert_eq!(
                s.poll_timeout(now),
                deadline,
                "a forged datagram moved a deadline"
            );
        } else {
            let _ = s.handle_datagram(now, u32::from(fix), &pkt);
        }
        if s.poll_timeout(now).is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        let mut sent = 0usize;
        while let Some(t) = s.poll_transmit(now) {
            sent += 1;
            assert!(
                sent <= per_step,
                "more than {per_step} transmissions in one instant"
            );
            match t {
                Transmit::Symbol { block, esi, seq } => {
                    assert!(block < n && !is_zero(block), "symbol of block {block}");
                    let len = s
                        .build_symbol(block, esi, seq, &coded[block as usize], &mut buf)
                        .unwrap();
                    let d = open_as_client(&buf[..len], server_key.as_ref())
                        .data()
                        .unwrap();
                    assert_eq!((d.head.block, d.head.esi), (block, esi));
                }
                Transmit::ZeroMap => {
                    let len = s.build_zero_map(&mut buf).unwrap();
                    let m = open_as_client(&buf[..len], server_key.as_ref())
                        .zero_map()
                        .unwrap();
                    assert!(m.span_end <= n);
                    let mut named = m.span_first;
                    for r in m.ranges() {
                        assert!((named..r.first).all(|b| !is_zero(b)), "zero block left out");
                        assert!(
                            (r.first..r.end() as u32).all(is_zero),
                            "data block named zero"
                        );
                        named = r.end() as u32;
                    }
                    assert!(
                        (named..m.span_end).all(|b| !is_zero(b)),
                        "zero block left out"
                    );
                }
                Transmit::Announce => {
                    let len = s.build_announce(&mut buf).unwrap();
                    open_as_client(&buf[..len], server_key.as_ref())
                        .announce()
                        .unwrap();
                }
                Transmit::ResultAck { client_id, .. } => {
                    let len = s.build_result_ack(client_id, &mut buf).unwrap();
                    assert_eq!(
                        open_as_client(&buf[..len], server_key.as_ref()).result_ack(),
                        Ok(client_id)
                    );
                }
            }
        }
        let mut events = 0;
        while s.poll_event().is_some() {
            events += 1;
            assert!(events <= 64, "events do not stop");
        }
        // Time moves on by what the flags say: to the next deadline (which must lie ahead
        // once everything due was sent), or by a few milliseconds.
        if fix & 0x80 != 0 {
            match s.poll_timeout(now) {
                Some(t) => {
                    assert!(t > now, "a deadline in the past after the transmissions");
                    now = t;
                }
                None => return,
            }
        } else {
            now += 1000 * (1 + (fix >> 1 & 7) as u64);
        }
    }
}
