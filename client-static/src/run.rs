//! The receive path: the socket and the loop around `bb_proto::receiver::Receiver`.

use crate::args::{Iface, Options, Output};
use crate::disks;
use crate::fmt::{Buf, Hex, Ip, Lossy, mb_per_s, percent, percent_ppm, seconds};
use crate::mem::{self, RX_BATCH, RX_LEN};
use crate::os::{self, Errno, Fd};
use crate::target::{Sink, open_target};
use bb_proto::receiver::{
    Event, Expired, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot, Write as BlockWrite,
    arrival_from_stamp,
};
use bb_proto::wire::{FailReason, Geometry};
use bb_zstd::StaticDecompressor;
use core::fmt::Write;

/// Bytes written in one pass over the ready writes before the socket is drained again.
const WRITE_BUDGET_BYTES: u64 = 32 << 20;

/// Exit codes (documented in --help).
pub const EXIT_OK: i32 = 0;
pub const EXIT_VERIFY: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_TARGET: i32 = 3;
pub const EXIT_IO: i32 = 4;
pub const EXIT_NO_SERVER: i32 = 5;
pub const EXIT_TOO_LARGE: i32 = 6;
pub const EXIT_INTERRUPTED: i32 = 7;
pub const EXIT_CONFLICT: i32 = 8;

pub type Line = Buf<512>;

/// How the run ended: exit code and the final line's text (after "OK " / "FAILED ").
pub struct Finish {
    pub code: i32,
    pub line: Line,
}

