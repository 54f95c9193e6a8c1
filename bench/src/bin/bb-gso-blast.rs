//! `bb-gso-blast`: the namespace lab's ceiling for one-to-many UDP, for `make bench-peers`.
//!
//! `send` pushes BYTES as sequence-numbered datagrams to a broadcast address as fast as the
//! kernel takes them, 32 datagrams per `send` with UDP GSO (`UDP_SEGMENT`): no repair, no
//! feedback, no rate control, so what the receivers count is the most any tool can get
//! through the lab. `recv` counts what arrives and how the losses cluster: with the lab's
//! bridge ports splitting GSO batches, loss runs are single datagrams; if whole batches
//! were dropped together, runs would be 32 datagrams long.
//!
//! Usage:
//!   bb-gso-blast send ADDR:PORT BYTES [--size DATAGRAM]   prints one `key=value` line
//!   bb-gso-blast recv PORT [--wait SECONDS] [--write FILE [--verify]] [--gro]
//!                                                         prints one `key=value` line
//!
//! The receiver gives up SECONDS after starting if nothing came (exit 1), and ends 0.5 s
//! after the last datagram or at the sender's end marker. With `--write` it also writes
//! each payload at its place in FILE, in-order runs gathered into 1 MiB writes, as a
//! receiver that keeps its image must: the ceiling for a tool that writes, on a lab whose
//! receivers share the CPU. With `--verify` as well it checks what it keeps as broadband's
//! clients must at the least (docs/PROTOCOL.md section 4): the CRC32 of each datagram and
//! the BLAKE3 content hash of each run before it is written: the ceiling for a tool that
//! writes and verifies. With `--gro` it asks for UDP GRO and splits each coalesced read
//! into its datagrams: the ceiling on links that coalesce (netlab's `--gro`).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bb_proto::{digest, wire};

/// Datagrams per GSO `send` (the kernel's limit is 64 segments and 64 KiB).
const GSO_BATCH: usize = 32;
/// Header: sequence number, then the number of data datagrams the sender will send.
const HEADER: usize = 16;
/// Sequence number of the end marker.
const END_MARKER: u64 = u64::MAX;
/// Receive batch for `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Bytes per read: a UDP GRO read holds up to 64 KiB.
const RECV_LEN: usize = 1 << 16;
/// linux/udp.h: UDP_GRO (not in the libc crate for glibc).
const UDP_GRO: libc::c_int = 104;
const DEFAULT_DATAGRAM: usize = 1400;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("recv") => recv(&args[1..]),
        Some("-h" | "--help") => {
            println!("{}", USAGE);
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("expected send or recv\n{USAGE}")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bb-gso-blast: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: bb-gso-blast send ADDR:PORT BYTES [--size DATAGRAM]\n       \
                     bb-gso-blast recv PORT [--wait SECONDS] [--write FILE [--verify]] [--gro]";

/// Bytes gathered before a write.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes payloads at their places in a file: a run of consecutive ones is gathered and
/// written at once; a payload that does not continue the run writes the run first.
/// With `verify`, each run is hashed (BLAKE3 content hash) before it is written; the
/// hashes are folded into `check`, so that the work shows in the output.
struct ChunkWriter<W: FileExt> {
    out: W,
    run: Vec<u8>,
    run_at: u64,
    verify: bool,
    check: u64,
}

impl<W: FileExt> ChunkWriter<W> {
    fn new(out: W, verify: bool) -> Self {
        Self {
            out,
            run: Vec::with_capacity(WRITE_CHUNK),
            run_at: 0,
            verify,
            check: 0,
        }
    }

    fn put(&mut self, offset: u64, payload: &[u8]) -> io::Result<()> {
        if !self.run.is_empty() && offset != self.run_at + self.run.len() as u64 {
            self.flush()?;
        }
        if self.run.is_empty() {
            self.run_at = offset;
        }
        self.run.extend_from_slice(payload);
        if self.run.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.verify {
            let hash = digest::content_hash(&self.run);
            self.check ^= u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
        }
        self.out.write_all_at(&self.run, self.run_at)?;
        self.run.clear();
        Ok(())
    }
}

/// Value of `--name VALUE` in `args`, parsed.
fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

fn setsockopt_int(sock: &UdpSocket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a valid socket fd and a pointer to an i32 that outlives the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn send(args: &[String]) -> Result<String, String> {
    let dest: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("send needs ADDR:PORT\n{USAGE}"))?;
    let bytes: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("send needs BYTES\n{USAGE}"))?;
    let size: usize = option(args, "--size", DEFAULT_DATAGRAM)?;
    if !(HEADER + 1..=8972).contains(&size) {
        return Err(format!("--size {size}: must be {}..8972", HEADER + 1));
    }
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    sock.set_broadcast(true)
        .map_err(|e| format!("SO_BROADCAST: {e}"))?;
    setsockopt_int(&sock, libc::SOL_UDP, libc::UDP_SEGMENT, size as i32)
        .map_err(|e| format!("UDP_SEGMENT (kernel without UDP GSO?): {e}"))?;
    // A deep send buffer keeps the kernel busy while this thread fills the next batch.
    let _ = setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);

    let count = bytes.div_ceil((size - HEADER) as u64);
    let mut batch = vec![0u8; size * GSO_BATCH];
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < count {
        let n = ((count - seq) as usize).min(GSO_BATCH);
        for (i, dgram) in batch.chunks_mut(size).take(n).enumerate() {
            dgram[..8].copy_from_slice(&(seq + i as u64).to_le_bytes());
            dgram[8..16].copy_from_slice(&count.to_le_bytes());
        }
        sock.send_to(&batch[..n * size], dest)
            .map_err(|e| format!("send: {e}"))?;
        seq += n as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    // The end marker, a few times (it may be lost like any datagram).
    setsockopt_int(&sock, libc::SOL_UDP, libc::UDP_SEGMENT, 0)
        .map_err(|e| format!("UDP_SEGMENT off: {e}"))?;
    let mut end = [0u8; HEADER];
    end[..8].copy_from_slice(&END_MARKER.to_le_bytes());
    end[8..].copy_from_slice(&count.to_le_bytes());
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        sock.send_to(&end, dest)
            .map_err(|e| format!("send end marker: {e}"))?;
    }
    let payload = count * (size - HEADER) as u64;
    Ok(format!(
        "datagrams={count} payload_bytes={payload} seconds={seconds:.4} mbit={:.1} cpu_s={:.3}",
        payload as f64 * 8.0 / seconds / 1e6,
        cpu_seconds()
    ))
}

