//! The sending session: drives the sans-IO sender with sockets, a clock and the image.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant, SystemTime};

use bb_proto::sender::{
    ClientInfo, ClientState, EVENT_DRAIN_EVERY, Event, Sender, SenderConfig, SenderStorage,
    SessionEnd, Transmit,
};
use bb_proto::wire::auth::TRAILER_LEN;
use bb_proto::wire::{DATA_OVERHEAD, FRAMING_BYTES, Geometry};

use crate::cli::{
    DEFAULT_START_WAIT_S, DEFAULT_TIMEOUT_AFTER_FORWARD_S, MapChoice, Options, Source,
};
use crate::digest_ahead::{DigestAhead, ImageWatch};
use crate::feeder::Feeder;
use crate::image::{self, Image};
use crate::net::{Full, Net, SendError, Sent};
use crate::prepare;
use crate::proto_link;
use crate::ratetrace::RateTrace;
use crate::report::{ClientRow, CodingFigures, Summary, hex, human_bytes, human_duration};
use crate::sidefile::{self, SideMap};
use crate::sys;

/// The oldest a control datagram's kernel receive timestamp is believed (a loop never
/// leaves datagrams waiting this long; a wall-clock step makes older ones meaningless).
const MAX_RECEIVE_AGE: Duration = Duration::from_millis(500);

pub const EXIT_OK: i32 = 0;
pub const EXIT_CLIENTS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_IMAGE: i32 = 3;
pub const EXIT_NETWORK: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 130;

/// Most clients tracked.
const CLIENT_TABLE: usize = 4096;
/// Longest sleep while the workers are still coding blocks the sender waits for.
const CODING_POLL_US: u64 = 1000;
/// How often a regular image file's size and modification time are checked.
const IMAGE_WATCH_US: u64 = 500_000;

fn us(d: f64) -> u64 {
    (d * 1e6) as u64
}

/// Live status line (terminal) or periodic log lines, and event lines.
struct Progress {
    quiet: bool,
    tty: bool,
    line_shown: bool,
    next_draw_us: u64,
    last_bytes: u64,
    last_us: u64,
    shown_rate_bps: f64,
}

impl Progress {
    fn event(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.line_shown {
            say_raw!("\r\x1b[K");
            self.line_shown = false;
        }
        say!("bb-server: {msg}");
        self.next_draw_us = 0;
    }

    fn clear(&mut self) {
        if self.line_shown {
            say_raw!("\r\x1b[K");
            self.line_shown = false;
        }
    }
}

struct Run<'s, 'a> {
    o: &'s Options,
    sender: Sender<'a, SocketAddrV4>,
    geometry: Geometry,
    net: Net,
    image: &'s Image,
    feeder: Feeder,
    side_file: Option<String>,
    progress: Progress,
    start: Instant,
    /// (time, bytes sent) when the forward pass started and when it ended.
    pass_start: Option<(u64, u64)>,
    pass_end: Option<(u64, u64)>,
    rbuf: Vec<u8>,
    small: Vec<u8>,
    batch: Vec<u8>,
    batch_n: usize,
    pkt_len: usize,
    /// The image digest being read ahead of the forward pass (a seekable image without a
    /// side file), so that it is announced early and clients of a restarted server resume.
    digest_ahead: Option<DigestAhead>,
    watch: Option<ImageWatch>,
    next_watch_us: u64,
    /// The image changed or failed: the session is closing (clients are told), then the
    /// server exits with this message.
    image_failed: Option<String>,
    rate_trace: RateTrace,
    /// When the control socket was last found empty (session clock).
    control_empty_us: u64,
}

enum End {
    Done(i32, String),
    Fatal(i32, String),
}

fn client_label(c: &ClientInfo<SocketAddrV4>) -> String {
    format!("{} (id {:016x})", c.addr, c.id)
}

impl Run<'_, '_> {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn percent(&self, c: &ClientInfo<SocketAddrV4>) -> f64 {
        c.blocks_done as f64 * 100.0 / self.geometry.block_count().max(1) as f64
    }