impl Finish {
    pub fn fail(code: i32, f: impl FnOnce(&mut Line)) -> Finish {
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

/// Receive-side statistics the shell keeps itself.
#[derive(Default)]
struct ShellStats {
    foreign_source: u64,
    truncated: u64,
    from_server: u64,
    /// Reads that held more than one datagram (UDP GRO), and the datagrams in them.
    coalesced_reads: u64,
    coalesced_datagrams: u64,
    /// Messages about the key and the pinned digest, each said once.
    said_unauthenticated: bool,
    said_needs_key: bool,
    said_pin: bool,
}

/// The progress line: how often, when next, and whether a redrawn (tty) line is showing.
struct Progress {
    tty: bool,
    every_us: u64,
    next_us: u64,
    shown: bool,
}

/// Where the slot memory lives, to fault in what the session will use once it is known.
struct SlotMemory {
    esi_at: usize,
    scratch_at: usize,
    out_at: usize,
}

/// One receive while it runs: the receiver, the target, the socket and what the shell
/// tracks itself (messages, progress, statistics).
struct Receive<'m> {
    o: Options<'m>,
    rx: Receiver<'m>,
    decompressor: StaticDecompressor<'m>,
    sink: Sink,
    sock: Fd,
    server: libc::sockaddr_in,
    tx: &'m mut [u8],
    bufs: &'m mut [[u8; RX_LEN]; RX_BATCH],
    got: [os::Received; RX_BATCH],
    rng: Rng,
    start: u64,
    slot_memory: SlotMemory,
    progress: Progress,
    st: ShellStats,
    bound_at: u64,
    geometry: Option<Geometry>,
    /// The failure's explanation, when the shell knows more than the reason code.
    detail: Line,
    interrupted: bool,
    /// The last session heard that this client cannot receive (too large for its memory).
    unusable: Option<Geometry>,
    /// The last pass over the writes stopped at its budget with more to write.
    writes_pending: bool,
    /// Bound to a session whose decoder memory is not faulted in yet: done once the first
    /// report is out, so that the server does not wait for it.
    prefault_due: bool,
}

/// Runs one receive.
pub fn receive(o: &Options<'_>) -> Finish {
    let start = os::now_us();
    let Some(m) = mem::take() else {
        return Finish::fail(EXIT_IO, |l| {
            l.str("internal error: receive memory already in use");
        });
    };
    let decompressor = match StaticDecompressor::new(&mut m.dctx) {
        Ok(d) => d,
        Err(e) => {
            return Finish::fail(EXIT_IO, |l| {
                let _ = write!(
                    l,
                    "internal error: the linked zstd needs a {} B decompression context but this build reserves {} B (raise bb_zstd::DCTX_WORKSPACE_BYTES)",
                    e.needed, e.have
                );
            });
        }
    };
    let sink = match open_target(o.output, o.assume_zeroed) {
        Ok(s) => s,
        Err(f) => return f,
    };
    let sock = match open_socket(o) {
        Ok(s) => s,
        Err(f) => return f,
    };
    let slot_memory = SlotMemory {
        esi_at: m.esi_at.as_ptr() as usize,
        scratch_at: m.scratch.as_ptr() as usize,
        out_at: m.out.as_ptr() as usize,
    };
    os::populate(m.rx.as_ptr() as usize, size_of_val(&m.rx));
    // At the default geometry the slots fill the pool (17 of 704 KiB): faulted in now,
    // while no server is heard yet (about 10 ms for 12 MiB), not when the transfer starts.
    // Forty-eight clients on one lab machine spent 0.5 s of its CPU on it there, and the
    // first data went out 27-408 ms after the server started (18-59 ms since).
    os::populate(m.pool.as_ptr() as usize, size_of_val(&m.pool));
    let mut slots = [Slot::FREE; mem::MAX_SLOTS];
    let mut cfg = ReceiverConfig::new(os::random_u64());
    cfg.in_order = sink.in_order();
    cfg.silence_timeout_us = o.timeout_s as u64 * 1_000_000;
    cfg.key = o.key;
    cfg.pinned_digest = o.digest;
    let rx = Receiver::new(
        cfg,
        ReceiverStorage {
            done: &mut m.done,
            pool: &mut m.pool,
            slots: &mut slots,
            esi_at: &mut m.esi_at,
            scratch: &mut m.scratch,
            zero: &mut m.zero,
            out: &mut m.out,
        },
        start,
    )
    .expect("mem::MAX_SLOTS is at most the receiver's MAX_SLOTS");
    let tty = os::isatty(2);
    let every_us = if tty { 250_000 } else { 5_000_000 };
    let r = Receive {
        o: *o,
        rx,
        decompressor,
        sink,
        sock,
        server: os::sockaddr(o.server, o.control_port),
        tx: &mut m.tx,
        bufs: &mut m.rx,
        got: [os::Received::default(); RX_BATCH],
        rng: Rng(os::random_u64() | 1),
        start,
        slot_memory,
        progress: Progress {
            tty,
            every_us,
            next_us: start + every_us,
            shown: false,
        },
        st: ShellStats::default(),
        bound_at: 0,
        geometry: None,
        detail: Line::new(),
        interrupted: false,
        writes_pending: false,
        prefault_due: false,
        unusable: None,
    };
    r.say_listening();
    r.run()
}

impl Receive<'_> {
    fn say_listening(&self) {
        let o = &self.o;
        if o.quiet {
            return;
        }
        let mut l = Line::new();
        let _ = write!(l, "bb-client: listening on UDP port {}", o.port);
        if let Some(g) = o.group {
            let _ = write!(l, ", group {}", Ip(g));
        }
        let _ = write!(l, "; status to {}:{}", Ip(o.server), o.control_port);
        if o.any_server {
            l.str("; data from any address");
        }
        if o.key.is_some() {
            l.str("; authenticated with the key");
        }
        if let Some(d) = &o.digest {
            let _ = write!(l, "; image digest pinned to {}", Hex(d));
        }
        say(format_args!("{}", l.as_str()));
    }

