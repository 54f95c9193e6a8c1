//! The receive path: target, socket, and the loop around `bb_proto::receiver::Receiver`.

use crate::args::{Iface, Options, Output};
use crate::fmt::{Buf, Hex, Ip, Lossy, mb_per_s, percent, percent_ppm, seconds};
use crate::mem::{self, RX_BATCH};
use crate::mounts;
use crate::os::{self, CPath, Errno, Fd, Kind};
use bb_proto::receiver::{Event, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot};
use bb_proto::wire::{FailReason, Geometry};
use core::fmt::Write;

/// Exit codes (documented in --help).
pub const EXIT_OK: i32 = 0;
pub const EXIT_VERIFY: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_TARGET: i32 = 3;
pub const EXIT_IO: i32 = 4;
pub const EXIT_NO_SERVER: i32 = 5;
pub const EXIT_TOO_LARGE: i32 = 6;
pub const EXIT_INTERRUPTED: i32 = 7;

pub type Line = Buf<512>;

/// How the run ended: exit code and the final line's text (after "OK " / "FAILED ").
pub struct Finish {
    pub code: i32,
    pub line: Line,
}

impl Finish {
    fn fail(code: i32, f: impl FnOnce(&mut Line)) -> Finish {
        let mut line = Line::new();
        f(&mut line);
        Finish { code, line }
    }
}

/// Writes a message line to stderr.
pub fn say(args: core::fmt::Arguments<'_>) {
    let mut l = Buf::<640>::new();
    let _ = l.write_fmt(args);
    l.bytes(b"\n");
    let _ = os::write_all(2, l.as_bytes());
}

/// Where the image goes.
enum Sink {
    /// Written at offsets: a regular file (length set at the end) or a block device (size
    /// checked before any write).
    Seek { fd: Fd, block_dev_size: Option<u64> },
    /// Written strictly in order: stdout, a FIFO or a character device.
    Stream { fd: Fd, pos: u64 },
}

impl Sink {
    fn in_order(&self) -> bool {
        matches!(self, Sink::Stream { .. })
    }
}

fn open_target(out: Output<'_>) -> Result<Sink, Finish> {
    let p = match out {
        Output::Stdout => {
            if os::isatty(1) {
                return Err(Finish::fail(EXIT_USAGE, |l| {
                    l.str("stdout is a terminal: give an OUTPUT file or device, or redirect stdout (bb-client SERVER > image)");
                }));
            }
            return Ok(Sink::Stream { fd: Fd(1), pos: 0 });
        }
        Output::Path(p) => p,
    };
    let Some(path) = CPath::new(p) else {
        return Err(Finish::fail(EXIT_TARGET, |l| {
            l.str("OUTPUT path is too long or contains a NUL byte");
        }));
    };
    let target_err = |what: &str, e: Errno| {
        Finish::fail(EXIT_TARGET, |l| {
            let _ = write!(l, "cannot {what} {}: {}", Lossy(p), os::strerror(e));
        })
    };
    match os::stat(&path) {
        Ok(st) if st.kind == Kind::Block => {
            let canon = path.canonical().unwrap_or(path);
            if let Some(mp) = mounted(&canon, st.rdev) {
                return Err(Finish::fail(EXIT_TARGET, |l| {
                    let _ = write!(
                        l,
                        "target {} is in use: it or one of its partitions is mounted on {} (unmount it, or choose another disk)",
                        Lossy(canon.as_bytes()),
                        Lossy(mp.as_bytes())
                    );
                }));
            }
            // O_EXCL on a block device: the kernel refuses it while mounted or claimed.
            let fd = os::open(&canon, libc::O_WRONLY | libc::O_EXCL, 0)
                .map_err(|e| target_err("open", e))?;
            let size = os::block_size(fd.0).map_err(|e| target_err("get the size of", e))?;
            Ok(Sink::Seek {
                fd,
                block_dev_size: Some(size),
            })
        }
        Ok(st) if st.kind == Kind::Char || st.kind == Kind::Fifo => {
            let fd = os::open(&path, libc::O_WRONLY, 0).map_err(|e| target_err("open", e))?;
            Ok(Sink::Stream { fd, pos: 0 })
        }
        Ok(st) if st.kind != Kind::Regular => Err(Finish::fail(EXIT_TARGET, |l| {
            let _ = write!(
                l,
                "{} is not a regular file, a block device or a pipe",
                Lossy(p)
            );
        })),
        _ => {
            let fd = os::open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)
                .map_err(|e| target_err("create", e))?;
            Ok(Sink::Seek {
                fd,
                block_dev_size: None,
            })
        }
    }
}