    /// Tells the operator what changed, as the sender reports it.
    fn events(&mut self) {
        while let Some(e) = self.sender.poll_event() {
            let mark = Some((self.now_us(), self.sender.stats().bytes));
            match e {
                Event::Started => self.pass_start = self.pass_start.or(mark),
                Event::FirstPassDone => self.pass_end = self.pass_end.or(mark),
                _ => {}
            }
            let client = |row| self.sender.client(row).copied();
            let msg = match e {
                Event::ClientJoined { row } => client(row).map(|c| {
                    if c.resumed {
                        format!(
                            "client resumed: {} holds {:.1}% from the earlier session of this image",
                            client_label(&c),
                            self.percent(&c)
                        )
                    } else {
                        format!("client joined: {}", client_label(&c))
                    }
                }),
                Event::ClientBack { row } => {
                    client(row).map(|c| format!("client back: {}", client_label(&c)))
                }
                Event::ClientRestarted { row } => client(row).map(|c| {
                    format!(
                        "client restarted: {} (its earlier run from this address left; one machine, one row)",
                        client_label(&c)
                    )
                }),
                Event::ClientVerified { row } => client(row).map(|c| {
                    let secs = c.finished_us.saturating_sub(c.first_heard_us) as f64 / 1e6;
                    format!(
                        "client verified: {} in {}",
                        client_label(&c),
                        human_duration(secs)
                    )
                }),
                Event::ClientFailed { row, reason } => client(row)
                    .map(|c| format!("client FAILED: {}: {}", client_label(&c), reason.as_str())),
                Event::ClientLost { row } => client(row).map(|c| {
                    format!(
                        "client lost: {} silent for {:.0} s at {:.1}%",
                        client_label(&c),
                        self.o.client_timeout_s,
                        self.percent(&c)
                    )
                }),
                Event::FirstPassDone => self.sender.digest().map(|d| {
                    format!(
                        "first pass done in {}; image digest {}",
                        human_duration(self.now_us() as f64 / 1e6),
                        hex(d)
                    )
                }),
                Event::Started if self.sender.forward_skipped() => Some(
                    "every client present resumed from an earlier session of this image: \
                     sending only the blocks they lack"
                        .to_string(),
                ),
                Event::ClientProgressed { .. }
                | Event::ClientFinishing { .. }
                | Event::Started
                | Event::Closing(_)
                | Event::Ended(_) => None,
            };
            if let Some(m) = msg {
                self.progress.event(&m);
            }
        }
    }

    fn drain_control(&mut self, limit: usize) {
        for i in 1..=limit {
            let Some(r) = self.net.recv(&mut self.rbuf) else {
                // Whatever comes next arrived after this moment.
                self.control_empty_us = self.now_us();
                break;
            };
            let now = self.now_us();
            // The kernel's receive time on the session's clock: how long ago it was. Not
            // before the socket was last seen empty (a wall-clock step between the kernel's
            // stamp and now would move it), nor older than a datagram can have waited.
            let arrived = r
                .arrived
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .filter(|ago| *ago <= MAX_RECEIVE_AGE)
                .map_or(now, |ago| now.saturating_sub(ago.as_micros() as u64))
                .max(self.control_empty_us);
            // Dropped datagrams are counted by the sender and shown in the summary.
            let _ = self
                .sender
                .handle_datagram_arrived(now, arrived, r.from, &self.rbuf[..r.len]);
            self.rate_trace.after_datagram(&self.sender);
            if i.is_multiple_of(EVENT_DRAIN_EVERY) {
                self.events();
            }
        }
    }

    fn flush(&mut self) -> Result<(), End> {
        if self.batch_n == 0 {
            return Ok(());
        }
        let n = self.batch_n;
        self.batch_n = 0;
        send_all(
            &mut self.net,
            &self.batch[..n * self.pkt_len],
            self.pkt_len,
            n,
        )
        .map_err(|e| End::Fatal(EXIT_NETWORK, e.to_string()))?;
        if let Some(notice) = self.net.take_notice() {
            self.progress.event(&notice.to_string());
        }
        Ok(())
    }

    /// Sends what the sender asks for, up to `max_packets`; true when it had more.
    fn transmit(&mut self, max_packets: usize) -> Result<bool, End> {
        let now = self.now_us();
        for _ in 0..max_packets {
            let Some(t) = self.sender.poll_transmit(now) else {
                self.flush()?;
                return Ok(false);
            };
            match t {
                Transmit::Symbol { block, esi, seq } => {
                    let data = self
                        .feeder
                        .coded(self.image, block)
                        .map_err(|e| End::Fatal(EXIT_IMAGE, e))?;
                    let at = self.batch_n * self.pkt_len;
                    let out = &mut self.batch[at..at + self.pkt_len];
                    let len = self
                        .sender
                        .build_symbol(block, esi, seq, data, out)
                        .map_err(|e| {
                            End::Fatal(
                                EXIT_CLIENTS,
                                format!("internal error building block {block}: {e}"),
                            )
                        })?;
                    debug_assert_eq!(len, self.pkt_len);
                    self.batch_n += 1;
                    if self.batch_n * self.pkt_len >= self.batch.len() {
                        self.flush()?;
                    }
                }
                Transmit::Announce => {
                    self.flush()?;
                    let n = self
                        .sender
                        .build_announce(&mut self.small)
                        .map_err(|e| End::Fatal(EXIT_CLIENTS, format!("internal error: {e}")))?;
                    let pkt = self.small[..n].to_vec();
                    send_all(&mut self.net, &pkt, pkt.len(), 1)
                        .map_err(|e| End::Fatal(EXIT_NETWORK, e.to_string()))?;
                }
                Transmit::ZeroMap => {
                    self.flush()?;
                    let n = self
                        .sender
                        .build_zero_map(&mut self.small)
                        .map_err(|e| End::Fatal(EXIT_CLIENTS, format!("internal error: {e}")))?;
                    let pkt = self.small[..n].to_vec();
                    send_all(&mut self.net, &pkt, pkt.len(), 1)
                        .map_err(|e| End::Fatal(EXIT_NETWORK, e.to_string()))?;
                }
                Transmit::ResultAck { to, client_id } => {
                    self.flush()?;
                    if let Ok(n) = self.sender.build_result_ack(client_id, &mut self.small) {
                        let pkt = self.small[..n].to_vec();
                        self.net.send_ack(&pkt, to);
                    }
                }
            }
        }
        self.flush()?;
        Ok(true)
    }

