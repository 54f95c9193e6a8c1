//! bb-load: many simulated machines speak the real protocol to a real bb-server over real
//! UDP sockets, from one process.
//!
//! One data socket receives what the server sends (broadcast, multicast or unicast) once;
//! every datagram is parsed and validated once (CRC and fields), fed to the shared
//! [`checker::Checker`] (a real bb-proto receiver that decodes and checks every block) and
//! then handed to each machine, which draws its own loss. Each machine sends its status
//! reports and its result from one of several control sockets, one per local source
//! address, so that a server bounding its clients per address still takes them all.

pub mod args;
pub mod checker;
pub mod machine;

use std::fmt::Write as _;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bb_proto::receiver::{Outcome, arrival_from_stamp};
use bb_proto::wire::{self, PacketType};
use socket2::{Domain, Protocol, Socket, Type};

use args::LoadOptions;
use checker::Checker;
use machine::{Machine, Seen};

/// Machines' timers run at least this often.
const TICK_US: u64 = 1_000;
/// Receive buffer asked for the data socket: a tick's worth of a fast server and more.
const DATA_RCVBUF: usize = 16 << 20;

/// What a run ends with.
pub struct LoadReport {
    pub machines: Vec<Machine>,
    pub elapsed_s: f64,
    /// CPU seconds bb-load used.
    pub cpu_s: f64,
    pub datagrams: u64,
    pub malformed: u64,
    pub send_errors: u64,
    /// The checker's own verdict on the whole image (None: it never completed).
    pub checker_verified: Option<bool>,
    pub checker_check_failures: u64,
    /// The run stopped at --deadline with machines unfinished.
    pub deadline_hit: bool,
}

impl LoadReport {
    /// Machines whose outcome is Verified.
    pub fn verified(&self) -> usize {
        self.machines
            .iter()
            .filter(|m| matches!(m.outcome(), Some(Outcome::Verified { .. })))
            .count()
    }

    /// One line per kind of ending, then every machine that did not verify (at most 20).
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let n = self.machines.len();
        let mut failed = std::collections::BTreeMap::<&str, usize>::new();
        let mut unfinished = 0;
        for m in &self.machines {
            match m.outcome() {
                Some(Outcome::Verified { .. }) => {}
                Some(Outcome::Failed(r)) => *failed.entry(r.as_str()).or_default() += 1,
                None => unfinished += 1,
            }
        }
        let acked = self.machines.iter().filter(|m| m.acked()).count();
        let (reports, ranges, symbols, lost, dups) =
            self.machines
                .iter()
                .fold((0u64, 0u64, 0u64, 0u64, 0u64), |a, m| {
                    (
                        a.0 + m.stats.reports,
                        a.1 + m.stats.ranges,
                        a.2 + m.stats.symbols,
                        a.3 + m.stats.lost,
                        a.4 + m.stats.duplicates,
                    )
                });
        let _ = writeln!(
            o,
            "bb-load: {n} machines: {} verified ({acked} acknowledged by the server), {} failed, {unfinished} unfinished, in {:.1} s (CPU {:.1} s){}",
            self.verified(),
            failed.values().sum::<usize>(),
            self.elapsed_s,
            self.cpu_s,
            if self.deadline_hit {
                " (stopped at --deadline)"
            } else {
                ""
            }
        );
        for (r, c) in &failed {
            let _ = writeln!(o, "  failed: {c} {r}");
        }
        let _ = writeln!(
            o,
            "  received {} datagrams ({} malformed), checker {} ({} check failures); per machine: {:.0} symbols, {:.0} duplicates, {:.0} lost by simulation, {:.1} reports ({:.2} ranges each), {} send errors",
            self.datagrams,
            self.malformed,
            match self.checker_verified {
                Some(true) => "verified the image",
                Some(false) => "FAILED the image digest",
                None => "did not complete the image",
            },
            self.checker_check_failures,
            symbols as f64 / n.max(1) as f64,
            dups as f64 / n.max(1) as f64,
            lost as f64 / n.max(1) as f64,
            reports as f64 / n.max(1) as f64,
            ranges as f64 / reports.max(1) as f64,
            self.send_errors
        );
        for m in self
            .machines
            .iter()
            .filter(|m| !matches!(m.outcome(), Some(Outcome::Verified { .. })))
            .take(20)
        {
            let (d, b) = m.progress();
            let what = match m.outcome() {
                Some(Outcome::Failed(r)) => r.as_str(),
                _ => "unfinished",
            };
            if b == 0 {
                let _ = writeln!(
                    o,
                    "  machine {:016x}: {what}: no session announced (is the server sending to this namespace's port, or in its --group?)",
                    m.id
                );
            } else {
                let _ = writeln!(o, "  machine {:016x}: {what} at {d}/{b} blocks", m.id);
            }
        }
        o
    }

    /// JSON: totals and one row per machine.
    pub fn to_json(&self) -> String {
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"machines\": {},", self.machines.len());
        let _ = writeln!(o, "  \"verified\": {},", self.verified());
        let _ = writeln!(o, "  \"elapsed_s\": {:.3},", self.elapsed_s);
        let _ = writeln!(o, "  \"cpu_s\": {:.3},", self.cpu_s);
        let _ = writeln!(o, "  \"datagrams\": {},", self.datagrams);
        let _ = writeln!(o, "  \"malformed\": {},", self.malformed);
        let _ = writeln!(
            o,
            "  \"checker_verified\": {},",
            self.checker_verified
                .map_or("null".to_string(), |v| v.to_string())
        );
        o.push_str("  \"clients\": [");
        for (i, m) in self.machines.iter().enumerate() {
            let state = match m.outcome() {
                Some(Outcome::Verified { .. }) => "OK",
                Some(Outcome::Failed(r)) => r.as_str(),
                None => "unfinished",
            };
            let (d, b) = m.progress();
            let _ = write!(
                o,
                "{}\n    {{\"id\": \"{:016x}\", \"source\": {}, \"state\": \"{state}\", \"acked\": {}, \"blocks\": {d}, \"of\": {b}, \"reports\": {}, \"loss_ppm\": {}}}",
                if i == 0 { "" } else { "," },
                m.id,
                m.source,
                m.acked(),
                m.stats.reports,
                m.loss_ppm()
            );
        }
        o.push_str("\n  ]\n}\n");
        o
    }
}