/// The mount point (or "[swap]") using `dev` or one of its partitions, if any.
fn mounted(dev: &CPath, rdev: u64) -> Option<Buf<256>> {
    let mut text = [0u8; 65536];
    let same = |src: &[u8]| {
        CPath::new(src)
            .and_then(|c| os::stat(&c).ok())
            .is_some_and(|s| s.kind == Kind::Block && s.rdev == rdev)
    };
    for (file, swaps) in [
        (&b"/proc/self/mounts"[..], false),
        (&b"/proc/swaps"[..], true),
    ] {
        let Ok(n) = os::read_file(file, &mut text) else {
            continue;
        };
        if let Some(mp) = mounts::find_mounted(&text[..n], dev.as_bytes(), swaps, same) {
            let mut out = Buf::<256>::new();
            let mut un = [0u8; 256];
            let k = mounts::unescape(mp, &mut un).unwrap_or(0);
            out.bytes(&un[..k]);
            return Some(out);
        }
    }
    None
}

/// Receive-side statistics the shell keeps itself.
#[derive(Default)]
struct ShellStats {
    foreign_source: u64,
    truncated: u64,
    from_server: u64,
}

/// Runs one receive. `label` names the target in messages.
pub fn receive(o: &Options<'_>) -> Finish {
    let start = os::now_us();
    let Some(m) = mem::take() else {
        return Finish::fail(EXIT_IO, |l| {
            l.str("internal error: receive memory already in use");
        });
    };
    let mut sink = match open_target(o.output) {
        Ok(s) => s,
        Err(f) => return f,
    };
    let sock = match open_socket(o) {
        Ok(s) => s,
        Err(f) => return f,
    };
    let server = os::sockaddr(o.server, o.control_port);
    let quiet = o.quiet;
    let mut rng = Rng(os::random_u64() | 1);
    let client_id = os::random_u64();

    // Where the slot memory lives, to fault in what the session will use once it is known.
    let (pool_at, esi_at, scratch_at) = (
        m.pool.as_ptr() as usize,
        m.esi_at.as_ptr() as usize,
        m.scratch.as_ptr() as usize,
    );
    os::populate(m.rx.as_ptr() as usize, size_of_val(&m.rx));
    let mut slots = [Slot::FREE; mem::MAX_SLOTS];
    let mut cfg = ReceiverConfig::new(client_id);
    cfg.in_order = sink.in_order();
    let mut rx = Receiver::new(
        cfg,
        ReceiverStorage {
            done: &mut m.done,
            pool: &mut m.pool,
            slots: &mut slots,
            esi_at: &mut m.esi_at,
            scratch: &mut m.scratch,
        },
        start,
    )
    .expect("mem::MAX_SLOTS is at most the receiver's MAX_SLOTS");
    let tx = &mut m.tx;
    let bufs = &mut m.rx;
    let mut got = [os::Received::default(); RX_BATCH];

    if !quiet {
        let mut l = Line::new();
        let _ = write!(l, "bb-client: listening on UDP port {}", o.port);
        if let Some(g) = o.group {
            let _ = write!(l, ", group {}", Ip(g));
        }
        let _ = write!(l, "; status to {}:{}", Ip(o.server), o.control_port);
        if o.any_server {
            l.str("; data from any address");
        }
        say(format_args!("{}", l.as_str()));
    }

    let timeout_us = o.timeout_s as u64 * 1_000_000;
    let tty = os::isatty(2);
    let progress_every = if tty { 250_000 } else { 5_000_000 };
    let mut next_progress = start + progress_every;
    let mut progress_shown = false;
    let mut st = ShellStats::default();
    let mut last_heard = start;
    let mut last_symbols = 0u64;
    let mut bound_at = 0u64;
    let mut geometry: Option<Geometry> = None;
    let mut detail = Line::new();
    let mut outcome_at: Option<u64> = None;
    let mut interrupted = false;

    loop {
        let now = os::now_us();

        // Signals: the first reports the failure to the server, the second exits at once.
        if os::signalled() != 0 {
            os::clear_signal();
            if interrupted || geometry.is_none() || rx.outcome().is_some() {
                end_progress(&mut progress_shown);
                return Finish::fail(EXIT_INTERRUPTED, |l| {
                    l.str("interrupted by a signal (the target is incomplete)");
                });
            }
            interrupted = true;
            detail.clear();
            detail.str("interrupted by a signal (the target is incomplete); telling the server");
            rx.fail(now, FailReason::Interrupted);
        }

        // Writes, then the flush once everything is written.
        drain_writes(&mut rx, &mut sink, geometry, &mut detail, now);
        if rx.needs_flush() {
            let size = geometry.map_or(0, |g| g.image_size);
            let r = match &sink {
                Sink::Seek {
                    fd,
                    block_dev_size: None,
                } => os::ftruncate(fd.0, size).and_then(|_| os::fdatasync(fd.0)),
                Sink::Seek { fd, .. } => os::fsync(fd.0),
                Sink::Stream { fd, .. } => match os::fdatasync(fd.0) {
                    Err(libc::EINVAL) | Err(libc::EROFS) | Err(libc::ENOTSUP) => Ok(()),
                    r => r,
                },
            };
            if let Err(e) = r {
                detail.clear();
                let _ = write!(detail, "flushing the target failed: {}", os::strerror(e));
                add_io_hint(&mut detail, e);
            }
            rx.flushed(now, r.is_ok());
        }

        // Reports and results to the server.
        while let Some(n) = rx.poll_transmit(now, rng.next(), tx) {
            let _ = os::send_to(sock.0, &tx[..n], &server);
        }
        if rx.outcome().is_some() && outcome_at.is_none() {
            outcome_at = Some(now);
        }
        if rx.finished() || outcome_at.is_some_and(|t| now.saturating_sub(t) > 30_000_000) {
            break;
        }

        // Time limits.
        match geometry {
            None if now.saturating_sub(start) >= timeout_us => {
                end_progress(&mut progress_shown);
                return no_server(o, &st, &rx);
            }
            Some(_) if rx.outcome().is_none() && now.saturating_sub(last_heard) >= timeout_us => {
                detail.clear();
                let _ = write!(
                    detail,
                    "no new data from {} for {} s after the transfer had started (server stopped or gave up on this machine, or the network path broke; --timeout sets the limit)",
                    Ip(o.server),
                    o.timeout_s
                );
                rx.fail(now, FailReason::Timeout);
                continue;
            }
            _ => {}
        }

        // Progress.
        if !quiet && now >= next_progress {
            next_progress = now + progress_every;
            if geometry.is_some() && rx.outcome().is_none() {
                show_progress(&rx, now.saturating_sub(bound_at), tty);
                progress_shown = tty;
            }
        }

        // Wait for data or the next deadline.
        let mut deadline = match geometry {
            None => start + timeout_us,
            Some(_) if rx.outcome().is_none() => last_heard + timeout_us,
            Some(_) => now + 200_000,
        };
        if let Some(t) = rx.poll_timeout(now) {
            deadline = deadline.min(t);
        }
        if !quiet {
            deadline = deadline.min(next_progress);
        }
        let wait_ms = deadline.saturating_sub(now).div_ceil(1000).min(60_000) as i32;
        match os::poll_readable(sock.0, wait_ms) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                end_progress(&mut progress_shown);
                return Finish::fail(EXIT_IO, |l| {
                    let _ = write!(l, "poll on the data socket failed: {}", os::strerror(e));
                });
            }
        }
        // Drain the socket in batches, writing completed blocks between batches.
        for _ in 0..8 {
            let n = match os::recv_batch(sock.0, bufs, &mut got) {
                Ok(n) => n,
                Err(e) => {
                    end_progress(&mut progress_shown);
                    return Finish::fail(EXIT_IO, |l| {
                        let _ = write!(
                            l,
                            "receiving on the data socket failed: {}",
                            os::strerror(e)
                        );
                    });
                }
            };
            let now = os::now_us();
            for (d, buf) in got[..n].iter().zip(bufs.iter()) {
                if !o.any_server && d.from != o.server {
                    st.foreign_source += 1;
                    continue;
                }
                if d.truncated {
                    st.truncated += 1;
                    continue;
                }
                st.from_server += 1;
                match rx.handle_datagram(now, &buf[..d.len]) {
                    Ok(Event::Bound {
                        session,
                        geometry: g,
                    }) => {
                        geometry = Some(g);
                        bound_at = now;
                        let (slot_bytes, slot_esis, scratch) = Receiver::slot_needs(&g);
                        let n = rx.slot_count();
                        os::populate(pool_at, n * slot_bytes);
                        os::populate(esi_at, n * slot_esis * 2);
                        os::populate(scratch_at, scratch);
                        last_heard = now;
                        if !quiet {
                            say(format_args!(
                                "bb-client: session {:016x}: image {} bytes, {} blocks of {} x {} B, {} slots",
                                session,
                                g.image_size,
                                g.block_count(),
                                g.k,
                                g.symbol_size,
                                rx.slot_count()
                            ));
                        }
                        if let Sink::Seek {
                            block_dev_size: Some(size),
                            ..
                        } = sink
                            && size < g.image_size
                        {
                            detail.clear();
                            let _ = write!(
                                detail,
                                "target {} holds {} bytes but the image is {} bytes: use a disk at least as large as the image",
                                Lossy(match o.output {
                                    Output::Path(p) => p,
                                    Output::Stdout => b"-",
                                }),
                                size,
                                g.image_size
                            );
                            rx.fail(now, FailReason::TargetTooSmall);
                        }
                    }
                    Ok(Event::Unsupported { geometry: g }) => {
                        let (slot, _, _) = Receiver::slot_needs(&g);
                        end_progress(&mut progress_shown);
                        return Finish::fail(EXIT_TOO_LARGE, |l| {
                            let _ = write!(
                                l,
                                "the image ({} bytes, blocks of {} x {} B = {} B) needs more memory than this client has \
                                 (at most {} blocks, {} B of block memory, {} B per block at most{}): \
                                 use the server's default geometry",
                                g.image_size,
                                g.k,
                                g.symbol_size,
                                slot,
                                mem::DONE_WORDS as u64 * 64,
                                mem::POOL_BYTES,
                                mem::MAX_BLOCK_BYTES,
                                if sink.in_order() {
                                    ", two blocks in memory for an in-order sink"
                                } else {
                                    ""
                                }
                            );
                        });
                    }
                    Ok(Event::ServerClosing) => {
                        last_heard = now;
                        detail.clear();
                        let (d, t) = rx.progress();
                        let _ = write!(
                            detail,
                            "the server ended the session before this machine had the whole image ({d} of {t} blocks): \
                             run the server again (it was stopped, or gave up on this client)"
                        );
                        rx.fail(now, FailReason::ServerGone);
                    }
                    // Once data has flowed, only new symbols count as progress: a server that
                    // keeps announcing but sends nothing this machine needs is a stall too.
                    Err(bb_proto::receiver::Dropped::Malformed(_))
                    | Err(bb_proto::receiver::Dropped::ForeignSession) => {}
                    Ok(Event::ResultAcked) | Ok(Event::Nothing) | Err(_)
                        if rx.stats().symbols != last_symbols || last_symbols == 0 =>
                    {
                        last_symbols = rx.stats().symbols;
                        last_heard = now;
                    }
                    Ok(_) | Err(_) => {}
                }
            }
            if n < RX_BATCH {
                break;
            }
            // Write what completed before reading more.
            drain_writes(&mut rx, &mut sink, geometry, &mut detail, now);
        }
    }
    end_progress(&mut progress_shown);

    let elapsed = os::now_us().saturating_sub(if bound_at > 0 { bound_at } else { start });
    let mut line = Line::new();
    let code = match rx.outcome() {
        Some(Outcome::Verified { digest }) => {
            let b = rx.bytes_written();
            let _ = write!(
                line,
                "{} {} bytes in {} s ({} MB/s)",
                Hex(&digest),
                b,
                seconds(elapsed),
                mb_per_s(b, elapsed)
            );
            EXIT_OK
        }
        Some(Outcome::Failed(reason)) => {
            if detail.is_empty() {
                let _ = write!(detail, "{}", reason.as_str());
                if reason == FailReason::DigestMismatch {
                    detail.str(": what was written differs from the server's image (memory or disk fault?): run again and check this machine's RAM and disk");
                }
            }
            line.str(detail.as_str());
            match reason {
                FailReason::DigestMismatch => EXIT_VERIFY,
                FailReason::TargetTooSmall => EXIT_TARGET,
                FailReason::IoError | FailReason::None => EXIT_IO,
                FailReason::ImageTooLarge => EXIT_TOO_LARGE,
                FailReason::ServerGone | FailReason::Timeout => EXIT_NO_SERVER,
                FailReason::Interrupted => EXIT_INTERRUPTED,
            }
        }
        None => {
            line.str("ended without an outcome");
            EXIT_IO
        }
    };
    if !quiet {
        let s = rx.stats();
        say(format_args!(
            "bb-client: {} symbols, {} decoded blocks, {} duplicates, {} evictions, {} dropped (malformed {}, other session {}, \
             other source {}), loss {}%, {} reports",
            s.symbols,
            s.decoded,
            s.duplicates,
            s.evictions,
            s.malformed
                + s.foreign
                + s.no_slot
                + s.unbound
                + s.unexpected
                + st.foreign_source
                + st.truncated,
            s.malformed + st.truncated,
            s.foreign,
            st.foreign_source,
            percent_ppm(rx.loss_ppm()),
            s.reports
        ));
    }
    Finish { code, line }
}

