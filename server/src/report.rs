//! Human and machine output: progress line, events, final summary (text and JSON).

use std::fmt::Write as _;

/// 1.5 GiB, 700 KiB, 12 B.
/// Shows a line of progress of long work: redrawn in place on a terminal, one log line each
/// otherwise.
pub fn progress_line(tty: bool, line: &str) {
    if tty {
        say_raw!("\r\x1b[Kbb-server: {line}");
    } else {
        say!("bb-server: {line}");
    }
}

/// Clears a progress line drawn in place, before the next message.
pub fn end_progress_line(tty: bool) {
    if tty {
        say_raw!("\r\x1b[K");
    }
}

pub fn human_bytes(n: u64) -> String {
    const U: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", U[i])
}

/// 0:07, 12:30, 1:02:03.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// One client in the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRow {
    pub addr: String,
    pub id: u64,
    /// OK, FAILED, LOST, RECEIVING or FINISHING.
    pub state: &'static str,
    /// Why it failed.
    pub reason: Option<String>,
    pub bytes: u64,
    pub percent: f64,
    pub loss_pct: f64,
    pub time_s: f64,
}

/// Everything the final summary says.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub image: String,
    pub image_bytes: u64,
    pub session_id: u64,
    pub digest: Option<[u8; 32]>,
    pub destination: String,
    pub elapsed_s: f64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub data_packets: u64,
    pub source_symbols: u64,
    pub wire_ratio: f64,
    pub forward_packets: u64,
    pub repair_packets: u64,
    pub resend_packets: u64,
    pub proactive_packets: u64,
    pub announces: u64,
    pub final_rate_bps: u64,
    /// The first pass (every block sent once): its duration and the bytes sent in it
    /// (announces and repairs included), 0 when it did not finish. Its rate is the sending
    /// rate the load tests compare.
    pub forward_s: f64,
    pub forward_bytes: u64,
    /// CPU seconds this process used, user and system.
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// Why the rate last changed (congestion, slow client left behind, link speed, ...).
    pub rate_reason: String,
    pub status_reports: u64,
    pub dropped_datagrams: u64,
    /// Datagrams dropped for their tag: forged, modified, another key, or (un)tagged
    /// against the session's choice.
    pub unauthenticated: u64,
    /// The session was authenticated with a pre-shared key.
    pub keyed: bool,
    pub coding: CodingFigures,
    pub exit_code: i32,
    pub outcome: String,
    pub clients: Vec<ClientRow>,
}

/// How the image's blocks were coded, for the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodingFigures {
    /// zstd level, None when compression is off.
    pub level: Option<i32>,
    pub blocks: u64,
    pub zero_blocks: u64,
    pub zstd_blocks: u64,
    pub raw_blocks: u64,
    /// Image bytes of the non-zero blocks.
    pub data_bytes: u64,
    /// Their coded bytes.
    pub coded_bytes: u64,
    /// Coded bytes per image byte of the non-zero blocks.
    pub compressed_ratio: f64,
    /// Compression MB/s of one core, and of all the worker threads together (0: the blocks
    /// came coded from a spool).
    pub mb_s_per_core: f64,
    pub mb_s_all_cores: f64,
    pub threads: usize,
    /// The side file used, if any.
    pub side_file: Option<String>,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_f(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        "null".into()
    }
}

impl Summary {
    /// Verified clients.
    pub fn verified(&self) -> usize {
        self.clients.iter().filter(|c| c.state == "OK").count()
    }

    /// The sending rate of the first pass, Mbit/s (0 when it did not finish).
    pub fn forward_mbit_s(&self) -> f64 {
        if self.forward_s > 0.0 {
            self.forward_bytes as f64 * 8.0 / self.forward_s / 1e6
        } else {
            0.0
        }
    }

