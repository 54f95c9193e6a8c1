//! bb-client as a process against a tiny sender built on `bb_proto::sender::Sender`, over
//! 127.0.0.1 only. Each test uses its own ports.

use bb_proto::digest::content_hash;
use bb_proto::sender::{BlockSource, ClientInfo, Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::Geometry;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bb-client");

/// Distinct port pairs per test (data, control), away from the defaults.
fn ports() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 2000) as u16 * 10;
    let i = NEXT.fetch_add(2, Ordering::SeqCst);
    (base + i, base + i + 1)
}

fn random_image(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bb-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Serves `image` from `bind` (control port) to 127.0.0.1:`data_port` until one client
/// verified and was acknowledged, `stop` is set, or 60 s pass. Returns the verified count.
fn serve(
    image: Arc<Vec<u8>>,
    bind: SocketAddr,
    data_port: u16,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u32> {
    serve_from(image, bind, None, data_port, stop, u64::MAX)
}

/// As [`serve`], sending data and announces from `data_from` when given (a second address).
fn serve_from(
    image: Arc<Vec<u8>>,
    bind: SocketAddr,
    data_from: Option<SocketAddr>,
    data_port: u16,
    stop: Arc<AtomicBool>,
    max_symbols: u64,
) -> thread::JoinHandle<u32> {
    let sock = UdpSocket::bind(bind).unwrap();
    let data_sock = data_from.map(|a| UdpSocket::bind(a).unwrap());
    thread::spawn(move || {
        let dsock = data_sock.as_ref().unwrap_or(&sock);
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let dest: SocketAddr = format!("127.0.0.1:{data_port}").parse().unwrap();
        let g = Geometry::new(image.len() as u64, 1408, 512).unwrap();
        let (tree, per_block) = SenderStorage::<SocketAddr>::words(&g);
        let mut repair = vec![0u16; tree];
        let mut resend = vec![0u16; tree];
        let mut esi = vec![0u16; per_block];
        let mut checks = vec![0u32; per_block];
        let mut coded_len = vec![0u32; per_block];
        let mut clients: Vec<Option<ClientInfo<SocketAddr>>> = vec![None; 16];
        let mut cfg = SenderConfig::new(0x1234_5678_9abc_def0, g);
        cfg.wanted_clients = 1;
        cfg.rate_bps = 2_000_000_000;
        let t0 = Instant::now();
        let now = || t0.elapsed().as_micros() as u64;
        let mut s = Sender::new(
            cfg,
            SenderStorage {
                repair_tree: &mut repair,
                resend_tree: &mut resend,
                next_repair_esi: &mut esi,
                block_checks: &mut checks,
                coded_len: &mut coded_len,
                clients: &mut clients,
            },
            now(),
        )
        .unwrap();
        // Every block given at once, as from a prepared image: zero blocks as such, blocks
        // that shrink under zstd -3 compressed (frames kept for repairs), the others raw.
        let mut frames: Vec<Option<Vec<u8>>> = Vec::new();
        for b in 0..g.block_count() {
            let off = g.block_offset(b) as usize;
            let data = &image[off..off + g.block_len(b)];
            let hash = content_hash(data);
            let frame = zstd::bulk::compress(data, 3).unwrap();
            let src = if data.iter().all(|&x| x == 0) {
                frames.push(None);
                BlockSource::Zero
            } else if frame.len() < data.len() {
                let coded_len = frame.len() as u32;
                frames.push(Some(frame));
                BlockSource::Zstd { hash, coded_len }
            } else {
                frames.push(None);
                BlockSource::Raw { hash }
            };
            s.block_ready(b, src).unwrap();
        }
        let bb = g.block_bytes() as usize;
        let mut block = vec![0u8; bb];
        let mut pkt = vec![0u8; 9000];
        let mut rbuf = vec![0u8; 9000];
        let mut complete_at: Option<Instant> = None;
        let mut sent_symbols = 0u64;
        while t0.elapsed() < Duration::from_secs(60) && !stop.load(Ordering::SeqCst) {
            if complete_at.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
                break;
            }
            // Control packets.
            loop {
                sock.set_nonblocking(true).unwrap();
                match sock.recv_from(&mut rbuf) {
                    Ok((n, from)) => {
                        let _ = s.handle_datagram(now(), from, &rbuf[..n]);
                    }
                    Err(_) => break,
                }
            }
            s.handle_timeout(now());
            if s.session_end().is_some() && complete_at.is_none() {
                complete_at = Some(Instant::now());
            }
            match s.poll_transmit(now()) {
                Some(Transmit::Announce) if sent_symbols >= max_symbols => {}
                Some(Transmit::Announce) => {
                    let n = s.build_announce(&mut pkt).unwrap();
                    let _ = dsock.send_to(&pkt[..n], dest);
                }
                Some(Transmit::ZeroMap) => {
                    let n = s.build_zero_map(&mut pkt).unwrap();
                    let _ = dsock.send_to(&pkt[..n], dest);
                }
                Some(Transmit::Symbol { .. }) if sent_symbols >= max_symbols => {
                    // Gone silent (a crashed server): neither data nor announces.
                    thread::sleep(Duration::from_millis(1));
                }
                Some(Transmit::Symbol { block: b, esi, seq }) => {
                    sent_symbols += 1;
                    let sym = g.symbol_size as usize;
                    let data = match &frames[b as usize] {
                        Some(frame) => {
                            let data = &mut block[..frame.len().div_ceil(sym) * sym];
                            data.fill(0);
                            data[..frame.len()].copy_from_slice(frame);
                            data
                        }
                        None => {
                            let k = g.block_k(b) as usize;
                            let len = g.block_len(b);
                            let off = g.block_offset(b) as usize;
                            let data = &mut block[..k * sym];
                            data.fill(0);
                            data[..len].copy_from_slice(&image[off..off + len]);
                            data
                        }
                    };
                    let n = s.build_symbol(b, esi, seq, data, &mut pkt).unwrap();
                    let _ = dsock.send_to(&pkt[..n], dest);
                }
                Some(Transmit::ResultAck { to, client_id }) => {
                    let n = s.build_result_ack(client_id, &mut pkt).unwrap();
                    let _ = sock.send_to(&pkt[..n], to);
                }
                None => {
                    let until_us = s.poll_timeout(now()).unwrap_or(u64::MAX);
                    let wait = until_us.saturating_sub(now()).min(1000);
                    if wait > 0 {
                        sock.set_nonblocking(false).unwrap();
                        sock.set_read_timeout(Some(Duration::from_micros(wait.max(50))))
                            .unwrap();
                        if let Ok((n, from)) = sock.recv_from(&mut rbuf) {
                            let _ = s.handle_datagram(now(), from, &rbuf[..n]);
                        }
                    }
                }
            }
        }
        s.verified_count()
    })
}

fn run_client(args: &[&str], stdout: bool) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out, t.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn receives_a_4mib_image_to_a_file() {
    let (data, ctrl) = ports();
    let image = Arc::new(random_image(4 << 20, 1));
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(
        image.clone(),
        format!("127.0.0.1:{ctrl}").parse().unwrap(),
        data,
        stop.clone(),
    );
    let out_path = tmp("file.img");
    std::fs::write(&out_path, b"old contents, longer than nothing").unwrap();
    let (o, _) = run_client(
        &[
            "--port",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "--timeout",
            "10",
            "127.0.0.1",
            out_path.to_str().unwrap(),
        ],
        false,
    );
    stop.store(true, Ordering::SeqCst);
    let verified = server.join().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("bb-client: OK "), "{err}");
    assert!(err.contains(&format!(" {} bytes in ", 4 << 20)), "{err}");
    let got = std::fs::read(&out_path).unwrap();
    assert_eq!(got.len(), image.len());
    assert!(got == *image, "output differs from the image");
    assert_eq!(verified, 1, "the sender saw the verified result");
    let _ = std::fs::remove_file(&out_path);
}

