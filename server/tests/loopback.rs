//! End to end on loopback: bb-server against small in-process clients built on
//! `bb_proto::receiver::Receiver`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use bb_proto::fec;
/// The test client's decompressor: zstd through the standard crate.
struct Zstd;

impl Decompress for Zstd {
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError> {
        zstd::bulk::decompress_to_buffer(src, dst).map_err(|_| DecompressError)
    }
}

use bb_proto::receiver::{
    Decompress, DecompressError, Event, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot,
    Write as BlockWrite,
};
use bb_proto::wire::FailReason;
use bb_proto::wire::auth::PresharedKey;

const BIN: &str = env!("CARGO_BIN_EXE_bb-server");

/// Distinct port pairs per test (tests run in parallel), away from the defaults.
fn ports() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 30000 + (std::process::id() % 2000) as u16 * 8;
    let i = NEXT.fetch_add(2, Ordering::SeqCst);
    (base + i, base + i + 1)
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bb-server-e2e-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct ClientResult {
    data: Vec<u8>,
    outcome: Option<Outcome>,
    acked: bool,
}

/// The client verified and wrote exactly `img`; `err` is the server's stderr, for the message.
fn assert_verified(r: &ClientResult, img: &[u8], err: &str) {
    assert!(
        matches!(r.outcome, Some(Outcome::Verified { .. })),
        "{:?}\n{err}",
        r.outcome
    );
    assert!(r.data == img, "image differs");
}

fn udp(addr: SocketAddrV4) -> UdpSocket {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    let _ = sock.set_recv_buffer_size(8 << 20);
    sock.set_reuse_address(true).unwrap();
    sock.bind(&addr.into()).unwrap();
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    sock
}

/// A minimal client: binds the data port, sends status to the server, writes into memory.
/// `fail_with` makes it report that failure as soon as it is bound.
fn client(
    data_port: u16,
    control: SocketAddrV4,
    fail_with: Option<FailReason>,
    limit: Duration,
) -> ClientResult {
    client_on(
        Ipv4Addr::LOCALHOST,
        None,
        data_port,
        control,
        fail_with,
        limit,
        None,
    )
}

/// A client whose status socket is bound to `local:data_port`; with `broadcast`, data
/// arrives on a second socket bound to 0.0.0.0:data_port.
fn client_on(
    local: Ipv4Addr,
    broadcast: Option<()>,
    data_port: u16,
    control: SocketAddrV4,
    fail_with: Option<FailReason>,
    limit: Duration,
    key: Option<PresharedKey>,
) -> ClientResult {
    let sock = udp(SocketAddrV4::new(local, data_port));
    let bsock = broadcast.map(|_| udp(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, data_port)));
    let socks: Vec<&UdpSocket> = [Some(&sock), bsock.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    if socks.len() > 1 {
        sock.set_nonblocking(true).unwrap();
    }

    let (k, s, slots) = (512usize, 1408usize, 16usize);
    let mut done = vec![0u64; 1 << 12];
    let mut pool = vec![0u8; slots * k * s];
    let mut slot_meta = vec![Slot::FREE; slots];
    let mut esi_at = vec![0u16; slots * k];
    let mut scratch = vec![0u8; fec::decode_scratch_bytes(k, s)];
    let mut zero = vec![0u64; 1 << 12];
    let mut block_out = vec![0u8; k * s];
    let storage = ReceiverStorage {
        done: &mut done,
        pool: &mut pool,
        slots: &mut slot_meta,
        esi_at: &mut esi_at,
        scratch: &mut scratch,
        zero: &mut zero,
        out: &mut block_out,
    };
    let mut cfg =
        ReceiverConfig::new(0x1234_0000 + data_port as u64 + ((u32::from(local) as u64) << 16));
    cfg.key = key;
    let mut rx = Receiver::new(cfg, storage, 0).unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; 9216];
    let mut out = Vec::new();
    let mut acked = false;
    let mut rand = 0x9e37_79b9u32;
    while start.elapsed() < limit {
        let now = start.elapsed().as_micros() as u64;
        // Drain every socket; the last one (data) waits up to 1 ms when all are empty.
        let mut quiet = 0;
        let mut i = 0;
        while quiet < socks.len() && i < 512 {
            let sock = socks[i % socks.len()];
            i += 1;
            let Ok(n) = sock.recv(&mut buf) else {
                quiet += 1;
                continue;
            };
            quiet = 0;
            match rx.handle_datagram(start.elapsed().as_micros() as u64, &buf[..n]) {
                Ok(Event::Bound { geometry, .. }) => {
                    out = vec![0u8; geometry.image_size as usize];
                    if let Some(r) = fail_with {
                        rx.fail(now, r);
                    }
                }
                Ok(Event::ResultAcked) => acked = true,
                _ => {}
            }
        }
        while let Some(w) = rx.poll_write(&mut Zstd) {
            match w {
                BlockWrite::Data { offset, data, .. } => {
                    out[offset as usize..offset as usize + data.len()].copy_from_slice(data)
                }
                // `out` starts zeroed: a zero range is already in place.
                BlockWrite::Zeros { .. } => {}
            }
            rx.write_done();
        }
        if rx.needs_flush() {
            rx.flushed(now, true);
        }
        let mut tx = [0u8; 1500];
        rand = rand.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        while let Some(n) = rx.poll_transmit(now, rand, &mut tx) {
            sock.send_to(&tx[..n], control).unwrap();
        }
        if rx.finished() {
            break;
        }
    }
    ClientResult {
        data: out,
        outcome: rx.outcome(),
        acked,
    }
}

