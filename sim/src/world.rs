//! The simulated world: one sender, N receivers, a broadcast medium, an event queue.
//!
//! Time is simulated microseconds. The sender and receivers are the real bb-proto state
//! machines; only the network is simulated: a bottleneck link with a rate and a drop-tail
//! queue, a delay, per-receiver loss (independent or bursty), duplication and reordering.

use crate::args::Options;
use crate::channel::{LossModel, Rng};
use crate::image;
use bb_proto::fec;
use bb_proto::receiver::{Event, Outcome, Receiver, ReceiverConfig, ReceiverStorage, Slot, Write};
use bb_proto::sender::{Sender, SenderConfig, SenderStorage, Transmit};
use bb_proto::wire::{DATA_OVERHEAD, FRAMING_BYTES, Geometry, MAX_DATAGRAM, PacketType};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

type Packet = Rc<[u8]>;

/// Blocks the simulated server's pipeline keeps given to the sender ahead of the forward
/// pass (bb-server's reading and compressing threads run ahead the same way).
const READY_AHEAD: u32 = 16;

enum Ev {
    SenderWake,
    /// A packet reaches the receivers: each one draws its own loss.
    Broadcast(Packet),
    /// A packet reaches one receiver (delayed, reordered or duplicated copies, unicast).
    Deliver(u32, Packet),
    RxTimer(u32),
    ToServer(u32, Packet),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The event queue: simulated time order, ties broken by insertion order (deterministic).
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Queued>>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }
    fn pop(&mut self) -> Option<Queued> {
        self.heap.pop().map(|Reverse(q)| q)
    }
}

/// What receivers share while the world runs: the queue, the image to compare with, and the
/// client-to-server path.
struct Shared<'i> {
    q: Queue,
    image: &'i [u8],
    buf: Vec<u8>,
    up_loss: f64,
    up_rng: Rng,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Life {
    /// Not yet joined (late joiner).
    Waiting,
    Alive,
    Dead,
}

/// Memory of one receiver.
struct RxMem {
    done: Vec<u64>,
    pool: Vec<u8>,
    slots: Vec<Slot>,
    esi_at: Vec<u16>,
    scratch: Vec<u8>,
    zero: Vec<u64>,
    out: Vec<u8>,
}

struct RxState {
    life: Life,
    late: bool,
    dies: bool,
    delay_us: u64,
    loss: LossModel,
    rng: Rng,
    timer_at: Option<u64>,
    mismatches: u64,
    finished_at: Option<u64>,
    /// Its own link after the shared one (a slow client): when that link is next free, ns.
    own_link: Option<u64>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub clients: u32,
    pub verified: u32,
    pub failed: u32,
    pub dead: u32,
    /// Receivers the sender declared lost.
    pub lost: u32,
    pub late: u32,
    pub unfinished: u32,
    pub mismatched_bytes: u64,
    pub wire_ratio: f64,
    pub data_packets: u64,
    pub source_packets: u64,
    pub forward: u64,
    pub proactive: u64,
    pub repair: u64,
    pub resend: u64,
    pub announces: u64,
    pub reports: u64,
    pub reports_per_client_s: f64,
    pub ranges: u64,
    pub status_ns_per_range: f64,
    pub status_ns_per_report: f64,
    /// When the first data packet was sent (the sender waits for the first receivers'
    /// hellos; one lost on the way is sent again after a while).
    pub first_data_s: f64,
    /// When the last receiver verified (not counting late joiners or slow receivers).
    pub completion_s: f64,
    pub late_completion_s: f64,
    /// When the last slow receiver verified.
    pub slow_completion_s: f64,
    /// Why the sender's rate last changed.
    pub rate_reason: &'static str,
    pub sim_s: f64,
    pub queue_drops: u64,
    pub evictions: u64,
    pub decoded_blocks: u64,
    pub slot_bytes: usize,
    pub final_rate_mbps: f64,
    /// Events the sender raised.
    pub events: u64,
    /// Blocks of the image that hold only zeros.
    pub zero_blocks: u32,
    /// Source symbols of the coded image (compressed blocks count their coded symbols,
    /// zero blocks none): the least a perfect channel would carry.
    pub coded_symbols: u64,
    /// Zero map packets sent.
    pub zero_maps: u64,
}