    /// The summary as a JSON object (one line per field, stable names).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{\n");
        let mut field = |name: &str, v: String| {
            let _ = writeln!(o, "  \"{name}\": {v},");
        };
        let s = |v: &str| {
            let mut t = String::new();
            json_str(&mut t, v);
            t
        };
        field("image", s(&self.image));
        field("image_bytes", self.image_bytes.to_string());
        field("session_id", s(&format!("{:016x}", self.session_id)));
        field("digest", self.digest.map_or("null".into(), |d| s(&hex(&d))));
        field("destination", s(&self.destination));
        field("elapsed_s", json_f(self.elapsed_s));
        field("bytes_sent", self.bytes_sent.to_string());
        field("packets_sent", self.packets_sent.to_string());
        field("data_packets", self.data_packets.to_string());
        field("source_symbols", self.source_symbols.to_string());
        field("wire_ratio", json_f(self.wire_ratio));
        field("forward_packets", self.forward_packets.to_string());
        field("repair_packets", self.repair_packets.to_string());
        field("resend_packets", self.resend_packets.to_string());
        field("proactive_packets", self.proactive_packets.to_string());
        field("announces", self.announces.to_string());
        field("final_rate_bps", self.final_rate_bps.to_string());
        field("forward_s", json_f(self.forward_s));
        field("forward_bytes", self.forward_bytes.to_string());
        field("forward_mbit_s", json_f(self.forward_mbit_s()));
        field("cpu_user_s", json_f(self.cpu_user_s));
        field("cpu_sys_s", json_f(self.cpu_sys_s));
        field("rate_reason", s(&self.rate_reason));
        field("status_reports", self.status_reports.to_string());
        field("dropped_datagrams", self.dropped_datagrams.to_string());
        field("keyed", self.keyed.to_string());
        field("unauthenticated", self.unauthenticated.to_string());
        let c = &self.coding;
        field(
            "compress_level",
            c.level.map_or("null".into(), |l| l.to_string()),
        );
        field("blocks", c.blocks.to_string());
        field("zero_blocks", c.zero_blocks.to_string());
        field("zstd_blocks", c.zstd_blocks.to_string());
        field("raw_blocks", c.raw_blocks.to_string());
        field("data_bytes", c.data_bytes.to_string());
        field("coded_bytes", c.coded_bytes.to_string());
        field("compressed_ratio", json_f(c.compressed_ratio));
        field("compress_mb_s_per_core", json_f(c.mb_s_per_core));
        field("compress_mb_s", json_f(c.mb_s_all_cores));
        field("compress_threads", c.threads.to_string());
        field("side_file", c.side_file.as_deref().map_or("null".into(), s));
        field("exit_code", self.exit_code.to_string());
        field("outcome", s(&self.outcome));
        field("clients_verified", self.verified().to_string());
        o.push_str("  \"clients\": [");
        for (i, c) in self.clients.iter().enumerate() {
            o.push_str(if i == 0 { "\n    {" } else { ",\n    {" });
            o.push_str("\"address\": ");
            json_str(&mut o, &c.addr);
            let _ = write!(o, ", \"id\": \"{:016x}\", \"state\": ", c.id);
            json_str(&mut o, c.state);
            o.push_str(", \"reason\": ");
            match &c.reason {
                Some(r) => json_str(&mut o, r),
                None => o.push_str("null"),
            }
            let _ = write!(
                o,
                ", \"bytes\": {}, \"percent\": {}, \"loss_pct\": {}, \"time_s\": {}}}",
                c.bytes,
                json_f(c.percent),
                json_f(c.loss_pct),
                json_f(c.time_s)
            );
        }
        o.push_str(if self.clients.is_empty() {
            "]\n}\n"
        } else {
            "\n  ]\n}\n"
        });
        o
    }

    /// The summary for people.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "bb-server summary: {}", self.outcome);
        let _ = writeln!(
            o,
            "  image      {} ({} bytes, {})",
            self.image,
            self.image_bytes,
            human_bytes(self.image_bytes)
        );
        let _ = writeln!(
            o,
            "  digest     {}",
            self.digest.map_or(
                "(not complete: the first pass did not finish)".into(),
                |d| hex(&d)
            )
        );
        let _ = writeln!(
            o,
            "  sent to    {}, session {:016x}",
            self.destination, self.session_id
        );
        let mbit = if self.elapsed_s > 0.0 {
            self.bytes_sent as f64 * 8.0 / self.elapsed_s / 1e6
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "  elapsed    {} ({:.1} s), average {mbit:.1} Mbit/s",
            human_duration(self.elapsed_s),
            self.elapsed_s
        );
        let _ = writeln!(
            o,
            "  sent       {} in {} packets ({} data packets)",
            human_bytes(self.bytes_sent),
            self.packets_sent,
            self.data_packets
        );
        let _ = writeln!(
            o,
            "  wire ratio {:.4} (data packets / {} source symbols): forward {}, proactive {}, repair {}, resend {}",
            self.wire_ratio,
            self.source_symbols,
            self.forward_packets,
            self.proactive_packets,
            self.repair_packets,
            self.resend_packets
        );
        if self.forward_s > 0.0 {
            let _ = writeln!(
                o,
                "  first pass {} in {:.1} s, {:.1} Mbit/s",
                human_bytes(self.forward_bytes),
                self.forward_s,
                self.forward_mbit_s()
            );
        }
        let _ = writeln!(
            o,
            "  cpu        {:.2} s user, {:.2} s system",
            self.cpu_user_s, self.cpu_sys_s
        );
        let c = &self.coding;
        let _ = writeln!(
            o,
            "  blocks     {}: {} zero (not sent), {} compressed, {} raw; {} of data coded to {} (ratio {:.3}, zstd {})",
            c.blocks,
            c.zero_blocks,
            c.zstd_blocks,
            c.raw_blocks,
            human_bytes(c.data_bytes),
            human_bytes(c.coded_bytes),
            c.compressed_ratio,
            c.level.map_or("off".into(), |l| format!("level {l}"))
        );
        if c.threads > 0 {
            let _ = writeln!(
                o,
                "  compress   {:.0} MB/s per core, {:.0} MB/s on {} threads (paced by sending){}",
                c.mb_s_per_core,
                c.mb_s_all_cores,
                c.threads,
                c.side_file
                    .as_deref()
                    .map(|f| format!("; side file {f}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            o,
            "  control    {} status reports, {} datagrams dropped ({} not authenticated{}), final rate {:.1} Mbit/s (last changed: {})",
            self.status_reports,
            self.dropped_datagrams,
            self.unauthenticated,
            if self.keyed {
                ", session keyed"
            } else {
                ", no key"
            },
            self.final_rate_bps as f64 / 1e6,
            self.rate_reason
        );
        if self.clients.is_empty() {
            let _ = writeln!(
                o,
                "  clients    none heard (check that clients reach UDP port 7854 here, and get data on 7855)"
            );
            return o;
        }
        let _ = writeln!(
            o,
            "  clients    {} heard, {} verified",
            self.clients.len(),
            self.verified()
        );
        let aw = self
            .clients
            .iter()
            .map(|c| c.addr.len())
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            o,
            "    {:<aw$}  {:<16}  {:<28}  {:>10}  {:>6}  {:>8}",
            "address", "id", "state", "bytes", "loss", "time"
        );
        for c in &self.clients {
            let state = match (&c.reason, c.state) {
                (Some(r), st) => format!("{st} {r}"),
                (None, "OK") => "OK".to_string(),
                (None, st) => format!("{st} at {:.1}%", c.percent),
            };
            let _ = writeln!(
                o,
                "    {:<aw$}  {:016x}  {:<28}  {:>10}  {:>5.2}%  {:>8}",
                c.addr,
                c.id,
                state,
                c.bytes,
                c.loss_pct,
                human_duration(c.time_s)
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            image: "dir/\"odd\"\nname.img".into(),
            image_bytes: 4 << 20,
            session_id: 0xabcdef,
            digest: Some([0xa5; 32]),
            destination: "127.0.0.1:7855".into(),
            elapsed_s: 1.23456,
            bytes_sent: 4_400_000,
            packets_sent: 3100,
            data_packets: 3000,
            source_symbols: 2980,
            wire_ratio: 3000.0 / 2980.0,
            forward_packets: 2980,
            repair_packets: 20,
            resend_packets: 0,
            proactive_packets: 0,
            announces: 12,
            final_rate_bps: 500_000_000,
            forward_s: 0.5,
            forward_bytes: 4_000_000,
            cpu_user_s: 0.25,
            cpu_sys_s: 0.125,
            rate_reason: "congestion".into(),
            status_reports: 40,
            dropped_datagrams: 0,
            unauthenticated: 0,
            keyed: false,
            coding: CodingFigures {
                level: Some(3),
                blocks: 6,
                zero_blocks: 4,
                zstd_blocks: 1,
                raw_blocks: 1,
                data_bytes: 1 << 20,
                coded_bytes: 700_000,
                compressed_ratio: 0.6676,
                mb_s_per_core: 312.4,
                mb_s_all_cores: 590.0,
                threads: 2,
                side_file: None,
            },
            exit_code: 1,
            outcome: "1 of 2 clients verified".into(),
            clients: vec![
                ClientRow {
                    addr: "10.0.0.2:7855".into(),
                    id: 1,
                    state: "OK",
                    reason: None,
                    bytes: 4 << 20,
                    percent: 100.0,
                    loss_pct: 0.5,
                    time_s: 1.0,
                },
                ClientRow {
                    addr: "10.0.0.3:7855".into(),
                    id: 2,
                    state: "FAILED",
                    reason: Some("target too small".into()),
                    bytes: 0,
                    percent: 0.0,
                    loss_pct: 0.0,
                    time_s: 0.2,
                },
            ],
        }
    }

    #[test]
    fn json_summary_is_well_formed_and_escaped() {
        let j = sample().to_json();
        assert!(j.contains(r#""image": "dir/\"odd\"\nname.img","#), "{j}");
        assert!(j.contains(&format!("\"digest\": \"{}\"", "a5".repeat(32))));
        assert!(j.contains("\"session_id\": \"0000000000abcdef\""));
        assert!(j.contains("\"elapsed_s\": 1.235,"));
        assert!(j.contains("\"clients_verified\": 1,"));
        assert!(j.contains("\"forward_mbit_s\": 64,") && j.contains("\"cpu_sys_s\": 0.125,"));
        assert!(j.contains("\"zero_blocks\": 4,") && j.contains("\"compressed_ratio\": 0.668,"));
        assert!(
            j.contains("\"compress_mb_s_per_core\": 312.4,") && j.contains("\"side_file\": null,")
        );
        assert!(j.contains(r#"{"address": "10.0.0.3:7855", "id": "0000000000000002", "state": "FAILED", "reason": "target too small", "bytes": 0"#));
        assert!(j.contains(r#""reason": null"#));
        // Balanced brackets outside strings, no trailing commas.
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for ch in j.chars() {
            match (in_str, esc, ch) {
                (true, true, _) => esc = false,
                (true, false, '\\') => esc = true,
                (true, false, '"') => in_str = false,
                (false, _, '"') => in_str = true,
                (false, _, '{' | '[') => depth += 1,
                (false, _, '}' | ']') => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0);
        assert!(!j.contains(",\n}") && !j.contains(",\n  ]") && !j.contains(", }"));
        let mut empty = sample();
        empty.clients.clear();
        empty.digest = None;
        let j = empty.to_json();
        assert!(j.contains("\"clients\": []\n}") && j.contains("\"digest\": null,"));
    }

    #[test]
    fn text_summary_has_the_table() {
        let t = sample().to_text();
        assert!(t.contains("FAILED target too small"));
        assert!(t.contains("10.0.0.2:7855"));
        assert!(t.contains(&"a5".repeat(32)));
        assert!(t.contains("wire ratio 1.0067"));
        assert!(
            t.contains("first pass 3.8 MiB in 0.5 s, 64.0 Mbit/s"),
            "{t}"
        );
        assert!(t.contains("cpu        0.25 s user, 0.12 s system"), "{t}");
        assert!(
            t.contains("4 zero (not sent)") && t.contains("312 MB/s per core"),
            "{t}"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(4 << 30), "4.0 GiB");
        assert_eq!(human_duration(7.4), "0:07");
        assert_eq!(human_duration(3723.0), "1:02:03");
    }
}