    fn wait(&mut self, until_us: u64, min_gap_us: u64, cap_us: u64) -> Result<(), End> {
        let now = self.now_us();
        let target = until_us.max(now + min_gap_us).min(now + cap_us);
        if target > now {
            sys::wait_readable(self.net.control(), Duration::from_micros(target - now))
                .map_err(|e| End::Fatal(EXIT_NETWORK, format!("poll: {e}")))?;
        }
        Ok(())
    }

    fn status_line(&mut self, now: u64) -> String {
        let blocks = self.geometry.block_count();
        let t = self.sender.tally();
        let resumed = if t.resumed > 0 {
            format!(", {} resumed", t.resumed)
        } else {
            String::new()
        };
        let clients = format!(
            "clients {} seen, {} verified, {} failed, {} lost{resumed}",
            t.seen, t.verified, t.failed, t.lost
        );
        let slowest = self
            .sender
            .clients()
            .filter(|c| !c.state.is_final())
            .min_by_key(|c| c.blocks_done)
            .map(|c| format!(", slowest {} {:.1}%", c.addr, self.percent(c)))
            .unwrap_or_default();
        let dt = now.saturating_sub(self.progress.last_us);
        if dt >= 200_000 || self.progress.last_us == 0 {
            let db = self.sender.stats().bytes - self.progress.last_bytes;
            self.progress.shown_rate_bps = db as f64 * 8.0 * 1e6 / dt.max(1) as f64;
            self.progress.last_bytes = self.sender.stats().bytes;
            self.progress.last_us = now;
        }
        let rate = format!(
            "{:.1} Mbit/s (rate {:.0} Mbit/s: {})",
            self.progress.shown_rate_bps / 1e6,
            self.sender.rate_bps() as f64 / 1e6,
            self.sender.rate_reason().as_str()
        );
        if !self.sender.started() {
            let wanted = self.o.min_clients;
            let left = self
                .sender
                .config()
                .start_deadline_us
                .map(|d| d.saturating_sub(now) as f64 / 1e6);
            return format!(
                "waiting for clients: {} of {wanted} present{}; {clients}",
                t.seen,
                left.map(|s| format!(", starting in {} at the latest", human_duration(s)))
                    .unwrap_or_default()
            );
        }
        let done = self.sender.forward_blocks_done();
        if done < blocks {
            let f = done as f64 / blocks as f64;
            let el = now.saturating_sub(self.sender.started_at_us().unwrap_or(now)) as f64 / 1e6;
            let eta = if f > 0.0 {
                human_duration(el * (1.0 - f) / f)
            } else {
                "?".into()
            };
            let c = &self.feeder.stats;
            let coding = format!(
                "{} zero blocks, compressed to {:.2}, coding {:.0} MB/s",
                c.zero_blocks,
                c.ratio(),
                c.worked_bytes as f64 / el.max(1e-3) / 1e6
            );
            format!(
                "{:5.1}%  {rate}  ETA {eta}  {coding}  {clients}{slowest}",
                f * 100.0
            )
        } else {
            let what = if self.sender.is_idle() {
                "sent; waiting for clients"
            } else {
                "repairing"
            };
            format!("100.0% {what}  {rate}  {clients}{slowest}")
        }
    }

    fn draw(&mut self, now: u64, force: bool) {
        if self.progress.quiet || (!force && now < self.progress.next_draw_us) {
            return;
        }
        let line = self.status_line(now);
        if self.progress.tty {
            let width = 160;
            let line: String = line.chars().take(width).collect();
            say_raw!("\r\x1b[K{line}");
            self.progress.line_shown = true;
            self.progress.next_draw_us = now + 250_000;
        } else {
            say!("bb-server: {line}");
            self.progress.next_draw_us = now + 2_000_000;
        }
    }