fn data_socket(o: &LoadOptions) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // Root may exceed net.core.rmem_max; otherwise best effort (capped by the kernel).
    if setsockopt_int(
        &s,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        DATA_RCVBUF as libc::c_int,
    )
    .is_err()
    {
        let _ = s.set_recv_buffer_size(DATA_RCVBUF);
    }
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, o.port).into())?;
    if let Some(g) = o.group {
        s.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED)?;
    }
    // Kernel receive stamps, so that the machines' reports time their newest packet by its
    // arrival: this one process reads for a thousand machines and falls behind in bursts,
    // which the server would read as queues on the link. Without them the read stands in.
    let _ = setsockopt_int(&s, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
    let u: UdpSocket = s.into();
    u.set_read_timeout(Some(Duration::from_micros(TICK_US)))?;
    Ok(u)
}

fn setsockopt_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor and a pointer to a c_int that lives for the call,
    // with its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram from `data` into `buf`: its length and the kernel's receive stamp in
/// wall-clock microseconds (0 without one). Waits at most the socket's read timeout.
fn recv_stamped(data: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, u64)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec message and headroom; u64s keep it aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: a zeroed msghdr is valid (no name, no buffers) until the fields below are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at `iov` (over `buf`) and `control`, both live and writable for the
    // call, with their lengths.
    let r = unsafe { libc::recvmsg(data.as_raw_fd(), &mut msg, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp_us = 0;
    if msg.msg_flags & libc::MSG_CTRUNC == 0 {
        // SAFETY: recvmsg filled `control` with msg_controllen bytes of cmsg headers; the
        // CMSG_* macros walk them without passing that end, and a timestamp is read only
        // from a header long enough to hold one.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let h = &*c;
                let holds = h.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize;
                if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS && holds
                {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    stamp_us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
    }
    Ok((r as usize, stamp_us))
}

/// Microseconds on the wall clock, the clock of receive stamps.
fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// CPU seconds this process used so far (user + system), from getrusage(2).
fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is valid; getrusage only writes into it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0.0;
        }
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// A socket error, with what was being done and how to fix it.
pub struct NetError(pub String);

/// Runs the machines until all are finished or the deadline passes.
pub fn run(o: &LoadOptions) -> Result<LoadReport, NetError> {
    let data = data_socket(o).map_err(|e| {
        NetError(format!(
            "cannot listen on UDP port {}{}: {e} (is a bb-client or another bb-load listening here? use --port)",
            o.port,
            o.group.map(|g| format!(" in group {g}")).unwrap_or_default()
        ))
    })?;
    let mut controls = Vec::new();
    for &src in &o.sources {
        let s = UdpSocket::bind(SocketAddrV4::new(src, 0)).map_err(|e| {
            NetError(format!(
                "cannot bind a control socket to {src}: {e} (is {src} an address of this machine? add it with `ip addr add {src}/24 dev eth0`)"
            ))
        })?;
        s.set_nonblocking(true)
            .map_err(|e| NetError(format!("control socket: {e}")))?;
        controls.push(s);
    }
    let server = SocketAddrV4::new(o.server, o.control_port);
    let n = o.clients as usize;
    let mut seed = o.seed;
    let mut next = || {
        // splitmix64: ids and machine seeds from one seed.
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let timeout_us = (o.timeout_s * 1e6) as u64;
    let join_us = (o.join_over_s * 1e6) as u64;
    let mut machines: Vec<Machine> = (0..n)
        .map(|i| {
            let id = next();
            let start = join_us * i as u64 / n as u64;
            Machine::new(id, i % controls.len(), o.loss, next(), timeout_us, start)
        })
        .collect();
    let by_id: std::collections::HashMap<u64, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();

    let start = Instant::now();
    let now_us = || start.elapsed().as_micros() as u64;
    let deadline_us = (o.deadline_s * 1e6) as u64;
    let mut checker: Option<Checker> = None;
    let no_hashes: Vec<Option<[u8; 32]>> = Vec::new();
    let mut buf = vec![0u8; 9216];
    let mut out = vec![0u8; 1500];
    let (mut datagrams, mut malformed, mut send_errors) = (0u64, 0u64, 0u64);
    let mut next_tick = 0u64;
    let mut next_progress = 2_000_000u64;
    let mut deadline_hit = false;
    loop {
        // Data until the next tick is due.
        loop {
            match recv_stamped(&data, &mut buf) {
                Ok((len, stamp)) => {
                    datagrams += 1;
                    let t = now_us();
                    let pkt = &buf[..len];
                    let Ok(p) = wire::open(pkt) else {
                        malformed += 1;
                        continue;
                    };
                    let sid = p.session();
                    let seen = match p.ty() {
                        PacketType::Announce => match p.announce() {
                            Ok(a) => {
                                if checker.is_none() {
                                    checker = Some(Checker::new(a.geometry, t));
                                }
                                Seen::Announce(sid, a)
                            }
                            Err(_) => {
                                malformed += 1;
                                continue;
                            }
                        },
                        PacketType::Data => match p.data() {
                            Ok(d) => {
                                let arrived = arrival_from_stamp(t, wall_clock_us(), stamp);
                                Seen::Data(sid, d.head, arrived)
                            }
                            Err(_) => {
                                malformed += 1;
                                continue;
                            }
                        },
                        PacketType::ZeroMap => match p.zero_map() {
                            Ok(m) => Seen::ZeroMap(sid, m),
                            Err(_) => {
                                malformed += 1;
                                continue;
                            }
                        },
                        _ => continue,
                    };
                    if let Some(c) = checker.as_mut() {
                        c.handle(t, pkt);
                    }
                    let hashes = checker.as_ref().map_or(&no_hashes[..], |c| c.hashes());
                    for m in machines.iter_mut() {
                        m.handle(t, &seen, hashes);
                    }
                    if t >= next_tick {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(NetError(format!("receiving data: {e}"))),
            }
        }
        let t = now_us();
        if t < next_tick {
            continue;
        }
        next_tick = t + TICK_US;
        // Acknowledgements come back to the control socket the result left from.
        for c in &controls {
            while let Ok((len, _)) = c.recv_from(&mut buf) {
                let Ok(p) = wire::open(&buf[..len]) else {
                    malformed += 1;
                    continue;
                };
                if p.ty() == PacketType::ResultAck
                    && let Ok(id) = p.result_ack()
                    && let Some(&i) = by_id.get(&id)
                {
                    machines[i].handle(t, &Seen::Ack(p.session(), id), &no_hashes);
                }
            }
        }
        let hashes = checker.as_ref().map_or(&no_hashes[..], |c| c.hashes());
        let mut all_finished = true;
        for m in machines.iter_mut() {
            if let Some(len) = m.poll(t, hashes, &mut out)
                && controls[m.source].send_to(&out[..len], server).is_err()
            {
                send_errors += 1;
            }
            all_finished &= m.finished(t);
        }
        if all_finished {
            break;
        }
        if t >= deadline_us {
            deadline_hit = true;
            break;
        }
        if !o.quiet && t >= next_progress {
            next_progress = t + 2_000_000;
            let verified = machines
                .iter()
                .filter(|m| matches!(m.outcome(), Some(Outcome::Verified { .. })))
                .count();
            let bound = machines.iter().filter(|m| m.progress().1 > 0).count();
            let (done, blocks) = machines.iter().fold((0u64, 0u64), |a, m| {
                (a.0 + m.progress().0 as u64, a.1 + m.progress().1 as u64)
            });
            eprintln!(
                "bb-load: {:.0} s: {bound} of {n} bound, {:.1}% of blocks, {verified} verified, {datagrams} datagrams, checker {} blocks",
                t as f64 / 1e6,
                done as f64 * 100.0 / blocks.max(1) as f64,
                checker.as_ref().map_or(0, |c| c.blocks_done())
            );
        }
    }
    Ok(LoadReport {
        machines,
        elapsed_s: start.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds(),
        datagrams,
        malformed,
        send_errors,
        checker_verified: checker.as_ref().and_then(|c| c.verified()),
        checker_check_failures: checker.as_ref().map_or(0, |c| c.stats().check_failures),
        deadline_hit,
    })
}