/// Writes every block the receiver has ready; a failure ends the receive (reported).
fn drain_writes(
    rx: &mut Receiver<'_>,
    sink: &mut Sink,
    geometry: Option<Geometry>,
    detail: &mut Line,
    now: u64,
) {
    let size = geometry.map_or(0, |g| g.image_size);
    while rx.outcome().is_none() {
        let Some(w) = rx.poll_write() else { break };
        let (block, offset) = (w.block, w.offset);
        // Never outside [0, image size), whatever the receiver says.
        let r = if offset
            .checked_add(w.data.len() as u64)
            .is_none_or(|end| end > size)
        {
            Err(libc::EINVAL)
        } else {
            match sink {
                Sink::Seek { fd, .. } => os::pwrite_all(fd.0, w.data, offset),
                Sink::Stream { fd, pos } => {
                    if *pos != offset {
                        Err(libc::EINVAL)
                    } else {
                        let r = os::write_all(fd.0, w.data);
                        *pos += w.data.len() as u64;
                        r
                    }
                }
            }
        };
        match r {
            Ok(()) => rx.write_done(block),
            Err(e) => {
                detail.clear();
                let _ = write!(
                    detail,
                    "writing the target failed at byte {offset}: {}",
                    os::strerror(e)
                );
                add_io_hint(detail, e);
                rx.fail(now, FailReason::IoError);
            }
        }
    }
}