    /// The exit code and message for how the sender decided the session, from the client
    /// table as it stood when the session was decided.
    fn outcome(&self, end: SessionEnd) -> (i32, String) {
        let t = self
            .sender
            .decided_tally()
            .unwrap_or_else(|| self.sender.tally());
        let (verified, failed, lost, active) = (t.verified, t.failed, t.lost, t.active());
        let wanted = self.o.clients;
        match end {
            SessionEnd::WantedVerified if failed == 0 => {
                (EXIT_OK, format!("all {wanted} wanted clients verified"))
            }
            SessionEnd::WantedVerified => (
                EXIT_CLIENTS,
                format!("{verified} clients verified, but {failed} failed"),
            ),
            SessionEnd::WantedUnreachable => (
                EXIT_CLIENTS,
                format!(
                    "{verified} of {wanted} wanted clients verified; {failed} failed, {lost} lost"
                ),
            ),
            SessionEnd::Deadline => {
                let missing: Vec<String> = self
                    .sender
                    .clients()
                    .filter(|c| c.state != ClientState::Verified)
                    .map(|c| {
                        let st = match c.state {
                            ClientState::Failed(r) => format!("FAILED: {}", r.as_str()),
                            ClientState::Lost => format!("lost at {:.1}%", self.percent(c)),
                            _ => format!("at {:.1}%", self.percent(c)),
                        };
                        format!("{} ({st})", c.addr)
                    })
                    .collect();
                let mut msg = format!("timeout: {verified} of {wanted} wanted clients verified");
                if t.seen < wanted {
                    msg += &format!("; only {} clients were heard", t.seen);
                }
                if !missing.is_empty() {
                    msg += &format!("; not finished: {}", missing.join(", "));
                }
                (EXIT_CLIENTS, msg)
            }
            SessionEnd::Quiet => {
                let unfinished = active + lost;
                if t.seen == 0 {
                    (
                        EXIT_CLIENTS,
                        format!(
                            "no client was heard (clients must reach UDP port {} here; check firewalls, and that they receive {})",
                            self.o.control_port,
                            self.net.dest()
                        ),
                    )
                } else if failed + unfinished > 0 {
                    (
                        EXIT_CLIENTS,
                        format!(
                            "{verified} clients verified, {failed} failed, {unfinished} did not finish"
                        ),
                    )
                } else if verified == 0 {
                    (EXIT_CLIENTS, "no client verified the image".into())
                } else {
                    (EXIT_OK, format!("{verified} clients verified"))
                }
            }
            SessionEnd::Stopped => (EXIT_INTERRUPTED, "interrupted".into()),
        }
    }

    /// The digest read ahead, once it is: announced from then on. A read error of the
    /// source, or a digest that differs from the one the blocks already given add up to,
    /// is an image failure.
    fn digest_ahead(&mut self) -> Result<(), String> {
        let Some(r) = self.digest_ahead.as_ref().and_then(DigestAhead::poll) else {
            return Ok(());
        };
        self.digest_ahead = None;
        let (d, secs) = r?;
        if let Some(have) = self.sender.digest()
            && *have != d
        {
            return Err(format!(
                "the image changed while it was served: the blocks sent add up to digest {} \
                 but the image now reads as {}; stopping rather than send data no client \
                 could verify",
                hex(have),
                hex(&d)
            ));
        }
        if self.sender.digest().is_none() {
            self.sender.expect_digest(d);
            self.progress.event(&format!(
                "image digest read ahead in {}: {} (announced now; a server restarted on \
                 this image is resumed by its clients)",
                human_duration(secs),
                hex(&d)
            ));
        }
        Ok(())
    }

    /// Checks a regular image file for writes every half second.
    fn watch_image(&mut self, now: u64) -> Result<(), String> {
        if now < self.next_watch_us {
            return Ok(());
        }
        self.next_watch_us = now + IMAGE_WATCH_US;
        self.watch.as_ref().map_or(Ok(()), ImageWatch::check)
    }

    /// The image failed (changed, or a read error): tell the clients the session ends
    /// (closing announces), then exit with `msg`.
    fn image_failure(&mut self, msg: String) {
        if self.image_failed.is_none() {
            self.progress.event(&msg);
            self.image_failed = Some(msg);
            let now = self.now_us();
            self.sender.close(now);
        }
    }

    /// Takes coded blocks from the workers and tells the sender about them, in order.
    fn feed(&mut self) -> Result<(), End> {
        let Self { feeder, sender, .. } = self;
        let forward = sender.forward_blocks_done();
        feeder
            .pump(forward, &mut |b, e| proto_link::block_ready(sender, b, e))
            .map_err(|e| End::Fatal(EXIT_IMAGE, e))
    }

