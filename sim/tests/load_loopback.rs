//! bb-load against the real sender state machine over loopback UDP: a small server shell in
//! the test (bb-proto's Sender, real sockets, real time) and bb-load's 20 machines with 5%
//! loss each, from four source addresses. Every machine verifies, the sender records all 20
//! as verified, and bb-load's checker verified the image (zero blocks and zstd blocks
//! included).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bb_proto::sender::{Event, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::{Geometry, MAX_DATAGRAM};
use bb_sim::args::Options;
use bb_sim::image;
use bb_sim::load::{self, args::LoadOptions};

const MACHINES: u32 = 20;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn machines_verify_against_a_real_sender_over_loopback() {
    let o = Options {
        image_size: 3 << 20,
        symbol_size: 1408,
        k: 64,
        zero_blocks: 0.2,
        compressible: true,
        compress: Some(1),
        ..Options::default()
    };
    let g = Geometry::new(o.image_size, o.symbol_size, o.k).unwrap();
    let img = image::make_image(&o, &g);
    let coded = image::code_blocks(&img, &g, o.compress);

    let control = UdpSocket::bind("127.0.0.1:0").unwrap();
    control.set_nonblocking(true).unwrap();
    let control_port = control.local_addr().unwrap().port();
    let data_port = free_udp_port();
    let data_to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, data_port);
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();

    let lo = LoadOptions {
        server: Ipv4Addr::LOCALHOST,
        clients: MACHINES,
        loss: 0.05,
        // 5 machines per address: under the sender's bound of 8 unfinished clients each.
        sources: (1..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
        group: None,
        port: data_port,
        control_port,
        join_over_s: 0.2,
        timeout_s: 20.0,
        deadline_s: 60.0,
        seed: 11,
        summary_json: None,
        quiet: true,
    };
    let load = std::thread::spawn(move || load::run(&lo));

    let (tree, per_block) = SenderStorage::<SocketAddrV4>::words(&g);
    let (mut rt, mut st) = (vec![0u16; tree], vec![0u16; tree]);
    let (mut esi, mut checks) = (vec![0u16; per_block], vec![0u32; per_block]);
    let mut coded_len = vec![0u32; per_block];
    let mut clients = vec![None; 64];
    let mut cfg = SenderConfig::new(0x5eed, g);
    cfg.rate_bps = 100_000_000;
    cfg.wanted_clients = MACHINES;
    cfg.min_clients = MACHINES;
    cfg.start_deadline_us = Some(20_000_000);
    let storage = SenderStorage {
        repair_tree: &mut rt,
        resend_tree: &mut st,
        next_repair_esi: &mut esi,
        block_checks: &mut checks,
        coded_len: &mut coded_len,
        clients: &mut clients,
    };
    let start = Instant::now();
    let now = || start.elapsed().as_micros() as u64;
    let mut sender = Sender::new(cfg, storage, now()).unwrap();
    for (b, c) in coded.iter().enumerate() {
        sender.block_ready(b as u32, c.source).unwrap();
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ended = None;
    while ended.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no end in 60 s");
        let t = now();
        while let Ok((n, from)) = control.recv_from(&mut buf) {
            if let std::net::SocketAddr::V4(from) = from {
                let _ = sender.handle_datagram(t, from, &buf[..n]);
            }
        }
        sender.handle_timeout(t);
        while let Some(tx) = sender.poll_transmit(t) {
            let (len, to) = match tx {
                Transmit::Announce => (sender.build_announce(&mut buf).unwrap(), data_to),
                Transmit::ZeroMap => (sender.build_zero_map(&mut buf).unwrap(), data_to),
                Transmit::Symbol { block, esi, seq } => {
                    let data = &coded[block as usize].coded;
                    let len = sender.build_symbol(block, esi, seq, data, &mut buf);
                    (len.unwrap(), data_to)
                }
                Transmit::ResultAck { to, client_id } => {
                    (sender.build_result_ack(client_id, &mut buf).unwrap(), to)
                }
            };
            out.send_to(&buf[..len], to).unwrap();
        }
        while let Some(e) = sender.poll_event() {
            if let Event::Ended(end) = e {
                ended = Some(end);
            }
        }
        let wake = sender.poll_timeout(t).unwrap_or(t + 1000).min(t + 500);
        std::thread::sleep(Duration::from_micros(wake.saturating_sub(now()).max(50)));
    }
    assert_eq!(sender.verified_count(), MACHINES, "ended: {ended:?}");
    let report = match load.join().unwrap() {
        Ok(r) => r,
        Err(load::NetError(e)) => panic!("{e}"),
    };
    assert_eq!(report.verified(), MACHINES as usize, "{}", report.to_text());
    assert_eq!(report.checker_verified, Some(true));
    // The simulated loss was drawn, and machines reported from all four source addresses.
    assert!(report.machines.iter().all(|m| m.stats.lost > 0));
    let sources: std::collections::BTreeSet<_> = sender.clients().map(|c| *c.addr.ip()).collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
}
