//! bb-load: many simulated machines receive one image from a real bb-server over real UDP
//! sockets, from one process (see `bb-load --help`).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bb_sim::load::{self, args};

fn random_seed() -> u64 {
    // Distinct ids per run without a dependency: the clock's nanoseconds and the pid.
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (std::process::id() as u64) << 32
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let o = match args::parse(&argv, random_seed()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bb-load: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match load::run(&o) {
        Ok(r) => r,
        Err(load::NetError(e)) => {
            eprintln!("bb-load: {e}");
            return ExitCode::from(4);
        }
    };
    print!("{}", r.to_text());
    if let Some(f) = &o.summary_json
        && let Err(e) = std::fs::write(f, r.to_json())
    {
        eprintln!("bb-load: cannot write --summary-json {f}: {e}");
        return ExitCode::from(1);
    }
    if r.verified() == r.machines.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