fn server(args: &[&str], stdin: Stdio) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs the server on `image` to 127.0.0.1 with data and control `ports`, no client, until
/// it exits or `limit`: its exit code, stdout and stderr.
/// bb-server for one client on 127.0.0.1 (`--clients 1 --min-clients 1 --wait 10`) on
/// `ports`, with `extra` options before the address, serving `image`.
fn one_client_server(ports: (u16, u16), extra: &[&str], image: &Path) -> Child {
    let (dp, cp) = (ports.0.to_string(), ports.1.to_string());
    let one = ["--clients", "1", "--min-clients", "1", "--wait", "10"];
    let at = ["--port", &dp, "--control-port", &cp, "127.0.0.1"];
    let args: Vec<&str> = extra
        .iter()
        .copied()
        .chain(one)
        .chain(at)
        .chain([image.to_str().unwrap()])
        .collect();
    server(&args, Stdio::null())
}

fn serve_once(ports: (u16, u16), image: &Path, limit: Duration) -> (i32, String, String) {
    let (dp, cp) = (ports.0.to_string(), ports.1.to_string());
    let args = ["--port", &dp, "--control-port", &cp, "127.0.0.1"];
    let image = image.to_str().unwrap();
    let args: Vec<&str> = args.into_iter().chain([image]).collect();
    finish(server(&args, Stdio::null()), limit)
}