#[test]
fn receives_an_odd_sized_image_to_stdout_in_order() {
    let (data, ctrl) = ports();
    let image = Arc::new(random_image(3 * 720_896 + 12_345, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(
        image.clone(),
        format!("127.0.0.1:{ctrl}").parse().unwrap(),
        data,
        stop.clone(),
    );
    let (o, _) = run_client(
        &[
            "-q",
            "-p",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "127.0.0.1",
            "-",
        ],
        true,
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        o.stdout == *image,
        "stdout differs from the image ({} vs {} bytes)",
        o.stdout.len(),
        image.len()
    );
    // -q: only the final line.
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Blocks of zeros, compressible text and random bytes; the last (partial) block is zero.
fn mixed_image() -> Vec<u8> {
    const BLOCK: usize = 720_896;
    let words = [
        &b"disk "[..],
        b"image ",
        b"block ",
        b"zero ",
        b"\n",
        b"ext4 ",
    ];
    let noise = random_image(BLOCK * 11, 9);
    let mut v = Vec::new();
    for (b, kind) in "tzzrtzzzztr".chars().enumerate() {
        match kind {
            'z' => v.resize(v.len() + BLOCK, 0),
            'r' => v.extend_from_slice(&noise[b * BLOCK..(b + 1) * BLOCK]),
            _ => {
                let end = v.len() + BLOCK;
                let mut i = b;
                while v.len() < end {
                    v.extend_from_slice(words[(noise[i] % 6) as usize]);
                    i += 1;
                }
                v.truncate(end);
            }
        }
    }
    v.resize(v.len() + 5000, 0);
    v
}

#[test]
fn zero_and_zstd_blocks_reach_a_file_with_holes_and_stdout_in_order() {
    let image = Arc::new(mixed_image());
    let receive = |output: &str, stdout: bool| {
        let (data, ctrl) = ports();
        let stop = Arc::new(AtomicBool::new(false));
        let server = serve(
            image.clone(),
            format!("127.0.0.1:{ctrl}").parse().unwrap(),
            data,
            stop.clone(),
        );
        let (o, _) = run_client(
            &[
                "-q",
                "-p",
                &data.to_string(),
                "--control-port",
                &ctrl.to_string(),
                "127.0.0.1",
                output,
            ],
            stdout,
        );
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        o
    };
    let out_path = tmp("mixed.img");
    std::fs::write(&out_path, vec![0xa5u8; 12 << 20]).unwrap();
    receive(out_path.to_str().unwrap(), false);
    let got = std::fs::read(&out_path).unwrap();
    assert!(got == *image, "the file differs from the image");
    // 6 of the 12 blocks are zero: they stay holes.
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&out_path).unwrap().blocks() * 512;
    assert!(
        allocated <= 5 * 720_896 + (256 << 10),
        "{allocated} bytes allocated for 5 blocks of data"
    );
    let _ = std::fs::remove_file(&out_path);

    let o = receive("-", true);
    assert!(
        o.stdout == *image,
        "stdout differs from the image ({} vs {} bytes)",
        o.stdout.len(),
        image.len()
    );
}

#[test]
fn no_server_exits_5_within_the_timeout() {
    let (data, ctrl) = ports();
    let out_path = tmp("none.img");
    // An existing file stays as it was: the client never bound to a session.
    std::fs::write(&out_path, b"precious").unwrap();
    let (o, t) = run_client(
        &[
            "--timeout",
            "1",
            "--port",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "127.0.0.1",
            out_path.to_str().unwrap(),
        ],
        false,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(t < Duration::from_millis(2500), "took {t:?}");
    assert!(err.contains("FAILED no server heard within 1 s"), "{err}");
    assert!(err.contains("7854") && err.contains("7855"), "{err}");
    assert_eq!(std::fs::read(&out_path).unwrap(), b"precious");
}

/// A client holding a key ignores a keyless server, says so once, and leaves its target
/// untouched; it ends like a client that heard no server.
#[test]
fn a_keyed_client_ignores_a_keyless_server_and_says_why() {
    let (data, ctrl) = ports();
    let img = Arc::new(random_image(1 << 20, 11));
    let stop = Arc::new(AtomicBool::new(false));
    let srv = serve(
        img,
        format!("127.0.0.1:{ctrl}").parse().unwrap(),
        data,
        stop.clone(),
    );
    let key_path = tmp("client.key");
    std::fs::write(&key_path, [b'a'; 64]).unwrap();
    let out_path = tmp("keyed.img");
    std::fs::write(&out_path, b"precious").unwrap();
    let (o, _) = run_client(
        &[
            "--timeout",
            "2",
            "--key-file",
            key_path.to_str().unwrap(),
            "--port",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "127.0.0.1",
            out_path.to_str().unwrap(),
        ],
        false,
    );
    stop.store(true, Ordering::SeqCst);
    assert_eq!(srv.join().unwrap(), 0);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert_eq!(
        err.matches("data heard, but not authenticated with your key")
            .count(),
        2,
        "said once while waiting, and in the final line: {err}"
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"precious");
    // A key file in neither format is a usage error naming the file.
    std::fs::write(&key_path, b"secret\n").unwrap();
    let (o, _) = run_client(
        &["--key-file", key_path.to_str().unwrap(), "127.0.0.1", "-"],
        false,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("client.key") && err.contains("64 hex digits"),
        "{err}"
    );
}

/// Data from another address than SERVER (another server on the LAN) is dropped and named
/// in the message; --any-server takes it.
#[test]
fn data_from_another_address_needs_any_server() {
    for any in [false, true] {
        let (data, ctrl) = ports();
        let image = Arc::new(random_image(1 << 20, 3));
        let stop = Arc::new(AtomicBool::new(false));
        let server = serve_from(
            image.clone(),
            format!("127.0.0.1:{ctrl}").parse().unwrap(),
            Some("127.0.0.2:0".parse().unwrap()),
            data,
            stop.clone(),
            u64::MAX,
        );
        let out_path = tmp(&format!("any-{any}.img"));
        let (d, c) = (data.to_string(), ctrl.to_string());
        let mut args = vec![
            "--timeout",
            "2",
            "-p",
            &d,
            "--control-port",
            &c,
            "127.0.0.1",
            out_path.to_str().unwrap(),
        ];
        if any {
            args.insert(0, "--any-server");
        }
        let (o, _) = run_client(&args, false);
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
        let err = stderr(&o);
        if any {
            assert_eq!(o.status.code(), Some(0), "{err}");
            assert!(std::fs::read(&out_path).unwrap() == *image);
        } else {
            assert_eq!(o.status.code(), Some(5), "{err}");
            assert!(
                err.contains("packets came from other addresses than 127.0.0.1"),
                "{err}"
            );
        }
        let _ = std::fs::remove_file(&out_path);
    }
}

/// A 1 MiB loop device receiving a 4 MiB image: refused with exit 3, nothing written.
#[test]
fn too_small_block_device_is_refused_before_any_write() {
    let backing = tmp("small-backing.img");
    let pattern = random_image(1 << 20, 5);
    std::fs::write(&backing, &pattern).unwrap();
    let Ok(l) = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output()
    else {
        eprintln!("skipped: losetup not available");
        return;
    };
    if !l.status.success() {
        eprintln!(
            "skipped: no loop device ({})",
            String::from_utf8_lossy(&l.stderr)
        );
        return;
    }
    let dev = String::from_utf8(l.stdout).unwrap().trim().to_string();
    let (data, ctrl) = ports();
    let image = Arc::new(random_image(4 << 20, 6));
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve(
        image,
        format!("127.0.0.1:{ctrl}").parse().unwrap(),
        data,
        stop.clone(),
    );
    let (o, _) = run_client(
        &[
            "-p",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "--timeout",
            "10",
            "127.0.0.1",
            &dev,
        ],
        false,
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("holds 1048576 bytes but the image is 4194304 bytes"),
        "{err}"
    );
    assert!(
        std::fs::read(&backing).unwrap() == pattern,
        "the device was written"
    );
    let _ = std::fs::remove_file(&backing);
}

#[test]
fn sigterm_exits_7() {
    let (data, ctrl) = ports();
    let mut c = Command::new(BIN)
        .args([
            "-p",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "127.0.0.1",
            "/dev/null",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let status = c.wait().unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(7), "{err}");
    assert!(err.contains("FAILED interrupted"), "{err}");
}

#[test]
fn usage_help_version() {
    let (o, _) = run_client(&["--help"], true);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for want in [
        "USAGE",
        "--group",
        "--interface",
        "--port",
        "--control-port",
        "--timeout",
        "--any-server",
        "--init",
        "EXIT CODES",
        "EXAMPLES",
        "(default: 7855)",
        "(default: 60)",
    ] {
        assert!(help.contains(want), "--help lacks {want}");
    }
    let (o, _) = run_client(&["--version"], true);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("bb-client "));
    for bad in [
        &["--port", "0", "10.0.0.1"][..],
        &["--frobnicate"],
        &[],
        &["10.0.0.1", "a", "b"],
    ] {
        let (o, _) = run_client(bad, false);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
}

/// The server goes silent midway: the client gives up after --timeout with exit 5.
#[test]
fn stall_after_start_exits_5() {
    let (data, ctrl) = ports();
    let image = Arc::new(random_image(4 << 20, 7));
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve_from(
        image,
        format!("127.0.0.1:{ctrl}").parse().unwrap(),
        None,
        data,
        stop.clone(),
        1000,
    );
    let out_path = tmp("stall.img");
    let (o, t) = run_client(
        &[
            "--timeout",
            "1",
            "-p",
            &data.to_string(),
            "--control-port",
            &ctrl.to_string(),
            "127.0.0.1",
            out_path.to_str().unwrap(),
        ],
        false,
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("no new data from 127.0.0.1 for 1 s after the transfer had started"),
        "{err}"
    );
    // 1 s of silence, then the result is repeated (unacknowledged) for a bounded time.
    assert!(t < Duration::from_secs(10), "took {t:?}");
    let _ = std::fs::remove_file(&out_path);
}

/// A mounted block device is refused before anything else (exit 3).
#[test]
fn mounted_block_device_is_refused() {
    let backing = tmp("fs.img");
    std::fs::write(&backing, vec![0u8; 16 << 20]).unwrap();
    let ok = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&backing)) {
        eprintln!("skipped: mkfs.ext4 not available");
        return;
    }
    let Ok(l) = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output()
    else {
        return;
    };
    if !l.status.success() {
        eprintln!("skipped: no loop device");
        return;
    }
    let dev = String::from_utf8(l.stdout).unwrap().trim().to_string();
    let mnt = tmp("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    if ok(Command::new("mount").arg(&dev).arg(&mnt)) {
        let (o, _) = run_client(&["--timeout", "1", "127.0.0.1", &dev], false);
        let _ = Command::new("umount").arg(&mnt).status();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains("is mounted on"), "{err}");
    } else {
        eprintln!("skipped: cannot mount");
    }
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    let _ = std::fs::remove_file(&backing);
}