    /// Runs the session until the sender ends it (closing announces included), or a fatal
    /// error.
    fn main_loop(&mut self) -> End {
        let burst_us = self.sender.config().burst_bytes as f64 * 8e6;
        loop {
            if sys::interrupted() && self.sender.session_end().is_none() {
                let now = self.now_us();
                self.sender.close(now);
            }
            if self.image_failed.is_none() {
                let now = self.now_us();
                let r = match self.feed() {
                    Err(End::Fatal(EXIT_IMAGE, m)) => Err(m),
                    Err(e) => return e,
                    Ok(()) => self.digest_ahead().and_then(|_| self.watch_image(now)),
                };
                if let Err(m) = r {
                    self.image_failure(m);
                }
            }
            self.drain_control(512);
            let now = self.now_us();
            self.sender.handle_timeout(now);
            self.rate_trace.after_timeout(&self.sender, now);
            let more = match self.transmit(4 * Net::batch_limit(self.pkt_len)) {
                Ok(m) => m,
                Err(End::Fatal(EXIT_IMAGE, m)) => {
                    self.image_failure(m);
                    true
                }
                Err(e) => return e,
            };
            self.events();
            if self.sender.is_ended()
                && let Some(m) = self.image_failed.take()
            {
                return End::Fatal(EXIT_IMAGE, m);
            }
            if self.sender.is_ended() {
                let end = self
                    .sender
                    .session_end()
                    .expect("an ended session was decided");
                let (code, msg) = self.outcome(end);
                return End::Done(code, msg);
            }
            let now = self.now_us();
            self.draw(now, false);
            if more {
                continue;
            }
            let until = self.sender.poll_timeout(now).unwrap_or(now);
            // Sleep long enough to gather about half a burst of credit: batches stay large
            // and wakeups few. Never past a quarter second (progress, signals).
            // The pacer holds at most 4 ms at the current rate (see the pacer).
            let rate = self.sender.rate_bps().max(1) as f64;
            let burst = burst_us.min(rate * 4e3);
            let gap = ((burst / rate) / 2.0).min(2000.0) as u64;
            let sending = self.sender.started() && !self.sender.is_idle();
            let gap = if sending { gap } else { 0 };
            // Before sending starts the workers only fill the few blocks ahead: no need to poll.
            let cap = if self.feeder.all_coded() || !self.sender.started() {
                250_000
            } else {
                CODING_POLL_US
            };
            if let Err(e) = self.wait(until, gap, cap) {
                return e;
            }
        }
    }

    fn coding_figures(&self) -> CodingFigures {
        let c = &self.feeder.stats;
        CodingFigures {
            level: self.o.coding.level,
            blocks: self.geometry.block_count() as u64,
            zero_blocks: c.zero_blocks,
            zstd_blocks: c.zstd_blocks,
            raw_blocks: c.raw_blocks,
            data_bytes: c.data_bytes,
            coded_bytes: c.coded_bytes,
            compressed_ratio: c.ratio(),
            mb_s_per_core: c.per_core_mb_s(),
            mb_s_all_cores: c.all_cores_mb_s(),
            threads: c.threads,
            side_file: self.side_file.clone(),
        }
    }

    fn summary(&self, code: i32, outcome: &str) -> Summary {
        let st = *self.sender.stats();
        let forward = match (self.pass_start, self.pass_end) {
            (Some((t0, b0)), Some((t1, b1))) => (t1.saturating_sub(t0) as f64 / 1e6, b1 - b0),
            _ => (0.0, 0),
        };
        let cpu = sys::cpu_times();
        let block_bytes = self.geometry.block_bytes();
        let clients = self
            .sender
            .clients()
            .map(|c| {
                let (state, reason) = match c.state {
                    ClientState::Verified => ("OK", None),
                    ClientState::Failed(r) => ("FAILED", Some(r.as_str().to_string())),
                    ClientState::Lost => ("LOST", None),
                    ClientState::Receiving => ("RECEIVING", None),
                    ClientState::Finishing => ("FINISHING", None),
                };
                let bytes = if c.bytes_written > 0 {
                    c.bytes_written
                } else {
                    (c.blocks_done as u64 * block_bytes).min(self.geometry.image_size)
                };
                let end = if c.finished_us > 0 {
                    c.finished_us
                } else {
                    c.last_heard_us
                };
                ClientRow {
                    addr: c.addr.to_string(),
                    id: c.id,
                    state,
                    reason,
                    bytes,
                    percent: self.percent(c),
                    loss_pct: c.loss_ppm as f64 / 1e4,
                    time_s: end.saturating_sub(c.first_heard_us) as f64 / 1e6,
                }
            })
            .collect();
        Summary {
            image: self.image.name.clone(),
            image_bytes: self.image.size,
            session_id: self.sender.config().session_id,
            digest: self.sender.digest().copied(),
            destination: self.net.dest().to_string(),
            elapsed_s: self.start.elapsed().as_secs_f64(),
            bytes_sent: st.bytes,
            packets_sent: st.data_packets + st.announces + st.result_acks,
            data_packets: st.data_packets,
            source_symbols: self.geometry.source_symbols(),
            wire_ratio: self.sender.wire_ratio(),
            forward_packets: st.forward_packets,
            repair_packets: st.repair_packets,
            resend_packets: st.resend_packets,
            proactive_packets: st.proactive_packets,
            announces: st.announces,
            final_rate_bps: self.sender.rate_bps(),
            forward_s: forward.0,
            forward_bytes: forward.1,
            cpu_user_s: cpu.0,
            cpu_sys_s: cpu.1,
            rate_reason: self.sender.rate_reason().as_str().to_string(),
            status_reports: st.status_reports,
            dropped_datagrams: st.malformed
                + st.foreign
                + st.unexpected
                + st.table_full
                + st.bad_tag
                + st.untagged
                + st.needs_key,
            unauthenticated: st.bad_tag + st.untagged + st.needs_key,
            keyed: self.sender.config().key.is_some(),
            coding: self.coding_figures(),
            exit_code: code,
            outcome: outcome.to_string(),
            clients,
        }
    }
}

