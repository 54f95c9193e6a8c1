//! `BB_RATE_TRACE=1`: one stderr line per status report saying what the rate control made
//! of it (packets the client received against those the sender counts as sent in the same
//! span, the loss, the client's loss floor, the rate), and one per decision that moved the
//! rate or its reason. For finding out why the rate moves.

use std::net::SocketAddrV4;

use bb_proto::sender::{RateSample, Sender};

/// The environment variable that turns the trace on (any value but empty or "0").
pub const ENV: &str = "BB_RATE_TRACE";

pub struct RateTrace {
    enabled: bool,
    seen: u64,
    /// The rate and its reason as last printed by `after_timeout`.
    decided: (u64, &'static str),
}

impl RateTrace {
    pub fn from_env() -> Self {
        let enabled = std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0");
        Self {
            enabled,
            seen: 0,
            decided: (0, ""),
        }
    }

    /// Prints the sender's latest rate sample when a report made a new one.
    pub fn after_datagram(&mut self, sender: &Sender<'_, SocketAddrV4>) {
        if !self.enabled {
            return;
        }
        let (count, sample) = sender.last_rate_sample();
        if count == self.seen {
            return;
        }
        self.seen = count;
        say!("{}", line(sample, sender.rate_bps()));
    }

    /// Prints the rate and why when a decision changed either.
    pub fn after_timeout(&mut self, sender: &Sender<'_, SocketAddrV4>, now_us: u64) {
        if !self.enabled {
            return;
        }
        let decided = (sender.rate_bps(), sender.rate_reason().as_str());
        if decided == self.decided {
            return;
        }
        self.decided = decided;
        say!("{}", decision_line(now_us, decided.0, decided.1));
    }
}

/// One line for a decision that moved the rate.
pub fn decision_line(now_us: u64, rate_bps: u64, reason: &str) -> String {
    format!(
        "rate-trace t={:.1}ms decided rate={:.1}Mbit/s reason={reason}",
        now_us as f64 / 1e3,
        rate_bps as f64 / 1e6
    )
}

/// One trace line: times in ms, losses in percent, the rate in Mbit/s.
pub fn line(s: &RateSample, rate_bps: u64) -> String {
    let pct = |ppm: u32| ppm as f64 / 1e4;
    format!(
        "rate-trace t={:.1}ms client={:016x} report={} span={:.1}ms received={} sent={} loss={:.1}% client_loss={:.1}% floor={:.1}% congested={} rtt_min={:.2}ms queue={:.2}ms rtt={:.2}ms age={:.2}ms send_gap={} loss_events={:.3}% sent_at={:.1}Mbit/s paced_at={:.1}Mbit/s arrived_at={:.1}Mbit/s saturated={:.1}Mbit/s rate={:.1}Mbit/s {}",
        s.at_us as f64 / 1e3,
        s.client_id,
        s.report_seq,
        s.span_us as f64 / 1e3,
        s.received,
        s.sent,
        pct(s.loss_ppm),
        pct(s.client_loss_ppm),
        pct(s.floor_ppm),
        s.congested,
        s.rtt_min_us as f64 / 1e3,
        s.queue_delay_us as f64 / 1e3,
        s.rtt_us as f64 / 1e3,
        s.age_us as f64 / 1e3,
        s.send_gap,
        s.loss_event_ppm as f64 / 1e4,
        s.sent_bps as f64 / 1e6,
        s.paced_bps as f64 / 1e6,
        s.arrival_bps as f64 / 1e6,
        s.saturated_bps as f64 / 1e6,
        rate_bps as f64 / 1e6,
        s.note,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_every_figure() {
        let s = RateSample {
            client_id: 0xab,
            report_seq: 7,
            at_us: 1_500,
            span_us: 20_000,
            sent: 1000,
            received: 700,
            client_loss_ppm: 10_000,
            loss_ppm: 300_000,
            floor_ppm: 20_000,
            congested: true,
            rtt_min_us: 250,
            queue_delay_us: 4_000,
            rtt_us: 4_250,
            loss_event_ppm: 1_250,
            sent_bps: 300_000_000,
            arrival_bps: 210_000_000,
            paced_bps: 320_000_000,
            send_gap: true,
            age_us: 1_250,
            saturated_bps: 190_000_000,
            note: "sample",
        };
        let l = line(&s, 200_000_000);
        for part in [
            "t=1.5ms",
            "client=00000000000000ab",
            "report=7",
            "span=20.0ms",
            "received=700",
            "sent=1000",
            "loss=30.0%",
            "client_loss=1.0%",
            "floor=2.0%",
            "congested=true",
            "rtt_min=0.25ms",
            "queue=4.00ms",
            "rtt=4.25ms",
            "age=1.25ms",
            "send_gap=true",
            "loss_events=0.125%",
            "sent_at=300.0Mbit/s",
            "paced_at=320.0Mbit/s",
            "arrived_at=210.0Mbit/s",
            "saturated=190.0Mbit/s",
            "rate=200.0Mbit/s",
            "sample",
        ] {
            assert!(l.contains(part), "{part} missing from {l}");
        }
    }

    #[test]
    fn decision_line_names_the_rate_and_why() {
        let l = decision_line(12_500, 964_600_000, "probing");
        assert_eq!(
            l,
            "rate-trace t=12.5ms decided rate=964.6Mbit/s reason=probing"
        );
    }
}