pub fn run(o: &Options) -> Report {
    let g = Geometry::new(o.image_size, o.symbol_size, o.k).expect("validated by args");
    let image = image::make_image(o, &g);
    let coded = image::code_blocks(&image, &g, o.compress);
    let blocks = g.block_count();
    let n = o.clients as usize;

    // Sender memory.
    let (tree, per_block) = SenderStorage::<u32>::words(&g);
    let (mut rt, mut st) = (vec![0u16; tree], vec![0u16; tree]);
    let (mut esi, mut checks) = (vec![0u16; per_block], vec![0u32; per_block]);
    let mut coded_len = vec![0u32; per_block];
    let mut clients = vec![None; n + 16];
    let alive_total = o.clients - o.dead_clients;
    let mut cfg = SenderConfig::new(o.seed.wrapping_mul(0x5851_F42D_4C95_7F2D) | 1, g);
    // Adapting, the rate starts where a kernel would report the link speed and has no
    // ceiling unless one is given; fixed, it is the ceiling or the link rate.
    cfg.rate_bps = match (o.send_rate_bps, o.adapt_rate) {
        (Some(r), _) => r,
        (None, true) => cfg.rate_bps,
        (None, false) => o.rate_bps,
    };
    cfg.start_rate_bps = o.start_rate_bps;
    cfg.fair = o.fair;
    cfg.adapt_rate = o.adapt_rate;
    cfg.proactive_repair = o.proactive;
    cfg.wanted_clients = alive_total;
    cfg.min_clients = o.clients - o.late_joiners;
    cfg.start_deadline_us = Some(2_000_000);
    let storage = SenderStorage {
        repair_tree: &mut rt,
        resend_tree: &mut st,
        next_repair_esi: &mut esi,
        block_checks: &mut checks,
        coded_len: &mut coded_len,
        clients: &mut clients,
    };
    let mut sender = Sender::new(cfg, storage, 0).expect("sender storage sized from geometry");

    // Receiver memory: calloc'd, so untouched slots cost nothing.
    let (slot_bytes, slot_esis, scratch) = Receiver::slot_needs(&g);
    let mut mems: Vec<RxMem> = (0..n)
        .map(|_| RxMem {
            done: vec![0; (blocks as usize).div_ceil(64)],
            pool: vec![0; slot_bytes * o.slots],
            slots: vec![Slot::FREE; o.slots],
            esi_at: vec![0; slot_esis * o.slots],
            scratch: vec![0; scratch],
            zero: vec![0; (blocks as usize).div_ceil(64)],
            out: vec![0; g.block_bytes() as usize],
        })
        .collect();
    // Machines present from the start listen from t=0; late joiners are switched on when
    // they join, so that their silence timeout counts from then.
    let mut unbuilt: Vec<Option<&mut RxMem>> = mems.iter_mut().map(Some).collect();
    let mut rxs: Vec<Option<Receiver<'_>>> = (0..n).map(|_| None).collect();
    let late_from = n - o.late_joiners as usize;
    let dead_from = late_from - o.dead_clients as usize;
    let mut states: Vec<RxState> = (0..n)
        .map(|i| {
            let mut rng = Rng::new(o.seed, i as u64);
            let spread = if o.delay_spread_us > 0 {
                rng.next_u64() % o.delay_spread_us
            } else {
                0
            };
            RxState {
                life: if i >= late_from {
                    Life::Waiting
                } else {
                    Life::Alive
                },
                late: i >= late_from,
                dies: i >= dead_from && i < late_from,
                delay_us: o.delay_us + spread,
                loss: LossModel::new(o.loss, o.burst),
                rng,
                timer_at: None,
                mismatches: 0,
                finished_at: None,
                own_link: (i < o.slow_clients as usize).then_some(0),
            }
        })
        .collect();
    let mut sh = Shared {
        q: Queue::default(),
        image: &image,
        buf: vec![0u8; 1500],
        up_loss: o.up_loss.unwrap_or(o.loss),
        up_rng: Rng::new(o.seed, u64::MAX - 1),
    };
    sh.q.push(0, Ev::SenderWake);
    for i in 0..late_from {
        let rx = rxs[i].insert(switch_on(o, i, unbuilt[i].take().expect("built once"), 0));
        arm_timer(rx, &mut states[i], i, 0, &mut sh.q);
    }

    let mut rep = Report {
        clients: o.clients,
        slot_bytes: slot_bytes * o.slots,
        ..Report::default()
    };
    let mut link_free_ns = 0u64;
    let mut first_data_us: Option<u64> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut status_ns = 0u128;
    let mut status_n = 0u64;
    let mut last_progress = 0u64;
    let join_block = (o.join_at * blocks as f64) as u32;
    let die_block = (o.die_at * blocks as f64) as u32;
    let mut joined = o.late_joiners == 0;
    let mut killed = o.dead_clients == 0;
    // Link time in nanoseconds: whole microseconds per packet would make the link a few
    // percent slower than its rate, and a sender at exactly the rate would overflow it.
    let pkt_ns = |len: usize, rate_bps: u64| {
        ((len + FRAMING_BYTES) as u64 * 8 * 1_000_000_000).div_ceil(rate_bps)
    };
    let mut link_bps = o.rate_bps;
    let sym_len = g.symbol_size as usize + DATA_OVERHEAD;
    let queue_limit_ns = |rate_bps: u64| pkt_ns(sym_len, rate_bps) * o.queue as u64;
    let step_block = (o.rate_step_at * blocks as f64) as u32;
    let mut stepped = o.rate_step_bps.is_none();
    let mut now = 0u64;
    let mut shown_rate = (sender.rate_reason(), 0);
    // BB_RATE_TRACE=1: one line per status report saying what the rate control made of it.
    let rate_trace = std::env::var_os("BB_RATE_TRACE").is_some_and(|v| !v.is_empty() && v != "0");

    while let Some(item) = sh.q.pop() {
        now = item.at;
        if now > o.max_time_us {
            break;
        }
        match item.ev {
            Ev::SenderWake => {
                // The shell's pipeline keeps a few blocks ready ahead of the forward pass.
                while sender.blocks_ready() < blocks
                    && sender.blocks_ready() < sender.forward_blocks_done() + READY_AHEAD
                {
                    let b = sender.blocks_ready();
                    sender
                        .block_ready(b, coded[b as usize].source)
                        .expect("blocks in order");
                }
                // What is due, then everything the sender wants to send now.
                sender.handle_timeout(now);
                while let Some(t) = sender.poll_transmit(now) {
                    let pkt: Packet = match t {
                        Transmit::Announce => {
                            let len = sender.build_announce(&mut buf).expect("buffer fits");
                            buf[..len].into()
                        }
                        Transmit::ZeroMap => {
                            let len = sender.build_zero_map(&mut buf).expect("buffer fits");
                            buf[..len].into()
                        }
                        Transmit::Symbol { block, esi, seq } => {
                            first_data_us.get_or_insert(now);
                            let data = &coded[block as usize].coded;
                            let len = sender
                                .build_symbol(block, esi, seq, data, &mut buf)
                                .expect("a block given");
                            buf[..len].into()
                        }
                        Transmit::ResultAck { to, client_id } => {
                            let len = sender
                                .build_result_ack(client_id, &mut buf)
                                .expect("buffer fits");
                            let s = &states[to as usize];
                            sh.q.push(now + s.delay_us, Ev::Deliver(to, buf[..len].into()));
                            continue;
                        }
                    };
                    // The bottleneck link: serialise at the link rate, drop when the queue is full.
                    let start = link_free_ns.max(now * 1000);
                    if start - now * 1000 > queue_limit_ns(link_bps) {
                        rep.queue_drops += 1;
                        continue;
                    }
                    link_free_ns = start + pkt_ns(pkt.len(), link_bps);
                    sh.q.push(link_free_ns.div_ceil(1000) + o.delay_us, Ev::Broadcast(pkt));
                }
                if let Some(at) = sender.poll_timeout(now) {
                    sh.q.push(at.max(now + 1), Ev::SenderWake);
                }
                if o.verbose && (sender.rate_reason(), sender.rate_bps() >> 24) != shown_rate {
                    shown_rate = (sender.rate_reason(), sender.rate_bps() >> 24);
                    eprintln!(
                        "t={:.3}s rate {:.0} Mbit/s ({})",
                        now as f64 / 1e6,
                        sender.rate_bps() as f64 / 1e6,
                        sender.rate_reason().as_str()
                    );
                }
                while let Some(e) = sender.poll_event() {
                    if o.verbose {
                        eprintln!("t={:.3}s {e:?}", now as f64 / 1e6);
                    }
                }
                let fwd = sender.forward_blocks_done();
                if !stepped && fwd >= step_block {
                    stepped = true;
                    link_bps = o.rate_step_bps.expect("set when not stepped");
                    if o.verbose {
                        eprintln!("t={:.3}s link rate now {link_bps} bit/s", now as f64 / 1e6);
                    }
                }
                if !joined && fwd >= join_block {
                    joined = true;
                    for i in late_from..n {
                        states[i].life = Life::Alive;
                        let m = unbuilt[i].take().expect("built once");
                        let rx = rxs[i].insert(switch_on(o, i, m, now));
                        arm_timer(rx, &mut states[i], i, now, &mut sh.q);
                    }
                }
                if !killed && fwd >= die_block {
                    killed = true;
                    for s in states.iter_mut().filter(|s| s.dies) {
                        s.life = Life::Dead;
                    }
                }
                if o.verbose && now - last_progress >= 1_000_000 {
                    last_progress = now;
                    let done = rxs
                        .iter()
                        .flatten()
                        .map(|r| r.progress().0 as u64)
                        .sum::<u64>();
                    eprintln!(
                        "t={:.1}s forward {}/{} blocks, receivers {:.1}% done, verified {}, ratio {:.4}",
                        now as f64 / 1e6,
                        fwd,
                        blocks,
                        100.0 * done as f64 / (blocks as f64 * n as f64),
                        sender.verified_count(),
                        sender.wire_ratio()
                    );
                }
            }
            Ev::Broadcast(pkt) => {
                for i in 0..n {
                    let s = &mut states[i];
                    if s.life != Life::Alive || s.loss.lose(&mut s.rng) {
                        continue;
                    }
                    if let Some(free) = s.own_link.as_mut() {
                        // The slow link: serialise at its rate, drop when its queue is full.
                        let start = (*free).max(now * 1000);
                        if start - now * 1000 > queue_limit_ns(o.slow_rate_bps) {
                            rep.queue_drops += 1;
                            continue;
                        }
                        *free = start + pkt_ns(pkt.len(), o.slow_rate_bps);
                        let at = free.div_ceil(1000) + s.delay_us - o.delay_us;
                        sh.q.push(at.max(now + 1), Ev::Deliver(i as u32, pkt.clone()));
                        continue;
                    }
                    let extra = s.delay_us - o.delay_us
                        + if s.rng.chance(o.reorder) {
                            1 + s.rng.next_u64() % o.reorder_window_us.max(1)
                        } else {
                            0
                        };
                    if s.rng.chance(o.dup) {
                        sh.q.push(now + extra + 10, Ev::Deliver(i as u32, pkt.clone()));
                    }
                    if extra > 0 {
                        sh.q.push(now + extra, Ev::Deliver(i as u32, pkt.clone()));
                        continue;
                    }
                    deliver(alive(&mut rxs[i]), &mut states[i], i, &pkt, now, &mut sh);
                }
            }
            Ev::Deliver(i, pkt) => {
                let i = i as usize;
                if states[i].life == Life::Alive {
                    deliver(alive(&mut rxs[i]), &mut states[i], i, &pkt, now, &mut sh);
                }
            }
            Ev::RxTimer(i) => {
                let i = i as usize;
                if states[i].timer_at == Some(now) {
                    states[i].timer_at = None;
                }
                if states[i].life == Life::Alive {
                    poll_rx(alive(&mut rxs[i]), &mut states[i], i, now, &mut sh);
                }
            }
            Ev::ToServer(i, pkt) => {
                let is_status = pkt.len() > 5 && pkt[5] == PacketType::Status as u8;
                let t0 = Instant::now();
                let r = sender.handle_datagram(now, i, &pkt);
                if rate_trace && is_status {
                    let (_, smp) = sender.last_rate_sample();
                    eprintln!(
                        "t={:.4}s client={i} sent={} received={} loss={:.1}% queue={:.1}ms congested={} {} rate={} Mbit/s",
                        now as f64 / 1e6,
                        smp.sent,
                        smp.received,
                        smp.loss_ppm as f64 / 1e4,
                        smp.queue_delay_us as f64 / 1e3,
                        smp.congested,
                        smp.note,
                        sender.rate_bps() / 1_000_000
                    );
                }
                if is_status && r.is_ok() {
                    status_ns += t0.elapsed().as_nanos();
                    status_n += 1;
                }
                sh.q.push(now, Ev::SenderWake);
            }
        }
        // Done when the sender has decided the session (as bb-server would: the wanted
        // clients verified, or every client is final, or a deadline) and every receiver that
        // is not dead has finished (result acknowledged).
        if joined
            && killed
            && sender.session_end().is_some()
            && states.iter().zip(&rxs).all(|(s, r)| {
                s.life == Life::Dead
                    || r.as_ref()
                        .is_some_and(|r| r.outcome().is_some() && r.finished())
            })
        {
            break;
        }
    }

    let stats = *sender.stats();
    rep.sim_s = now as f64 / 1e6;
    rep.first_data_s = first_data_us.unwrap_or(0) as f64 / 1e6;
    rep.data_packets = stats.data_packets;
    rep.source_packets = g.source_symbols();
    rep.wire_ratio = sender.wire_ratio();
    rep.forward = stats.forward_packets;
    rep.proactive = stats.proactive_packets;
    rep.repair = stats.repair_packets;
    rep.resend = stats.resend_packets;
    rep.announces = stats.announces;
    rep.reports = stats.status_reports;
    rep.ranges = stats.ranges;
    rep.final_rate_mbps = sender.rate_bps() as f64 / 1e6;
    rep.rate_reason = sender.rate_reason().as_str();
    rep.lost = sender.tally().lost;
    rep.zero_blocks = sender.zero_blocks();
    rep.coded_symbols = coded
        .iter()
        .map(|c| (c.coded.len() / g.symbol_size as usize) as u64)
        .sum();
    rep.zero_maps = stats.zero_maps;
    rep.events = stats.events;
    rep.status_ns_per_report = status_ns as f64 / status_n.max(1) as f64;
    rep.status_ns_per_range = status_ns as f64 / stats.ranges.max(1) as f64;
    let mut client_seconds = 0.0;
    for (s, r) in states.iter().zip(&rxs) {
        if let Some(r) = r {
            rep.evictions += r.stats().evictions;
            rep.decoded_blocks += r.stats().decoded;
        }
        rep.mismatched_bytes += s.mismatches;
        if s.late {
            rep.late += 1;
        }
        if s.life == Life::Dead {
            rep.dead += 1;
            continue;
        }
        let end = s.finished_at.unwrap_or(now) as f64 / 1e6;
        client_seconds += end;
        let (outcome, written) = r
            .as_ref()
            .map_or((None, 0), |r| (r.outcome(), r.bytes_written()));
        match (outcome, s.finished_at) {
            (Some(Outcome::Verified { .. }), Some(t))
                if s.mismatches == 0 && written == o.image_size =>
            {
                rep.verified += 1;
                let t = t as f64 / 1e6;
                if s.late {
                    rep.late_completion_s = rep.late_completion_s.max(t);
                } else if s.own_link.is_some() {
                    rep.slow_completion_s = rep.slow_completion_s.max(t);
                } else {
                    rep.completion_s = rep.completion_s.max(t);
                }
            }
            (Some(_), _) => rep.failed += 1,
            (None, _) => rep.unfinished += 1,
        }
    }
    rep.reports_per_client_s = rep.reports as f64 / client_seconds.max(1e-9);
    rep
}