/// Longest the kernel may stay full, with no datagram going out, before the session gives up.
const SEND_STALL_LIMIT: Duration = Duration::from_secs(5);
/// Longest one wait for room in the socket buffer (room usually comes far sooner).
const SOCKET_ROOM_WAIT: Duration = Duration::from_millis(10);
/// Pause before retrying when the device queue is full: no event tells when it drains.
const DEVICE_QUEUE_PAUSE: Duration = Duration::from_micros(200);

/// Sends all `count` datagrams of `seg` bytes laid end to end in `buf`: the sender counted
/// them as sent, so none may be dropped. When the kernel is full, waits for room and sends
/// the rest; gives up once it stayed full for `SEND_STALL_LIMIT` without progress.
fn send_all(net: &mut Net, buf: &[u8], seg: usize, count: usize) -> Result<(), SendError> {
    let mut sent = 0;
    let mut stalled_since: Option<Instant> = None;
    loop {
        let (n, full) = match net.send_batch(&buf[sent * seg..count * seg], seg, count - sent)? {
            Sent::All => return Ok(()),
            Sent::WouldBlock { sent, full } => (sent, full),
        };
        sent += n;
        if n > 0 {
            stalled_since = None;
        }
        if stalled_since.get_or_insert_with(Instant::now).elapsed() >= SEND_STALL_LIMIT {
            return Err(SendError {
                to: net.dest(),
                err: full.error(),
                len: seg,
            });
        }
        match full {
            // A failed poll counts as a timeout: the stall limit still ends the wait.
            Full::SocketBuffer => {
                let _ = sys::wait_writable(net.data(), SOCKET_ROOM_WAIT);
            }
            Full::DeviceQueue => std::thread::sleep(DEVICE_QUEUE_PAUSE),
        }
    }
}

/// Token bucket depth: 2 ms at the rate, so that a stall (loading and hashing a block, a
/// late wakeup) costs no rate; at low rates up to two send batches (at most 4 ms), and at
/// least two packets.
fn burst_bytes(rate_bps: u64, pkt_len: usize) -> u64 {
    let wire = (pkt_len + FRAMING_BYTES) as u64;
    let batches = 2 * Net::batch_limit(pkt_len) as u64 * wire;
    let ms = |n: u64| rate_bps / 8 * n / 1000;
    ms(2).max(batches.min(ms(4))).max(2 * wire)
}

/// The side file this run uses, checked against the image, and its name.
fn side_map(
    o: &Options,
    img: &Image,
    g: &Geometry,
) -> Result<(Option<SideMap>, Option<String>), String> {
    let Source::Path(image_path) = &o.source else {
        return Ok((None, None));
    };
    let path = match &o.map {
        MapChoice::Off => return Ok((None, None)),
        MapChoice::Default => sidefile::default_path(image_path),
        MapChoice::Given(p) => p.clone(),
    };
    let Some(map) = SideMap::read(&path)? else {
        if matches!(o.map, MapChoice::Given(_)) {
            return Err(format!(
                "side file {} not found: make it with 'bb-server --prepare {} --map {}'",
                path.display(),
                image_path.display(),
                path.display()
            ));
        }
        return Ok((None, None));
    };
    let stamp = prepare::stamp(image_path)?;
    let arg = image_path.display().to_string();
    prepare::check_map(&map, img, g, &o.coding, &stamp, &arg)
        .map_err(|e| format!("side file {} refused: {e}", path.display()))?;
    if !o.quiet {
        say!(
            "bb-server: using side file {}: image digest {}",
            path.display(),
            hex(&map.digest)
        );
    }
    Ok((Some(map), Some(path.display().to_string())))
}