/// Losses seen by one receiver, from the sequence numbers it got (in order; a datagram
/// older than the newest one seen is counted as received but does not end a run).
#[derive(Debug, Default, PartialEq)]
struct LossRuns {
    received: u64,
    /// Next sequence number expected.
    next: u64,
    lost: u64,
    runs: u64,
    longest: u64,
    /// Runs of at least [`GSO_BATCH`] datagrams: whole GSO batches dropped together.
    batch_runs: u64,
}

impl LossRuns {
    fn on_datagram(&mut self, seq: u64) {
        self.received += 1;
        if seq < self.next {
            // Reordered: it was counted as lost when the gap was seen.
            self.lost = self.lost.saturating_sub(1);
            return;
        }
        self.gap(seq - self.next);
        self.next = seq + 1;
    }

    /// The sender said it sent `count`: what never came after the last one is a run too.
    fn finish(&mut self, count: u64) {
        if count > self.next {
            self.gap(count - self.next);
            self.next = count;
        }
    }

    fn gap(&mut self, len: u64) {
        if len == 0 {
            return;
        }
        self.lost += len;
        self.runs += 1;
        self.longest = self.longest.max(len);
        if len >= GSO_BATCH as u64 {
            self.batch_runs += 1;
        }
    }

    fn mean_run(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.lost as f64 / self.runs as f64
        }
    }
}