    /// The loop: signals, writes, flush, transmit, timers, progress, wait, drain the socket.
    fn run(mut self) -> Finish {
        loop {
            let now = os::now_us();
            match self.signals(now) {
                Err(f) => return self.stop(f),
                Ok(true) => break,
                Ok(false) => {}
            }
            self.writes(now);
            self.flush(now);
            self.transmit(now);
            // Faulting in takes a few milliseconds: the timers below need the time after it.
            let now = match self.prefault() {
                true => os::now_us(),
                false => now,
            };
            if self.rx.finished() {
                break;
            }
            match self.rx.handle_timeout(now) {
                Some(Expired::NoSession) => {
                    let f = match self.unusable {
                        Some(g) => self.too_large(&g),
                        None => no_server(&self.o, &self.st, &self.rx),
                    };
                    return self.stop(f);
                }
                Some(Expired::Stalled) => {
                    self.detail.clear();
                    let _ = write!(
                        self.detail,
                        "no new data from {} for {} s after the transfer had started (server stopped or gave up on this machine, or the network path broke; --timeout sets the limit)",
                        Ip(self.o.server),
                        self.o.timeout_s
                    );
                    if self.rx.stats().foreign > 0 {
                        self.detail.str(
                            "; another session was announced meanwhile and not taken over: a restarted \
                             server is resumed only when it announces the same image (geometry and digest) \
                             and this machine had learned that digest; blocks of two images are never mixed",
                        );
                    }
                    continue;
                }
                Some(Expired::ServerClosed) => {
                    self.say_server_closed();
                    continue;
                }
                Some(Expired::AckWait) => continue,
                None => {}
            }
            self.show_progress(now);
            match self.wait(now) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(f) => return self.stop(f),
            }
            if let Err(f) = self.drain_socket() {
                return self.stop(f);
            }
        }
        self.end_progress();
        self.finish()
    }

    /// Ends the progress line before the final one.
    fn stop(&mut self, f: Finish) -> Finish {
        self.end_progress();
        f
    }

    /// The first signal reports the failure to the server, a second one exits at once.
    /// Once the outcome is known (the target written and checked, or failed), a signal
    /// only ends the wait for the server's acknowledgement: true, finish with that outcome.
    fn signals(&mut self, now: u64) -> Result<bool, Finish> {
        if os::signalled() == 0 {
            return Ok(false);
        }
        os::clear_signal();
        if self.interrupted || self.geometry.is_none() {
            return Err(Finish::fail(EXIT_INTERRUPTED, |l| {
                l.str("interrupted by a signal (the target is incomplete)");
            }));
        }
        if self.rx.outcome().is_some() {
            return Ok(true);
        }
        self.interrupted = true;
        self.detail.clear();
        self.detail
            .str("interrupted by a signal (the target is incomplete); telling the server");
        self.rx.fail(now, FailReason::Interrupted);
        Ok(false)
    }

    /// Writes every block the receiver has ready; a failure ends the receive (reported).
    fn writes(&mut self, now: u64) {
        let size = self.geometry.map_or(0, |g| g.image_size);
        // Bounded, so the socket is drained between long writes (zeros to a slow stream,
        // a slow disk) instead of overflowing while they go out.
        let mut budget = WRITE_BUDGET_BYTES;
        self.writes_pending = false;
        while self.rx.outcome().is_none() {
            if budget == 0 {
                self.writes_pending = true;
                break;
            }
            let Some(w) = self.rx.poll_write(&mut self.decompressor) else {
                break;
            };
            let (offset, len) = match w {
                BlockWrite::Data { offset, data, .. } => (offset, data.len() as u64),
                BlockWrite::Zeros { offset, len } => (offset, len),
            };
            // Never outside [0, image size), whatever the receiver says.
            let r = if offset.checked_add(len).is_none_or(|end| end > size) {
                Err(libc::EINVAL)
            } else {
                match w {
                    BlockWrite::Data { data, .. } => self.sink.write(data, offset),
                    BlockWrite::Zeros { .. } => self.sink.write_zeros(offset, len),
                }
            };
            budget = budget.saturating_sub(len);
            match r {
                Ok(()) => self.rx.write_done(),
                Err(e) => {
                    self.detail.clear();
                    let _ = write!(
                        self.detail,
                        "writing the target failed at byte {offset} of {}: {}",
                        target_label(self.o.output),
                        os::strerror(e)
                    );
                    add_io_hint(&mut self.detail, e);
                    self.rx.fail(now, FailReason::IoError);
                }
            }
        }
    }

    /// Flushes the target once everything is written.
    fn flush(&mut self, now: u64) {
        if !self.rx.needs_flush() {
            return;
        }
        let r = self.sink.flush(self.geometry.map_or(0, |g| g.image_size));
        if let Err(e) = r {
            self.detail.clear();
            let _ = write!(
                self.detail,
                "flushing the target failed ({}): {}",
                target_label(self.o.output),
                os::strerror(e)
            );
            add_io_hint(&mut self.detail, e);
        }
        self.rx.flushed(now, r.is_ok());
    }

    /// Sends the reports and results that are due.
    fn transmit(&mut self, now: u64) {
        while let Some(n) = self.rx.poll_transmit(now, self.rng.next(), self.tx) {
            let _ = os::send_to(self.sock.0, &self.tx[..n], &self.server);
        }
    }

    fn show_progress(&mut self, now: u64) {
        if self.o.quiet || now < self.progress.next_us {
            return;
        }
        self.progress.next_us = now + self.progress.every_us;
        if self.geometry.is_some() && self.rx.outcome().is_none() {
            show_progress(
                &self.rx,
                now.saturating_sub(self.bound_at),
                self.progress.tty,
            );
            self.progress.shown = self.progress.tty;
        }
    }

    fn end_progress(&mut self) {
        if self.progress.shown {
            let _ = os::write_all(2, b"\n");
            self.progress.shown = false;
        }
    }

    /// Waits for data or the receiver's next timeout (or the next progress line): Ok(true)
    /// when data is waiting.
    fn wait(&self, now: u64) -> Result<bool, Finish> {
        let mut deadline = self.rx.poll_timeout(now).unwrap_or(now + 200_000);
        if self.writes_pending {
            // More to write: only look at the socket.
            deadline = now;
        }
        if !self.o.quiet {
            deadline = deadline.min(self.progress.next_us);
        }
        let wait_ms = deadline.saturating_sub(now).div_ceil(1000).min(60_000) as i32;
        os::poll_readable(self.sock.0, wait_ms).map_err(|e| {
            Finish::fail(EXIT_IO, |l| {
                let _ = write!(l, "poll on the data socket failed: {}", os::strerror(e));
            })
        })
    }

    /// Drains the socket in batches, writing completed blocks between batches.
    fn drain_socket(&mut self) -> Result<(), Finish> {
        for _ in 0..8 {
            let n = os::recv_batch(self.sock.0, self.bufs, &mut self.got).map_err(|e| {
                Finish::fail(EXIT_IO, |l| {
                    let _ = write!(
                        l,
                        "receiving on the data socket failed: {}",
                        os::strerror(e)
                    );
                })
            })?;
            let now = os::now_us();
            let wall = os::wall_clock_us();
            for i in 0..n {
                let d = self.got[i];
                let arrived = arrival_from_stamp(now, wall, d.stamp_us);
                if !self.o.any_server && d.from != self.o.server {
                    self.st.foreign_source += d.datagrams().count() as u64;
                    continue;
                }
                if d.truncated {
                    self.st.truncated += 1;
                    continue;
                }
                if d.segment < d.len {
                    self.st.coalesced_reads += 1;
                    self.st.coalesced_datagrams += d.datagrams().count() as u64;
                }
                for r in d.datagrams() {
                    self.st.from_server += 1;
                    match self.rx.handle_datagram_at(now, arrived, &self.bufs[i][r]) {
                        Ok(ev) => self.handle_event(now, ev)?,
                        Err(_) => self.auth_notes(),
                    }
                }
            }
            if n < RX_BATCH {
                break;
            }
            // Write what completed before reading more.
            self.writes(now);
        }
        Ok(())
    }

    /// Says once that packets were dropped for the key or the pinned digest, and why.
    fn auth_notes(&mut self) {
        let s = *self.rx.stats();
        let st = &mut self.st;
        if !st.said_unauthenticated && self.o.key.is_some() && s.untagged + s.bad_tag > 0 {
            st.said_unauthenticated = true;
            say(format_args!(
                "bb-client: data heard, but not authenticated with your key (from {}: a server without a key, or with another one): ignored; still waiting",
                Ip(self.o.server)
            ));
        }
        if !st.said_needs_key && self.o.key.is_none() && s.needs_key > 0 {
            st.said_needs_key = true;
            say(format_args!(
                "bb-client: the server requires a key (its packets are authenticated): give this machine the same key with --key-file FILE (bb.key= for /init); still waiting"
            ));
        }
        if !st.said_pin
            && s.pin_refused > 0
            && let Some(pin) = &self.o.digest
        {
            st.said_pin = true;
            say(format_args!(
                "bb-client: a session announces another image digest than the pinned {} (--digest): refused{}",
                Hex(pin),
                if self.geometry.is_none() {
                    "; still waiting for the pinned image"
                } else {
                    ""
                }
            ));
        }
    }

    /// Acts on what the receiver reports about a datagram.
    fn handle_event(&mut self, now: u64, ev: Event) -> Result<(), Finish> {
        match ev {
            Event::Bound {
                session,
                geometry: g,
            } => self.bound(now, session, g),
            // Ignored, and remembered: the client waits for a usable session, and names this
            // one only if none comes (a forged announce must not end it).
            Event::Unsupported { geometry: g } => self.unusable = Some(g),
            Event::ServerClosing => {
                self.say_server_closed();
                self.rx.fail(now, FailReason::ServerGone);
            }
            Event::DigestConflict => {
                self.detail.clear();
                let _ = write!(
                    self.detail,
                    "two different image digests were announced for the session of server {}: two servers share one \
                     session id, or someone on this LAN forged an announce (this machine's disk is not at fault): \
                     stop the other server, or use a key (--key-file) against forgery",
                    Ip(self.o.server)
                );
            }
            Event::Resumed {
                session,
                blocks_kept,
            } => {
                if !self.o.quiet {
                    let total = self.rx.progress().1;
                    say(format_args!(
                        "bb-client: the server restarted: resuming with session {session:016x} of the same image \
                         (same geometry and digest); {blocks_kept} of {total} blocks kept"
                    ));
                }
            }
            Event::ResultAcked | Event::Nothing => {}
        }
        Ok(())
    }

    fn say_server_closed(&mut self) {
        self.detail.clear();
        let (d, t) = self.rx.progress();
        let _ = write!(
            self.detail,
            "the server ended the session before this machine had the whole image ({d} of {t} blocks): \
             run the server again (it was stopped, or gave up on this client)"
        );
    }

    /// Faults in the memory of the session bound to, once (the data that arrives meanwhile
    /// waits in the socket's buffer): true when it did.
    fn prefault(&mut self) -> bool {
        let Some(g) = self
            .geometry
            .filter(|_| core::mem::take(&mut self.prefault_due))
        else {
            return false;
        };
        let (_, slot_esis, scratch) = Receiver::slot_needs(&g);
        let n = self.rx.slot_count();
        let at = &self.slot_memory;
        // The pool was faulted in at the start.
        os::populate(at.esi_at, n * slot_esis * 2);
        os::populate(at.scratch_at, scratch);
        // Decompressed blocks land here (one block's bytes).
        os::populate(at.out_at, g.block_bytes() as usize);
        true
    }

    /// Bound to a session: say so, check the target can hold it (the decoder's memory is
    /// faulted in once the first report is out; the slot pool was at the start).
    fn bound(&mut self, now: u64, session: u64, g: Geometry) {
        self.geometry = Some(g);
        self.bound_at = now;
        self.prefault_due = true;
        if !self.o.quiet {
            say(format_args!(
                "bb-client: session {:016x}: image {} bytes, {} blocks of {} x {} B, {} slots",
                session,
                g.image_size,
                g.block_count(),
                g.k,
                g.symbol_size,
                self.rx.slot_count()
            ));
        }
        if matches!(self.sink, Sink::Pending) {
            self.choose_disk(now, g.image_size);
            return;
        }
        if let Err(e) = self.sink.begin() {
            self.detail.clear();
            let _ = write!(
                self.detail,
                "emptying the target file before writing failed: {}",
                os::strerror(e)
            );
            self.rx.fail(now, FailReason::IoError);
            return;
        }
        if let Sink::Seek {
            block_dev_size: Some(size),
            ..
        } = self.sink
            && size < g.image_size
        {
            self.detail.clear();
            let _ = write!(
                self.detail,
                "target {} holds {} bytes but the image is {} bytes: use a disk at least as large as the image",
                target_label(self.o.output),
                size,
                g.image_size
            );
            self.rx.fail(now, FailReason::TargetTooSmall);
        }
    }

    /// `--dev auto` now that the image size is known: the one internal disk that fits, or
    /// the session fails (no usable target) with every candidate named in the detail.
    fn choose_disk(&mut self, now: u64, image_size: u64) {
        let found = disks::scan(disks::SYS_BLOCK);
        let disk = match disks::choose_auto(&found, image_size) {
            Ok(d) => d,
            Err(e) => {
                self.detail.clear();
                e.explain(&found, image_size, &mut self.detail);
                self.rx.fail(now, FailReason::NoTarget);
                return;
            }
        };
        let dev = disk.dev_path();
        say(format_args!(
            "bb-client: auto: target {} ({} bytes{}{}{})",
            Lossy(dev.as_bytes()),
            disk.size,
            if disk.model().is_empty() { "" } else { ", \"" },
            Lossy(disk.model()),
            if disk.model().is_empty() { "" } else { "\"" },
        ));
        match open_target(Output::Path(dev.as_bytes()), self.o.assume_zeroed) {
            Ok(sink) => self.sink = sink,
            Err(f) => {
                self.detail = f.line;
                self.rx.fail(now, FailReason::NoTarget);
            }
        }
    }

    fn too_large(&self, g: &Geometry) -> Finish {
        let (slot, _, _) = Receiver::slot_needs(g);
        Finish::fail(EXIT_TOO_LARGE, |l| {
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
                if self.sink.in_order() {
                    ", two blocks in memory for an in-order sink"
                } else {
                    ""
                }
            );
        })
    }

    /// The final line and exit code from the outcome, and the statistics line.
    fn finish(mut self) -> Finish {
        let since = if self.bound_at > 0 {
            self.bound_at
        } else {
            self.start
        };
        let elapsed = os::now_us().saturating_sub(since);
        let mut line = Line::new();
        let code = match self.rx.outcome() {
            Some(Outcome::Verified { digest }) => {
                let b = self.rx.bytes_written();
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
                let detail = &mut self.detail;
                if detail.is_empty() {
                    let _ = write!(detail, "{}", reason.as_str());
                    if reason == FailReason::DigestMismatch
                        && let Some(pin) = &self.o.digest
                    {
                        let computed = self.rx.computed_digest();
                        if computed == [0; 32] {
                            let _ = write!(
                                detail,
                                ": the server serves another image than the pinned digest {} (--digest, bb.digest=): check which image the server sends, or the pin",
                                Hex(pin)
                            );
                        } else {
                            let _ = write!(
                                detail,
                                ": what was written hashes to {}, not the pinned digest {} (--digest, bb.digest=): the server sent another image, or check the pin",
                                Hex(&computed),
                                Hex(pin)
                            );
                        }
                    } else if reason == FailReason::DigestMismatch {
                        detail.str(": what was written differs from the server's image (memory or disk fault?): run again and check this machine's RAM and disk");
                    }
                }
                line.str(detail.as_str());
                match reason {
                    FailReason::DigestMismatch => EXIT_VERIFY,
                    FailReason::TargetTooSmall | FailReason::NoTarget => EXIT_TARGET,
                    FailReason::IoError => EXIT_IO,
                    FailReason::ImageTooLarge => EXIT_TOO_LARGE,
                    FailReason::ServerGone | FailReason::Timeout => EXIT_NO_SERVER,
                    FailReason::Interrupted => EXIT_INTERRUPTED,
                    FailReason::DigestConflict => EXIT_CONFLICT,
                }
            }
            None => {
                line.str("ended without an outcome");
                EXIT_IO
            }
        };
        if !self.o.quiet {
            let (s, st) = (self.rx.stats(), &self.st);
            say(format_args!(
                "bb-client: {} symbols, {} decoded blocks, {} duplicates, {} evictions, {} dropped (malformed {}, other session {}, \
                 other source {}, not authenticated {}), loss {}%, {} reports, {} results, {} datagrams in {} coalesced reads (UDP GRO)",
                s.symbols,
                s.decoded,
                s.duplicates,
                s.evictions,
                s.malformed
                    + s.foreign
                    + s.no_slot
                    + s.unbound
                    + s.unexpected
                    + s.bad_tag
                    + s.untagged
                    + s.needs_key
                    + s.pin_refused
                    + st.foreign_source
                    + st.truncated,
                s.malformed + st.truncated,
                s.foreign,
                st.foreign_source,
                s.bad_tag + s.untagged + s.needs_key,
                percent_ppm(self.rx.loss_ppm()),
                s.reports,
                s.results,
                st.coalesced_datagrams,
                st.coalesced_reads,
            ));
        }
        // A failure says why in its own line (a server gone among them); a verified target
        // the server may not know of is worth a word.
        let results = self.rx.stats().results;
        if matches!(self.rx.outcome(), Some(Outcome::Verified { .. })) && !self.rx.acked() {
            say(format_args!(
                "bb-client: warning: the server did not acknowledge this machine's result ({results} tries): it may count this machine as lost or still receiving, though the target is verified"
            ));
        }
        Finish { code, line }
    }
}