/// Runs a session; returns the exit code.
pub fn run(o: &Options) -> i32 {
    sys::catch_signals();
    let img = match image::open(&o.source, &prepare::open_plan(&o.coding, o.quiet)) {
        Ok(i) => i,
        Err(e) => {
            say!("bb-server: {e}");
            return if sys::interrupted() {
                EXIT_INTERRUPTED
            } else {
                EXIT_IMAGE
            };
        }
    };
    // Taken at open, checked while serving and at the end: an image written meanwhile is
    // not what the clients verified.
    let watch = match (&o.source, &img.store) {
        (Source::Path(p), image::Store::Seekable { .. }) => ImageWatch::of(p),
        _ => None,
    };
    let geometry = match prepare::geometry(img.size, &o.coding) {
        Ok(g) => g,
        Err(e) => {
            say!("bb-server: {e}");
            return EXIT_IMAGE;
        }
    };
    let (map, side_file) = match side_map(o, &img, &geometry) {
        Ok(m) => m,
        Err(e) => {
            say!("bb-server: {e}");
            return EXIT_IMAGE;
        }
    };
    let feeder = match Feeder::new(&img, geometry, &o.coding, map) {
        Ok(f) => f,
        Err(e) => {
            say!("bb-server: {e}");
            return EXIT_IMAGE;
        }
    };
    let session_id = match sys::random_u64() {
        Ok(v) => v,
        Err(e) => {
            say!("bb-server: getrandom: {e}");
            return EXIT_CLIENTS;
        }
    };
    let net = match Net::open(&o.socket_config()) {
        Ok(n) => n,
        Err(e) => {
            say!("bb-server: {e}");
            return EXIT_NETWORK;
        }
    };
    // A keyed session's data packets carry the tag after the CRC.
    let tag_len = if o.key.is_some() { TRAILER_LEN } else { 0 };
    let pkt_len = o.coding.symbol_size as usize + DATA_OVERHEAD + tag_len;
    let mut cfg = SenderConfig::new(session_id, geometry);
    cfg.wanted_clients = o.clients;
    cfg.min_clients = o.min_clients;
    let start_wait = o
        .wait_s
        .or((o.min_clients > 0).then_some(DEFAULT_START_WAIT_S));
    cfg.start_deadline_us = start_wait.map(us);
    let link_bps = if o.fixed_rate {
        None
    } else {
        crate::linkspeed::for_destination(
            SocketAddrV4::new(o.address, o.port),
            o.interface.as_ref(),
        )
    };
    if let Some(r) = o.rate_bps {
        cfg.rate_bps = r;
    }
    cfg.start_rate_bps = link_bps;
    cfg.fair = o.fair;
    cfg.min_rate_bps = o.min_rate_bps;
    cfg.adapt_rate = !o.fixed_rate;
    cfg.proactive_repair = o.proactive;
    cfg.burst_bytes = burst_bytes(link_bps.unwrap_or(cfg.rate_bps).min(cfg.rate_bps), pkt_len);
    cfg.client_timeout_us = us(o.client_timeout_s);
    cfg.lost_grace_us = us(o.lost_grace_s);
    cfg.session_timeout_us = o.timeout_s.map(us);
    cfg.linger_us = us(o.linger_s);
    cfg.key = o.key;

    let (tree, n) = SenderStorage::<SocketAddrV4>::words(&geometry);
    let mut repair_tree = vec![0u16; tree];
    let mut resend_tree = vec![0u16; tree];
    let mut next_repair_esi = vec![0u16; n];
    let mut block_checks = vec![0u32; n];
    let mut coded_len = vec![0u32; n];
    let mut table: Vec<Option<ClientInfo<SocketAddrV4>>> = vec![None; CLIENT_TABLE];
    let storage = SenderStorage {
        repair_tree: &mut repair_tree,
        resend_tree: &mut resend_tree,
        next_repair_esi: &mut next_repair_esi,
        block_checks: &mut block_checks,
        coded_len: &mut coded_len,
        clients: &mut table,
    };
    let mut sender = match Sender::new(cfg, storage, 0) {
        Ok(s) => s,
        Err(e) => {
            say!("bb-server: {e}");
            return EXIT_IMAGE;
        }
    };
    // A side file or a spool tells every block now: the digest is known before sending.
    for (b, e) in feeder.known_at_start().iter().enumerate() {
        if let Err(e) = proto_link::block_ready(&mut sender, b as u32, e) {
            say!("bb-server: {e}");
            return EXIT_IMAGE;
        }
    }
    // Read the digest ahead when the forward pass will not know it before sending.
    let digest_ahead = match &img.store {
        image::Store::Seekable { file, holes } if sender.digest().is_none() => {
            match DigestAhead::start(file, holes.clone(), geometry, &img.name) {
                Ok(d) => Some(d),
                Err(e) => {
                    say!("bb-server: cannot start the digest thread: {e}");
                    return EXIT_IMAGE;
                }
            }
        }
        _ => None,
    };
    let tty = sys::stderr_is_tty();
    let batch_max = Net::batch_limit(pkt_len);
    let mut r = Run {
        o,
        sender,
        geometry,
        net,
        image: &img,
        feeder,
        side_file,
        progress: Progress {
            quiet: o.quiet,
            tty,
            line_shown: false,
            next_draw_us: 0,
            last_bytes: 0,
            last_us: 0,
            shown_rate_bps: 0.0,
        },
        start: Instant::now(),
        pass_start: None,
        pass_end: None,
        rbuf: vec![0u8; 9216],
        small: vec![0u8; 1500],
        batch: vec![0u8; batch_max * pkt_len],
        batch_n: 0,
        pkt_len,
        digest_ahead,
        watch,
        next_watch_us: 0,
        image_failed: None,
        rate_trace: RateTrace::from_env(),
        control_empty_us: 0,
    };
    if !o.quiet {
        let how = if o.address.is_multicast() {
            "multicast group"
        } else {
            "address"
        };
        let mbit = |b: u64| b as f64 / 1e6;
        let rate_plan = match (o.fixed_rate, link_bps, o.rate_bps) {
            (true, _, Some(r)) => format!("at a fixed {:.1} Mbit/s", mbit(r)),
            (_, Some(l), Some(r)) if r < l => format!(
                "at a rate found up to the --rate ceiling {:.1} Mbit/s (link {:.0} Mbit/s)",
                mbit(r),
                mbit(l)
            ),
            (_, Some(l), _) => format!(
                "at a rate found from the link speed {:.0} Mbit/s down",
                mbit(l)
            ),
            (_, None, Some(r)) => format!(
                "at a rate probed upward from {:.0} Mbit/s to the --rate ceiling {:.1} Mbit/s (link speed unknown)",
                mbit(bb_proto::sender::PROBE_START_BPS.min(r)),
                mbit(r)
            ),
            (_, None, None) => format!(
                "at a rate probed upward from {:.0} Mbit/s (link speed unknown)",
                mbit(bb_proto::sender::PROBE_START_BPS)
            ),
        };
        let rate_plan = if o.fair {
            format!("{rate_plan}, TCP-friendly")
        } else {
            rate_plan
        };
        say!(
            "bb-server: sending {} ({}, {} bytes) to {how} {} {rate_plan}; listening on UDP port {}; session {session_id:016x}",
            img.name,
            human_bytes(img.size),
            img.size,
            r.net.dest(),
            o.control_port
        );
        say!(
            "bb-server: {} blocks of {} x {} bytes, {}{}",
            geometry.block_count(),
            geometry.k,
            geometry.symbol_size,
            match o.coding.level {
                Some(l) => format!(
                    "zero blocks skipped, the rest compressed (zstd level {l}, {} threads)",
                    o.coding.threads
                ),
                None => "zero blocks skipped, compression off".to_string(),
            },
            if o.clients > 0 {
                format!(
                    "; waiting for {} clients to verify (gives up {})",
                    o.clients,
                    match o.timeout_s {
                        Some(t) => format!("{t} s after sending starts"),
                        None => format!(
                            "{DEFAULT_TIMEOUT_AFTER_FORWARD_S} s after the first pass ends; --timeout to change"
                        ),
                    }
                )
            } else {
                format!(
                    "; stops {} s after the last client went quiet (--linger)",
                    o.linger_s
                )
            }
        );
        if o.min_clients > 0 {
            say!(
                "bb-server: starting when {} present, or after {} at the latest{}",
                if o.min_clients == 1 {
                    "the first client is".to_string()
                } else {
                    format!("{} clients are", o.min_clients)
                },
                human_duration(start_wait.unwrap_or(0.0)),
                if o.wait_s.is_none() {
                    " (--wait to change)"
                } else {
                    ""
                }
            );
        }
    }
    let (mut code, mut outcome) = match r.main_loop() {
        End::Done(c, m) | End::Fatal(c, m) => (c, m),
    };
    if let Some(changed) = r.watch.as_ref().and_then(|w| w.check().err()) {
        if code == EXIT_OK {
            code = EXIT_IMAGE;
            outcome = changed;
        } else {
            outcome = format!("{outcome}; {changed}");
        }
    }
    r.progress.clear();
    if code != EXIT_OK {
        say!("bb-server: {outcome}");
    }
    let summary = r.summary(code, &outcome);
    say_raw!("{}", summary.to_text());
    if let Some(p) = &o.summary_json {
        let j = summary.to_json();
        let res = if p.as_os_str() == "-" {
            use std::io::Write;
            std::io::stdout().write_all(j.as_bytes())
        } else {
            std::fs::write(p, j)
        };
        if let Err(e) = res {
            say!(
                "bb-server: cannot write the JSON summary to {}: {e}",
                p.display()
            );
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_bounded_by_batches_and_time() {
        let pkt = 1444;
        let b = Net::batch_limit(pkt);
        assert_eq!(b, 45);
        assert_eq!(burst_bytes(10_000_000_000, pkt), 2_500_000);
        assert_eq!(burst_bytes(500_000_000, pkt), 2 * 45 * 1486);
        assert_eq!(burst_bytes(80_000_000, pkt), 40_000);
        assert_eq!(burst_bytes(100_000, pkt), 2 * 1486);
    }
}