fn recv(args: &[String]) -> Result<String, String> {
    let port: u16 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("recv needs PORT\n{USAGE}"))?;
    let wait: f64 = option(args, "--wait", 60.0)?;
    let verify = args.iter().any(|a| a == "--verify");
    if verify && !args.iter().any(|a| a == "--write") {
        return Err(format!(
            "--verify checks what --write keeps: give --write FILE too\n{USAGE}"
        ));
    }
    let mut crc_check = 0u32;
    let mut writer = match args.iter().position(|a| a == "--write") {
        None => None,
        Some(i) => {
            let path = args.get(i + 1).ok_or("--write needs a file")?;
            let file = File::create(path).map_err(|e| format!("{path}: {e}"))?;
            Some((ChunkWriter::new(file, verify), path))
        }
    };
    let sock = UdpSocket::bind(("0.0.0.0", port)).map_err(|e| format!("bind port {port}: {e}"))?;
    // As the lab's bb-client does: a deep buffer so that a busy core does not drop.
    let _ = setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20);
    if args.iter().any(|a| a == "--gro") {
        setsockopt_int(&sock, libc::SOL_UDP, UDP_GRO, 1)
            .map_err(|e| format!("UDP_GRO (kernel without UDP GRO?): {e}"))?;
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;

    let mut bufs = vec![[0u8; RECV_LEN]; RECV_BATCH];
    let mut runs = LossRuns::default();
    let mut payload_bytes = 0u64;
    let mut count = None;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = started;
    loop {
        let n = recv_batch(&sock, &mut bufs).map_err(|e| format!("recvmmsg: {e}"))?;
        let now = Instant::now();
        if n.is_empty() {
            match first {
                None if now.duration_since(started).as_secs_f64() > wait => {
                    return Err(format!("nothing received on port {port} in {wait} s"));
                }
                Some(_) if now.duration_since(last) > Duration::from_millis(500) => break,
                _ => continue,
            }
        }
        let mut ended = false;
        let datagrams = bufs
            .iter()
            .zip(&n)
            .flat_map(|(buf, &(len, segment))| buf[..len].chunks(segment.clamp(1, len.max(1))));
        for buf in datagrams {
            if buf.len() < HEADER {
                continue;
            }
            let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
            count = Some(u64::from_le_bytes(buf[8..16].try_into().unwrap()));
            if seq == END_MARKER {
                ended = true;
                continue;
            }
            first.get_or_insert(now);
            last = now;
            if verify {
                crc_check ^= wire::crc32(buf);
            }
            runs.on_datagram(seq);
            let payload = &buf[HEADER..];
            if let Some((w, path)) = &mut writer {
                w.put(seq * payload.len() as u64, payload)
                    .map_err(|e| format!("{path}: {e}"))?;
            }
            payload_bytes += payload.len() as u64;
        }
        if ended {
            break;
        }
    }
    let first = first.ok_or("only end markers were received")?;
    if let Some((w, path)) = &mut writer {
        w.flush().map_err(|e| format!("{path}: {e}"))?;
        last = Instant::now();
    }
    runs.finish(count.unwrap_or(runs.next));
    let seconds = last.duration_since(first).as_secs_f64().max(1e-6);
    let checked = match &writer {
        Some((w, _)) if verify => format!(" check={:016x}{crc_check:08x}", w.check),
        _ => String::new(),
    };
    Ok(format!(
        "received={} payload_bytes={payload_bytes} seconds={seconds:.4} goodput_mbit={:.1} lost={} \
         loss_pct={:.3} runs={} mean_run={:.2} longest_run={} batch_runs={}{checked}",
        runs.received,
        payload_bytes as f64 * 8.0 / seconds / 1e6,
        runs.lost,
        100.0 * runs.lost as f64 / (runs.received + runs.lost).max(1) as f64,
        runs.runs,
        runs.mean_run(),
        runs.longest,
        runs.batch_runs
    ))
}

/// One `recvmmsg` into `bufs`; the lengths of the datagrams read (empty on timeout).
/// One `recvmmsg`: each read's length and the size of the datagrams in it (its length
/// unless UDP GRO coalesced several).
fn recv_batch(sock: &UdpSocket, bufs: &mut [[u8; RECV_LEN]]) -> io::Result<Vec<(usize, usize)>> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // Room for UDP_GRO's control message (an int: 24 bytes) and more, 8-byte aligned.
    let mut control = vec![[0u64; 8]; bufs.len()];
    // SAFETY: zeroed mmsghdr is valid (null name/control); each points at one iovec and one
    // control buffer above.
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(control.iter_mut())
        .map(|(iov, ctl)| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = ctl.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = std::mem::size_of_val(ctl) as _;
            m
        })
        .collect();
    // SAFETY: msgs/iovs/bufs live across the call; vlen is msgs.len(); the socket has
    // SO_RCVTIMEO, so a blocking call returns within 100 ms.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(Vec::new())
            }
            _ => Err(e),
        };
    }
    let mut reads = Vec::with_capacity(n as usize);
    for m in &msgs[..n as usize] {
        if m.msg_hdr.msg_flags & libc::MSG_CTRUNC != 0 {
            // The segment size may be lost: the read could not be split and counted right.
            return Err(io::Error::other(
                "a control message was cut short (MSG_CTRUNC)",
            ));
        }
        let len = m.msg_len as usize;
        reads.push((len, gro_segment(&m.msg_hdr).unwrap_or(len)));
    }
    Ok(reads)
}

