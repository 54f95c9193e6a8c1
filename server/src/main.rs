//! bb-server: streams a disk image to many clients over broadcast/multicast UDP.
//!
//! A thin IO shell around `bb_proto::sender::Sender`: see `session.rs` for the loop.

/// eprintln! that never panics: a closed stderr must not end a session.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// eprint! that never panics.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

mod cli;
mod codec;
mod digest_ahead;
mod feeder;
mod image;
mod input;
mod key;
mod linkspeed;
mod messages;
mod net;
mod pool;
mod prepare;
mod proto_link;
mod ratetrace;
mod report;
mod session;
mod sidefile;
mod spool;
mod sys;
mod zeros;

fn main() {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                say!("bb-server: argument {a:?} is not valid UTF-8\nTry 'bb-server --help'.");
                std::process::exit(session::EXIT_USAGE);
            }
        }
    }
    let code = match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::help());
            0
        }
        Ok(cli::Command::Version) => {
            println!("bb-server {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(cli::Command::Run(o)) => session::run(&o),
        Ok(cli::Command::Prepare(p)) => prepare::run(&p),
        Ok(cli::Command::GenKey(path)) => match key::generate(&path) {
            Ok(()) => {
                say!(
                    "bb-server: wrote a new key to {} (mode 0600): give it to bb-server and every bb-client with --key-file (see docs/SECURITY.md)",
                    path.display()
                );
                0
            }
            Err(e) => {
                say!("bb-server: {e}");
                session::EXIT_IMAGE
            }
        },
        Err(e) => {
            say!("bb-server: {e}\nTry 'bb-server --help'.");
            session::EXIT_USAGE
        }
    };
    std::process::exit(code);
}
