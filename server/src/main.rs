//! bb-server: streams a disk image to many clients over broadcast/multicast UDP.
//!
//! A thin IO shell around `bb_proto::sender::Sender`: see `session.rs` for the loop.

/// eprintln! that never panics: a closed stderr must not end a session. The line goes out
/// in one write: stderr is unbuffered, and formatted piecewise a line took one system call
/// per piece (76 before the first data packet).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let line = format!("{}\n", format_args!($($t)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

/// eprint! that never panics, in one write.
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($t)*);
        let _ = std::io::stderr().write_all(text.as_bytes());
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