/// The segment size of a coalesced read: its UDP_GRO control message, if any.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    let int = std::mem::size_of::<libc::c_int>();
    let end = h.msg_control as usize + h.msg_controllen;
    // SAFETY: `h` is a header recvmmsg filled: msg_control/msg_controllen describe the
    // control bytes the kernel wrote. The macros find each header within them; its int is
    // read only when the header says it holds one and it ends in the buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let whole = (*c).cmsg_len as usize >= libc::CMSG_LEN(int as u32) as usize
                && data as usize + int <= end;
            if whole && (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                return usize::try_from(v).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64], count: u64) -> LossRuns {
        let mut r = LossRuns::default();
        for &s in seqs {
            r.on_datagram(s);
        }
        r.finish(count);
        r
    }

    #[test]
    fn single_losses_are_runs_of_one() {
        let r = feed(&[0, 2, 3, 5, 6], 7);
        assert_eq!(
            (r.received, r.lost, r.runs, r.longest, r.batch_runs),
            (5, 2, 2, 1, 0)
        );
        assert_eq!(r.mean_run(), 1.0);
    }

    #[test]
    fn a_dropped_gso_batch_is_one_long_run() {
        let seqs: Vec<u64> = (0..32).chain(64..96).collect();
        let r = feed(&seqs, 96);
        assert_eq!((r.lost, r.runs, r.longest, r.batch_runs), (32, 1, 32, 1));
    }

    #[test]
    fn losses_at_the_end_count() {
        let r = feed(&[0, 1], 5);
        assert_eq!((r.lost, r.runs, r.longest), (3, 1, 3));
    }

    #[test]
    fn payloads_land_at_their_places_in_and_out_of_order() {
        let path = std::env::temp_dir().join(format!("bb-gso-blast-test-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let mut w = ChunkWriter::new(file, false);
        // Datagrams 0, 1, 3, then 2 (late), then enough in order to pass a chunk.
        let size = 1000u64;
        let payload = |seq: u64| vec![(seq % 251) as u8; size as usize];
        let order: Vec<u64> = [0, 1, 3, 2]
            .into_iter()
            .chain(4..4 + WRITE_CHUNK as u64 / size + 2)
            .collect();
        for &seq in &order {
            w.put(seq * size, &payload(seq)).unwrap();
        }
        w.flush().unwrap();
        let got = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.len() as u64, order.len() as u64 * size);
        for seq in order {
            let at = (seq * size) as usize;
            assert_eq!(
                got[at..at + size as usize],
                payload(seq)[..],
                "datagram {seq}"
            );
        }
    }

    /// `--verify` hashes each run as it is written, whatever its length: a run cut short
    /// by a datagram out of order is hashed as it went to the file.
    #[test]
    fn verify_hashes_each_run_as_written() {
        let path = std::env::temp_dir().join(format!("bb-gso-blast-verify-{}", std::process::id()));
        let mut w = ChunkWriter::new(File::create(&path).unwrap(), true);
        let payload = |seq: u64| vec![seq as u8 + 1; 1000];
        for seq in [0, 1, 3] {
            w.put(seq * 1000, &payload(seq)).unwrap();
        }
        w.flush().unwrap();
        let first8 =
            |bytes: &[u8]| u64::from_le_bytes(digest::content_hash(bytes)[..8].try_into().unwrap());
        let run01 = [payload(0), payload(1)].concat();
        assert_eq!(w.check, first8(&run01) ^ first8(&payload(3)));
        assert_eq!(std::fs::read(&path).unwrap().len(), 4000);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_reordered_datagram_is_not_lost() {
        let r = feed(&[0, 2, 1, 3], 4);
        assert_eq!((r.received, r.lost), (4, 0));
    }
}