fn add_io_hint(l: &mut Line, e: Errno) {
    match e {
        libc::ENOSPC => l.str(" (the file system is full: free space or write elsewhere)"),
        libc::EPIPE => l.str(" (the reader of stdout went away)"),
        libc::EIO => l.str(" (the disk reported an error: check it with smartctl or dmesg)"),
        _ => l,
    };
}

fn no_server(o: &Options<'_>, st: &ShellStats, rx: &Receiver<'_>) -> Finish {
    Finish::fail(EXIT_NO_SERVER, |l| {
        if st.from_server > 0 {
            let s = rx.stats();
            let _ = write!(
                l,
                "{} packets came from {} within {} s but none was a usable session announce ({} malformed): \
                 is the server running the same broadband version?",
                st.from_server,
                Ip(o.server),
                o.timeout_s,
                s.malformed
            );
            return;
        }
        let _ = write!(
            l,
            "no server heard within {} s on UDP port {}: ",
            o.timeout_s, o.port
        );
        if st.foreign_source > 0 {
            let _ = write!(
                l,
                "{} packets came from other addresses than {} (another server? give the right SERVER, or --any-server); ",
                st.foreign_source,
                Ip(o.server)
            );
        }
        l.str("check that the server runs and sends to this machine's broadcast address (or unicast), that firewalls let UDP 7855 (data) in here and UDP 7854 (status) in on the server");
        if o.group.is_some() {
            l.str(", and for multicast that the switch has an IGMP querier (or IGMP snooping off) and --interface names the right NIC");
        }
    })
}