/// Hands one datagram to receiver `i`, writes what it completes (comparing with the image),
/// and sends what it wants to send.
fn deliver(
    rx: &mut Receiver<'_>,
    s: &mut RxState,
    i: usize,
    pkt: &[u8],
    now: u64,
    sh: &mut Shared<'_>,
) {
    if let Ok(Event::Unsupported { .. }) = rx.handle_datagram(now, pkt) {
        rx.fail(now, bb_proto::wire::FailReason::ImageTooLarge);
    }
    while let Some(w) = rx.poll_write(&mut image::Zstd) {
        s.mismatches += match w {
            Write::Data { offset, data, .. } => {
                let want = &sh.image[offset as usize..offset as usize + data.len()];
                want.iter().zip(data).filter(|(a, b)| a != b).count() as u64
            }
            Write::Zeros { offset, len } => {
                let want = &sh.image[offset as usize..(offset + len) as usize];
                want.iter().filter(|&&b| b != 0).count() as u64
            }
        };
        rx.write_done();
    }
    if rx.needs_flush() {
        rx.flushed(now, true);
    }
    poll_rx(rx, s, i, now, sh);
}

/// Switches on receiver `i` at `now` in its memory `m`.
fn switch_on<'m>(o: &Options, i: usize, m: &'m mut RxMem, now: u64) -> Receiver<'m> {
    let id = Rng::new(o.seed, 1_000_000 + i as u64).next_u64();
    let storage = ReceiverStorage {
        done: &mut m.done,
        pool: &mut m.pool,
        slots: &mut m.slots,
        esi_at: &mut m.esi_at,
        scratch: &mut m.scratch,
        zero: &mut m.zero,
        out: &mut m.out,
    };
    let mut cfg = ReceiverConfig::new(id);
    cfg.in_order = o.in_order;
    Receiver::new(cfg, storage, now).expect("--slots is checked against MAX_SLOTS")
}

