//! bb-sim: one broadband sender and N receivers over a simulated broadcast medium.

use bb_sim::{args, world};

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&argv) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bb-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let r = world::run(&opts);
    let wall = started.elapsed().as_secs_f64();
    let mem = r.slot_bytes + world::scratch_bytes(&opts);
    println!(
        "sim: {} clients ({} late, {} dead), loss {:.2}% burst {}, image {} bytes, k={} S={}",
        r.clients,
        r.late,
        r.dead,
        opts.loss * 100.0,
        opts.burst,
        opts.image_size,
        opts.k,
        opts.symbol_size
    );
    println!(
        "sent {} data packets for {} source symbols: forward {}, proactive {}, repair {}, resend {}; {} announces",
        r.data_packets, r.source_packets, r.forward, r.proactive, r.repair, r.resend, r.announces
    );
    println!(
        "receivers: {} verified, {} failed, {} unfinished, {} mismatched bytes; {} evictions, {} decoded blocks; {} KiB slot memory each",
        r.verified,
        r.failed,
        r.unfinished,
        r.mismatched_bytes,
        r.evictions,
        r.decoded_blocks,
        mem / 1024
    );
    println!(
        "reports: {} ({:.2} per client per second), {} ranges, {:.0} ns per report, {:.0} ns per range",
        r.reports, r.reports_per_client_s, r.ranges, r.status_ns_per_report, r.status_ns_per_range
    );
    println!(
        "clients={} verified={} failed={} unfinished={} dead={} lost={} late={} wire_ratio={:.4} data_packets={} source_packets={} \
         coded_symbols={} zero_blocks={} zero_maps={} proactive={} repair={} resend={} reports_per_client_s={:.2} status_ns_per_range={:.0} first_data_s={:.3} completion_s={:.3} \
         late_completion_s={:.3} slow_completion_s={:.3} sim_s={:.3} queue_drops={} final_rate_mbps={:.0} rate_reason={} events={} seed={} wall_s={:.1}",
        r.clients,
        r.verified,
        r.failed,
        r.unfinished,
        r.dead,
        r.lost,
        r.late,
        r.wire_ratio,
        r.data_packets,
        r.source_packets,
        r.coded_symbols,
        r.zero_blocks,
        r.zero_maps,
        r.proactive,
        r.repair,
        r.resend,
        r.reports_per_client_s,
        r.status_ns_per_range,
        r.first_data_s,
        r.completion_s,
        r.late_completion_s,
        r.slow_completion_s,
        r.sim_s,
        r.queue_drops,
        r.final_rate_mbps,
        r.rate_reason.replace(' ', "-"),
        r.events,
        opts.seed,
        wall
    );
    let alive = r.clients - r.dead;
    if r.verified == alive && r.mismatched_bytes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
