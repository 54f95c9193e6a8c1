//! The receiver against the real sender, in process: binding, memory limits, dropping what
//! is not its session, deficit reports and the final result.

use bb_proto::receiver::{
    Dropped, Event, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot,
};
use bb_proto::sender::{ClientInfo, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::{self, FailReason, Geometry, PacketType};

struct RxMem {
    done: Vec<u64>,
    pool: Vec<u8>,
    slots: Vec<Slot>,
    esi_at: Vec<u16>,
    scratch: Vec<u8>,
}

fn rx_mem(g: &Geometry, slots: usize, done_words: usize) -> RxMem {
    let (slot_bytes, esis, scratch) = Receiver::slot_needs(g);
    RxMem {
        done: vec![0; done_words],
        pool: vec![0; slot_bytes * slots],
        slots: vec![Slot::FREE; slots],
        esi_at: vec![0; esis * slots],
        scratch: vec![0; scratch],
    }
}

fn receiver(m: &mut RxMem, id: u64) -> Receiver<'_> {
    Receiver::new(
        ReceiverConfig::new(id),
        ReceiverStorage {
            done: &mut m.done,
            pool: &mut m.pool,
            slots: &mut m.slots,
            esi_at: &mut m.esi_at,
            scratch: &mut m.scratch,
        },
    )
}

struct TxMem {
    a: Vec<u16>,
    b: Vec<u16>,
    esi: Vec<u16>,
    checks: Vec<u32>,
    clients: Vec<Option<ClientInfo<u32>>>,
}

fn tx_mem(g: &Geometry) -> TxMem {
    let (tree, n) = SenderStorage::<u32>::words(g);
    TxMem {
        a: vec![0; tree],
        b: vec![0; tree],
        esi: vec![0; n],
        checks: vec![0; n],
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
        clients: &mut m.clients,
    };
    Sender::new(c, st, 0).unwrap()
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
    let mut tm = tx_mem(&g);
    let mut tx = sender(&mut tm, 77, g);
    let mut rm = rx_mem(&g, 8, 64);
    let mut rx = receiver(&mut rm, 5);
    let mut out = vec![0u8; img.len()];
    let mut buf = vec![0u8; 9000];
    let mut up = vec![0u8; 1500];
    let mut padded = vec![0u8; g.block_bytes() as usize];
    let mut now = 0u64;
    for _ in 0..2_000_000 {
        tx.handle_timeout(now);
        match tx.poll_transmit(now) {
            None => now = tx.poll_timeout(now).expect("session open").max(now + 1),
            Some(t) => {
                let (len, lost) = match t {
                    Transmit::Announce => (tx.build_announce(&mut buf).unwrap(), false),
                    Transmit::Symbol { block, esi, seq } => {
                        let k = g.block_k(block) as usize * g.symbol_size as usize;
                        let off = g.block_offset(block) as usize;
                        let l = g.block_len(block);
                        padded[..k].fill(0);
                        padded[..l].copy_from_slice(&img[off..off + l]);
                        (
                            tx.build_symbol(block, esi, seq, &padded[..k], &mut buf)
                                .unwrap(),
                            drop_data(block, esi),
                        )
                    }
                    Transmit::ResultAck { client_id, .. } => {
                        (tx.build_result_ack(client_id, &mut buf).unwrap(), false)
                    }
                };
                if !lost {
                    let _ = rx.handle_datagram(now, &buf[..len]);
                }
            }
        }
        while let Some(w) = rx.poll_write() {
            out[w.offset as usize..w.offset as usize + w.data.len()].copy_from_slice(w.data);
            let b = w.block;
            rx.write_done(b);
        }
        if rx.needs_flush() {
            rx.flushed(now, true);
        }
        while let Some(n) = rx.poll_transmit(now, 12345, &mut up) {
            tx.handle_datagram(now, 1, &up[..n]).unwrap();
        }
        if rx.finished() {
            let reports = rx.stats().reports;
            return (out, rx.outcome().unwrap(), reports);
        }
    }
    panic!("transfer did not finish");
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
        block: 0,
        esi: 0,
        seq: 0,
        block_check: 0,
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
        block: 1000,
        esi: 0,
        seq: 1,
        block_check: 0,
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