/// The target as the operator named it, for messages (`--dev auto` names its choice when
/// it makes it).
fn target_label(out: Output<'_>) -> Lossy<'_> {
    Lossy(match out {
        Output::Path(p) | Output::Devices(p) => p,
        Output::Stdout => b"-",
        Output::Auto => b"auto",
    })
}

fn add_io_hint(l: &mut Line, e: Errno) {
    match e {
        libc::ENOSPC => l.str(" (the file system is full: free space or write elsewhere)"),
        libc::EPIPE => l.str(" (the reader of stdout went away)"),
        libc::EIO => l.str(
            " (the disk reported an error, or it was removed: check it with smartctl or dmesg)",
        ),
        // What a file or device whose disk, driver or file system is gone returns: a USB
        // disk pulled (ENODEV, ENXIO), a FUSE or network file system that ended (ENOTCONN,
        // ESTALE, ESHUTDOWN).
        libc::ENODEV | libc::ENXIO | libc::ENOTCONN | libc::ESTALE | libc::ESHUTDOWN => l.str(
            " (the target went away: the disk was removed, or the file system it is on ended)",
        ),
        _ => l,
    };
}

fn no_server(o: &Options<'_>, st: &ShellStats, rx: &Receiver<'_>) -> Finish {
    Finish::fail(EXIT_NO_SERVER, |l| {
        let s = rx.stats();
        if o.key.is_some() && s.bad_tag + s.untagged > 0 {
            let _ = write!(
                l,
                "no session authenticated with your key within {} s: data heard, but not authenticated with your key ({} packets without a tag, {} with a tag that does not verify): give the server the same key (bb-server --key-file)",
                o.timeout_s, s.untagged, s.bad_tag
            );
            return;
        }
        if o.key.is_none() && s.needs_key > 0 {
            let _ = write!(
                l,
                "no session within {} s: the server requires a key ({} authenticated packets heard): give this machine the same key with --key-file FILE (bb.key= for /init)",
                o.timeout_s, s.needs_key
            );
            return;
        }
        if let Some(pin) = &o.digest
            && s.pin_refused > 0
        {
            let _ = write!(
                l,
                "no session within {} s serves the pinned image digest {} (--digest): {} announces of another image refused",
                o.timeout_s,
                Hex(pin),
                s.pin_refused
            );
            return;
        }
        if st.from_server > 0 {
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
    // Fewer reads where the NIC coalesces; nothing changes where it cannot.
    let _ = os::set_udp_gro(s.0);
    // The server's rate control times each report by when its newest packet arrived here,
    // not by when this process got to read it; without stamps, the read time stands in.
    let _ = os::set_receive_timestamps(s.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(e: Errno) -> Line {
        let mut l = Line::new();
        add_io_hint(&mut l, e);
        l
    }

    #[test]
    fn a_target_that_went_away_or_failed_is_named_as_such() {
        for e in [libc::ENOTCONN, libc::ENODEV, libc::ENXIO, libc::ESTALE] {
            assert!(
                hint(e).as_str().contains("the target went away"),
                "{e}: {}",
                hint(e).as_str()
            );
        }
        assert!(hint(libc::EIO).as_str().contains("or it was removed"));
        assert!(hint(libc::ENOSPC).as_str().contains("full"));
        assert!(hint(libc::EINVAL).is_empty());
    }

    #[test]
    fn the_target_is_named_as_given() {
        let mut l = Line::new();
        let _ = write!(l, "{}", target_label(Output::Path(b"/dev/sdb")));
        assert_eq!(l.as_str(), "/dev/sdb");
    }
}