fn show_progress(rx: &Receiver<'_>, since_bound: u64, tty: bool) {
    let (done, total) = rx.progress();
    let b = rx.bytes_written();
    let mut l = Buf::<160>::new();
    if tty {
        l.str("\r");
    }
    let _ = write!(
        l,
        "bb-client: {:>5}% {}/{} blocks {} MB/s loss {}%",
        percent(done as u64, total as u64),
        done,
        total,
        mb_per_s(b, since_bound),
        percent_ppm(rx.loss_ppm())
    );
    l.str(if tty { "\x1b[K" } else { "\n" });
    let _ = os::write_all(2, l.as_bytes());
}

fn end_progress(shown: &mut bool) {
    if *shown {
        let _ = os::write_all(2, b"\n");
        *shown = false;
    }
}

fn open_socket(o: &Options<'_>) -> Result<Fd, Finish> {
    let fail = |what: &'static str, e: Errno| {
        Finish::fail(EXIT_NO_SERVER, |l| {
            let _ = write!(l, "{what}: {}", os::strerror(e));
        })
    };
    let s = os::udp_socket().map_err(|e| fail("cannot open a UDP socket", e))?;
    let _ = os::set_reuseaddr(s.0);
    let got = os::set_rcvbuf(s.0, 8 << 20);
    if got < (2 << 20) && !o.quiet {
        say(format_args!(
            "bb-client: warning: socket receive buffer is only {got} B (raise net.core.rmem_max, or run as root): expect more loss"
        ));
    }
    let _ = os::set_multicast_all_off(s.0);
    os::bind(s.0, [0; 4], o.port).map_err(|e| {
        Finish::fail(EXIT_NO_SERVER, |l| {
            let _ = write!(
                l,
                "cannot bind UDP port {}: {} (another bb-client running here?)",
                o.port,
                os::strerror(e)
            );
        })
    })?;
    if let Some(g) = o.group {
        let (local, index) = match o.iface {
            Iface::Any => ([0; 4], 0),
            Iface::Addr(a) => (a, 0),
            Iface::Name(n) => {
                let i = os::if_index(n);
                if i == 0 {
                    return Err(Finish::fail(EXIT_USAGE, |l| {
                        let _ = write!(l, "--interface {}: no such network interface", Lossy(n));
                    }));
                }
                ([0; 4], i)
            }
        };
        os::join_group(s.0, g, local, index).map_err(|e| {
            Finish::fail(EXIT_NO_SERVER, |l| {
                let _ = write!(
                    l,
                    "cannot join multicast group {}: {} (no route for 224.0.0.0/4? give --interface)",
                    Ip(g),
                    os::strerror(e)
                );
            })
        })?;
    }
    Ok(s)
}

/// xorshift64* for report jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}