fn finish(mut c: Child, limit: Duration) -> (i32, String, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (st.code().unwrap_or(-1), out, err);
        }
        if start.elapsed() > limit {
            c.kill().unwrap();
            let mut err = String::new();
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("bb-server did not exit in {limit:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_client_gets_a_byte_exact_image_and_the_server_exits_0() {
    let dir = tmp("one");
    let img = image_bytes(4 << 20, 1);
    let path = dir.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let json = dir.join("summary.json");
    let (dp, cp) = ports();
    let srv = one_client_server((dp, cp), &["--summary-json", json.to_str().unwrap()], &path);
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(15),
    );
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    assert_verified(&r, &img, &err);
    assert!(r.acked, "result not acknowledged");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("client verified"), "{err}");
    assert!(err.contains("wire ratio"), "{err}");
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(
        j.contains("\"exit_code\": 0,")
            && j.contains("\"state\": \"OK\"")
            && j.contains("\"image_bytes\": 4194304,"),
        "{j}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_clients_receive_a_subnet_broadcast() {
    let dir = tmp("bcast");
    let img = image_bytes(2 << 20, 5);
    let path = dir.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let srv = server(
        &[
            "--clients",
            "2",
            "--min-clients",
            "2",
            "--wait",
            "10",
            "--rate",
            "20M",
            "--block-symbols",
            "128",
            "--port",
            &dps,
            "--control-port",
            &cps,
            "127.255.255.255",
            path.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let control = SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp);
    let clients: Vec<_> = (2..4u8)
        .map(|i| {
            std::thread::spawn(move || {
                client_on(
                    Ipv4Addr::new(127, 0, 0, i),
                    Some(()),
                    dp,
                    control,
                    None,
                    Duration::from_secs(15),
                    None,
                )
            })
        })
        .collect();
    let results: Vec<ClientResult> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    for r in &results {
        assert_verified(r, &img, &err);
        assert!(r.acked, "result not acknowledged");
    }
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("127.0.0.2:") && err.contains("127.0.0.3:"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_piped_image_is_spooled_and_a_late_client_catches_up() {
    let dir = tmp("pipe");
    // Not a multiple of the block size, nor of the symbol size.
    let img = image_bytes(3 * 1024 * 1024 + 777, 2);
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let mut srv = Command::new(BIN)
        .args([
            "--clients",
            "1",
            "--rate",
            "200M",
            "--port",
            &dps,
            "--control-port",
            &cps,
            "127.0.0.1",
            "-",
        ])
        .env("TMPDIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = srv.stdin.take().unwrap();
    let feed = img.clone();
    let w = std::thread::spawn(move || {
        for c in feed.chunks(65536) {
            stdin.write_all(c).unwrap();
        }
    });
    w.join().unwrap();
    // Join after the forward pass has begun: the missing blocks come from the carousel.
    std::thread::sleep(Duration::from_millis(60));
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(15),
    );
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    assert_verified(&r, &img, &err);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("spooling"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "spool file left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_client_makes_the_server_exit_1() {
    let dir = tmp("fail");
    let path = dir.join("disk.img");
    std::fs::write(&path, image_bytes(1 << 20, 3)).unwrap();
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let srv = server(
        &[
            "--clients",
            "1",
            "--min-clients",
            "1",
            "--port",
            &dps,
            "--control-port",
            &cps,
            "127.0.0.1",
            path.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        Some(FailReason::TargetTooSmall),
        Duration::from_secs(10),
    );
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    assert_eq!(r.outcome, Some(Outcome::Failed(FailReason::TargetTooSmall)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FAILED target too small"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_image_written_while_it_is_sent_makes_the_server_exit_3() {
    use std::io::BufRead;
    use std::os::unix::fs::FileExt;
    let dir = tmp("changed");
    let path = dir.join("disk.img");
    let img = image_bytes(1 << 20, 4);
    std::fs::write(&path, &img).unwrap();
    let (dp, cp) = ports();
    let mut srv = one_client_server((dp, cp), &[], &path);
    // Its stderr line by line: the image is open once "sending" is said.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(srv.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in stderr.lines() {
            let line = line.unwrap();
            if line.contains("bb-server: sending") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("bb-server said what it sends");
    // Past the filesystem's timestamp granularity, then one byte rewritten in place (what a
    // filesystem still mounted from the image does to its superblock).
    std::thread::sleep(Duration::from_millis(30));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[img[1024] ^ 0xff], 1024).unwrap();
    drop(f);
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(15),
    );
    let start = Instant::now();
    let code = loop {
        if let Some(st) = srv.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(10) {
            srv.kill().unwrap();
            panic!("bb-server did not exit in 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    // The client verified what the server read; the server says the image moved meanwhile.
    assert!(
        matches!(r.outcome, Some(Outcome::Verified { .. })),
        "{:?}\n{err}",
        r.outcome
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("was modified while it was served"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_keyed_server_serves_its_key_only_and_counts_what_is_not_authenticated() {
    let dir = tmp("keyed");
    let key_file = dir.join("bb.key");
    let _ = std::fs::remove_file(&key_file);
    let (code, _, err) = finish(
        server(&["--gen-key", key_file.to_str().unwrap()], Stdio::null()),
        Duration::from_secs(5),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = finish(
        server(&["--gen-key", key_file.to_str().unwrap()], Stdio::null()),
        Duration::from_secs(5),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let key = PresharedKey::parse(&std::fs::read(&key_file).unwrap()).unwrap();
    let bad_key_file = dir.join("short.key");
    std::fs::write(&bad_key_file, "0123\n").unwrap();
    let (code, _, err) = finish(
        server(
            &["--key-file", bad_key_file.to_str().unwrap(), "127.0.0.1"],
            Stdio::null(),
        ),
        Duration::from_secs(5),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("short.key") && err.contains("64 hex digits"),
        "{err}"
    );

    let img = image_bytes(2 << 20, 3);
    let path = dir.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let json = dir.join("summary.json");
    let (dp, cp) = ports();
    let srv = one_client_server(
        (dp, cp),
        &[
            "--key-file",
            key_file.to_str().unwrap(),
            "--summary-json",
            json.to_str().unwrap(),
        ],
        &path,
    );
    let control = SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp);
    // A forger sends status reports without a tag and with another key's, every 20 ms from
    // the server's start until the transfer is over (a fast transfer ends in well under a
    // second): dropped and counted.
    let transfer_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forging = {
        let transfer_over = transfer_over.clone();
        std::thread::spawn(move || {
            let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut buf = [0u8; 256];
            let head = bb_proto::wire::StatusHead {
                client_id: 99,
                report_seq: 0,
                last_seq: 0,
                blocks_done: 0,
                loss_ppm: 1_000_000,
                phase: bb_proto::wire::ClientPhase::Receiving,
                resumed: false,
                interval_received: 0,
                last_seq_age_us: 0,
            };
            let n = bb_proto::wire::write_status(&mut buf, 1, &head, &[]).unwrap();
            let mac = bb_proto::wire::auth::MacKey::derive(
                &PresharedKey::from_bytes([7; 32]),
                1,
                bb_proto::wire::auth::Direction::FromClient,
                99,
            );
            let mut tagged = buf;
            let m = bb_proto::wire::auth::sign(&mut tagged, n, &mac, 0).unwrap();
            // At most 20 s of forging, whatever happens to the transfer.
            for _ in 0..1000 {
                if transfer_over.load(Ordering::Relaxed) {
                    break;
                }
                forger.send_to(&buf[..n], control).unwrap();
                forger.send_to(&tagged[..m], control).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // A client with another key on its own address: it must never bind nor write.
    let other = std::thread::spawn(move || {
        client_on(
            Ipv4Addr::new(127, 0, 0, 3),
            Some(()),
            dp,
            control,
            None,
            Duration::from_secs(4),
            Some(PresharedKey::from_bytes([7; 32])),
        )
    });
    let r = client_on(
        Ipv4Addr::new(127, 0, 0, 2),
        Some(()),
        dp,
        control,
        None,
        Duration::from_secs(15),
        Some(key),
    );
    let wrong = other.join().unwrap();
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    transfer_over.store(true, Ordering::Relaxed);
    forging.join().unwrap();
    assert_verified(&r, &img, &err);
    assert_eq!(code, 0, "{err}");
    assert!(
        wrong.outcome.is_none() && wrong.data.is_empty(),
        "the wrong key bound"
    );
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.contains("\"keyed\": true,"), "{j}");
    assert!(json_u64(&j, "unauthenticated") >= 2, "{j}");
    assert!(err.contains("not authenticated, session keyed"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_image_and_network_errors_have_their_exit_codes() {
    let dir = tmp("codes");
    let (code, _, err) = finish(
        server(&["--rate", "fast", "127.0.0.1"], Stdio::null()),
        Duration::from_secs(5),
    );
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = finish(server(&["--help"], Stdio::null()), Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit status")
            && out.contains("zstd -dc img.zst | bb-server --clients 40 239.1.2.3")
    );
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = finish(
        server(&["127.0.0.1", empty.to_str().unwrap()], Stdio::null()),
        Duration::from_secs(5),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = finish(
        server(&["127.0.0.1"], Stdio::null()),
        Duration::from_secs(5),
    );
    assert_eq!(code, 3, "empty stdin: {err}");
    // The control port is taken.
    let (dp, cp) = ports();
    let _busy = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cp)).unwrap();
    let img = dir.join("disk.img");
    std::fs::write(&img, b"hello").unwrap();
    let (code, _, err) = serve_once((dp, cp), &img, Duration::from_secs(5));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("control port"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prepare_writes_a_side_file_and_a_stale_one_is_refused() {
    let dir = tmp("prepare");
    let path = dir.join("golden.img");
    let mut img = image_bytes(3 << 20, 9);
    img[..1 << 20].fill(0);
    std::fs::write(&path, &img).unwrap();
    let (code, _, err) = finish(
        server(&["--prepare", path.to_str().unwrap()], Stdio::null()),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("image digest"), "{err}");
    assert!(dir.join("golden.img.bbmap").exists());
    // The image is written to after it was prepared: a run refuses the side file.
    std::thread::sleep(Duration::from_millis(20));
    img[5] = 1;
    std::fs::write(&path, &img).unwrap();
    let (code, _, err) = serve_once(ports(), &path, Duration::from_secs(10));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("refused") && err.contains("--prepare") && err.contains("golden.img"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Like a disk: 16 blocks of 720 KiB (the default geometry): 1, 6, 7, 13 and the short last
/// one text, 2, 8 and 14 noise, the other 8 zero.
fn disk_like() -> Vec<u8> {
    let bb = 512 * 1408;
    let mut img = vec![0u8; 15 * bb + 5000];
    let noise = image_bytes(bb, 11);
    for b in 0..16 {
        let end = ((b + 1) * bb).min(img.len());
        let block = &mut img[b * bb..end];
        match b {
            1 | 6 | 7 | 13 | 15 => {
                let t = format!("block {b}: /usr/share/doc text, compresses well. ");
                for (i, x) in block.iter_mut().enumerate() {
                    *x = t.as_bytes()[i % t.len()];
                }
            }
            2 | 8 | 14 => block.copy_from_slice(&noise[..block.len()]),
            _ => {}
        }
    }
    img
}

/// Writes `img` as a sparse file: zero blocks are left as holes.
fn write_sparse(path: &std::path::Path, img: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(img.len() as u64).unwrap();
    for (i, c) in img.chunks(65536).enumerate() {
        if c.iter().any(|&x| x != 0) {
            f.write_all_at(c, (i * 65536) as u64).unwrap();
        }
    }
}

/// Runs bb-server on `args` + IMAGE with one in-process client; returns the client's image,
/// the exit code, stderr and the JSON summary.
fn send_to_one(
    dir: &std::path::Path,
    extra: &[&str],
    image: &str,
) -> (ClientResult, i32, String, String) {
    let json = dir.join("summary.json");
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let mut args = vec![
        "--clients",
        "1",
        "--min-clients",
        "1",
        "--wait",
        "10",
        "--port",
        &dps,
        "--control-port",
        &cps,
        "--summary-json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["127.0.0.1", image]);
    let srv = server(&args, Stdio::null());
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(20),
    );
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    let j = std::fs::read_to_string(&json).unwrap_or_default();
    (r, code, err, j)
}

fn json_u64(j: &str, field: &str) -> u64 {
    let at = j
        .find(&format!("\"{field}\": "))
        .unwrap_or_else(|| panic!("{field} in {j}"));
    j[at + field.len() + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_sparse_compressible_image_goes_as_zero_ranges_and_compressed_blocks() {
    let dir = tmp("disk");
    let img = disk_like();
    let path = dir.join("disk.img");
    write_sparse(&path, &img);
    let (r, code, err, j) = send_to_one(&dir, &[], path.to_str().unwrap());
    assert_verified(&r, &img, &err);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_u64(&j, "zero_blocks"), 8, "{j}");
    assert_eq!(json_u64(&j, "zstd_blocks"), 5, "{j}");
    assert_eq!(json_u64(&j, "raw_blocks"), 3, "{j}");
    // Three blocks of noise and little else travel (plus repairs and control).
    let sent = json_u64(&j, "bytes_sent");
    assert!(sent < 5 * 512 * 1408, "sent {sent}\n{j}");
    assert!(err.contains("8 zero (not sent)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_zstd_image_file_is_recognised_decoded_and_sent_compressed() {
    let dir = tmp("zst");
    let img = disk_like();
    // Named without .zst: the magic bytes decide.
    let path = dir.join("golden");
    std::fs::write(&path, zstd::bulk::compress(&img, 3).unwrap()).unwrap();
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let srv = Command::new(BIN)
        .args([
            "--clients",
            "1",
            "--port",
            &dps,
            "--control-port",
            &cps,
            "127.0.0.1",
            path.to_str().unwrap(),
        ])
        .env("TMPDIR", &spool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(20),
    );
    let (code, _, err) = finish(srv, Duration::from_secs(10));
    assert_verified(&r, &img, &err);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("zstd-compressed") && err.contains("(zstd, spooled)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_prepared_image_is_sent_with_its_digest_known_from_the_side_file() {
    let dir = tmp("prepared");
    let img = disk_like();
    let path = dir.join("golden.img");
    std::fs::write(&path, &img).unwrap();
    let map = dir.join("golden.map");
    let (code, _, err) = finish(
        server(
            &[
                "--prepare",
                path.to_str().unwrap(),
                "--map",
                map.to_str().unwrap(),
            ],
            Stdio::null(),
        ),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let (r, code, err, j) = send_to_one(
        &dir,
        &["--map", map.to_str().unwrap()],
        path.to_str().unwrap(),
    );
    assert_verified(&r, &img, &err);
    assert_eq!(code, 0, "{err}");
    // The digest the side file gave before sending is the one the session ended with.
    let before = err
        .split("using side file")
        .nth(1)
        .and_then(|t| t.split("image digest ").nth(1))
        .map(|t| &t[..64])
        .unwrap_or_else(|| panic!("{err}"));
    assert!(j.contains(&format!("\"digest\": \"{before}\"")), "{j}");
    assert!(j.contains("golden.map"), "{j}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Throughput on loopback: `cargo test --release -p bb-server --test loopback -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_256mib() {
    let dir = tmp("speed");
    let mb: usize = std::env::var("BB_SPEED_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rate = std::env::var("BB_SPEED_RATE").unwrap_or_else(|_| "10G".into());
    let img = image_bytes(mb << 20, 4);
    let path = dir.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    let json = dir.join("summary.json");
    let (dp, cp) = ports();
    let (dps, cps) = (dp.to_string(), cp.to_string());
    let t = Instant::now();
    let srv = server(
        &[
            "--clients",
            "1",
            "--min-clients",
            "1",
            "--rate",
            &rate,
            "--port",
            &dps,
            "--control-port",
            &cps,
            "--summary-json",
            json.to_str().unwrap(),
            "127.0.0.1",
            path.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let r = client(
        dp,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, cp),
        None,
        Duration::from_secs(300),
    );
    let secs = t.elapsed().as_secs_f64();
    let (code, _, err) = finish(srv, Duration::from_secs(30));
    assert!(r.data == img);
    assert_eq!(code, 0, "{err}");
    eprintln!("{err}");
    eprintln!(
        "{mb} MiB in {secs:.2} s: {:.0} MB/s",
        (mb << 20) as f64 / secs / 1e6
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