/// The receiver of a machine that is alive (and so switched on).
fn alive<'r, 'm>(rx: &'r mut Option<Receiver<'m>>) -> &'r mut Receiver<'m> {
    rx.as_mut().expect("alive machines are switched on")
}

/// Runs receiver `i`'s timers and sends what it has to send now, then arms its timer.
fn poll_rx(rx: &mut Receiver<'_>, s: &mut RxState, i: usize, now: u64, sh: &mut Shared<'_>) {
    if rx.poll_timeout(now).is_some_and(|t| t <= now) {
        rx.handle_timeout(now);
        while let Some(len) = rx.poll_transmit(now, s.rng.next_u64() as u32, &mut sh.buf) {
            if !sh.up_rng.chance(sh.up_loss) {
                sh.q.push(
                    now + s.delay_us,
                    Ev::ToServer(i as u32, sh.buf[..len].into()),
                );
            }
        }
    }
    if rx.outcome().is_some() && s.finished_at.is_none() {
        s.finished_at = Some(now);
    }
    arm_timer(rx, s, i, now, &mut sh.q);
}

/// Queues a wake-up of receiver `i` at its next timeout, unless an earlier one is queued.
fn arm_timer(rx: &Receiver<'_>, s: &mut RxState, i: usize, now: u64, q: &mut Queue) {
    if let Some(t) = rx.poll_timeout(now)
        && t > now
        && s.timer_at.is_none_or(|at| t < at)
    {
        s.timer_at = Some(t);
        q.push(t, Ev::RxTimer(i as u32));
    }
}

/// Bytes of decoder scratch per receiver (for the memory line).
pub fn scratch_bytes(o: &Options) -> usize {
    fec::decode_scratch_bytes(o.k as usize, o.symbol_size as usize)
}
