//! bb-client: the broadband receiver. Heap-free, `no_std`, a static musl binary; also the
//! imaging initramfs's `/init` (see `init/`).
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]
// The unit-test build has no entry point, so the code only it calls looks unused there.
#![cfg_attr(test, allow(dead_code, unused_imports))]
// Errors carry their message in a fixed buffer; there is no heap to box them.
#![allow(clippy::result_large_err)]

mod args;
mod disks;
mod fmt;
mod init;
mod keyfile;
mod mem;
mod mounts;
mod no_heap;
mod os;
mod parse;
mod run;
mod target;

use args::{Command, Options, Output};
use fmt::Lossy;
use run::{EXIT_USAGE, say};

// Without std nothing links the C library.
#[cfg(not(test))]
#[link(name = "c")]
unsafe extern "C" {}

// Static glibc (the fallback build) refers to the unwinder in its own objects.
#[cfg(all(not(test), target_env = "gnu", target_feature = "crt-static"))]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}

// No heap: see no_heap.rs for why a no_std binary names an allocator at all.
#[cfg(not(test))]
#[global_allocator]
static NO_HEAP: no_heap::NoHeap = no_heap::NoHeap;

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say(format_args!("bb-client: FAILED internal error: {info}"));
    os::exit_now(run::EXIT_IO)
}

/// The precompiled libcore references the unwinding personality routine (for its unwind
/// tables) in builds without LTO; with panic = "abort" it is never called.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const HELP: &str = "\
bb-client: receive a disk image from bb-server (broadband) and write it to a file, a disk or stdout

USAGE:
    bb-client [OPTIONS] SERVER [OUTPUT]
    bb-client [OPTIONS] --dev auto|LIST SERVER
    bb-client --init

ARGUMENTS:
    SERVER    the server's IPv4 address: status reports and the result go to SERVER:7854, and
              only data coming from SERVER is accepted (see --any-server)
    OUTPUT    where the image goes (default: stdout, also '-'):
              - a regular file: created or truncated, its length set to the image size; the
                image's zero ranges stay holes (sparse);
              - a block device (/dev/sda): written in place; refused before any write if it is
                smaller than the image, or if it or one of its partitions is mounted or swap;
                the image's zero ranges are zeroed with BLKZEROOUT (see --assume-zeroed);
              - stdout, a pipe or a character device: written strictly in order, zero ranges
                as real zeros.
              Nothing is ever written outside the image's byte range.

OPTIONS:
    -d, --dev auto|LIST      the target disk chosen by rule instead of OUTPUT:
                             auto: the one internal (not USB), non-removable, writable disk
                             at least as large as the image, chosen once the server announced
                             its size; refused, with every disk named (size, model), when
                             none or several fit;
                             LIST: /dev/nvme0n1,/dev/sda: the first that exists;
                             /dev/disk/by-id/NAME: the link when udev made it, else rebuilt
                             from sysfs for virtio-SERIAL, nvme-MODEL_SERIAL, nvme-WWID and
                             wwn-0x... names (not ata-: use a wwn- or /dev name there)
    -g, --group ADDR         join multicast group ADDR (224.0.0.0/4) for the data
                             (default: broadcast or unicast, no group)
    -i, --interface IF       join the group on this interface: a local IPv4 address or a name
                             like eth0 (default: the kernel's route for the group)
    -p, --port N             UDP port the data arrives on (default: 7855)
        --control-port N     server's UDP port for status reports (default: 7854)
    -t, --timeout SECONDS    give up when no server is heard within SECONDS, or when the data
                             stops for SECONDS once the transfer has started (default: 60).
                             It covers a server restart: a server started again on the same
                             image within it is resumed (same geometry and image digest,
                             announced by both sessions): every block written is kept and
                             only what is lacking is sent again
        --any-server         accept data from any source address, not only SERVER
        --assume-zeroed      the target disk already reads as zeros (new or discarded): skip
                             zeroing the image's zero ranges on a block device (faster; old
                             contents there would survive if the disk was not blank)
        --key-file FILE      the pre-shared key (32 raw bytes, or 64 hex digits as written by
                             bb-server --gen-key): only packets authenticated with it are
                             used, and every packet sent carries its tag; a server without
                             the key (or with another) is ignored. Without a key, anyone on
                             the LAN can feed this machine an image: see docs/SECURITY.md
        --digest HEX         the image digest to accept (64 hex digits, as bb-server prints
                             it): a session announcing another digest is refused before a
                             byte is written; the written image must hash to it
    -q, --quiet              no progress lines (the final OK/FAILED line is still printed)
        --init               /init mode for the imaging initramfs: mount /proc, /sys, /dev,
                             load modules, configure the network (ip= or DHCP), take bb.server=,
                             bb.dev= (a path, auto or a LIST as for --dev), bb.group=, bb.port=,
                             bb.done=, bb.assume-zeroed, bb.key=HEX, bb.digest=HEX from the
                             kernel command line (or the key baked into the initramfs at
                             /etc/broadband/key),
                             receive (waiting up to 300 s, or bb.timeout= if longer, for the
                             server), then power off / reboot (on success only). Automatic
                             when running as PID 1.
    -h, --help               this help
    -V, --version            the version

PROGRESS AND RESULT (stderr):
    A progress line (percent, MB/s, loss, blocks): redrawn 4 times a second on a terminal,
    otherwise printed every 5 s. The last line is one of
        bb-client: OK <image digest, hex> <bytes> bytes in <seconds> s (<MB/s> MB/s)
        bb-client: FAILED <reason, with the likely cause and fix>
    The result is also reported to the server, which lists every machine.

EXIT CODES:
    0  image written, flushed and verified against the server's digest
    1  verification failed: what was written does not match the image digest (or the
       --digest pin)
    2  usage error
    3  target error: cannot open or create OUTPUT, target smaller than the image, or mounted
    4  I/O error while writing or flushing the target (a full or failing disk, or a target
       that went away mid-write)
    5  no server heard within --timeout (a server without this machine's key, or with
       another image than --digest, counts as not heard), data stopped for --timeout, or the
       server ended the session before this machine was done
    6  the image (or its block size) is too large for this client's fixed memory
    7  interrupted by SIGINT/SIGTERM (the failure is reported to the server)
    8  two different image digests were announced for this session: two servers share
       a session id, or someone on the LAN forged an announce (not a fault of this machine)

EXAMPLES:
    bb-client 10.0.0.1 /dev/sda              broadcast from 10.0.0.1, write the disk
    bb-client -g 239.1.1.1 -i eth1 10.0.0.1 disk.img
    bb-client -q 10.0.0.1 | zstd > disk.img.zst
    bb-client --dev auto 10.0.0.1            the one internal disk that holds the image
    bb-client --key-file /etc/bb.key --digest 3a7c...e1 10.0.0.1 /dev/sda
    kernel command line for --init: bb.server=10.0.0.1 bb.dev=/dev/sda ip=dhcp bb.done=reboot

SECURITY:
    Without a key nothing is authenticated: use --key-file (and --digest to pin the image)
    on any LAN you do not fully trust. A key on a kernel command line or in an initramfs
    fetched over TFTP is readable by anyone on that LAN. Read docs/SECURITY.md.
";

/// argv entry `i` as bytes (without the NUL).
fn arg<'a>(argv: *const *const u8, i: usize) -> &'a [u8] {
    // SAFETY: the C runtime passes argc valid pointers to NUL-terminated strings that live
    // for the whole program; callers index below argc.
    unsafe { core::ffi::CStr::from_ptr(*argv.add(i) as *const core::ffi::c_char).to_bytes() }
}

#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, argv: *const *const u8) -> i32 {
    let n = argc.max(0) as usize;
    let args = (1..n).map(|i| arg(argv, i));
    os::install_signals();
    let pid1 = os::getpid() == 1;
    match args::parse(args) {
        Ok(Command::Help) => {
            let _ = os::write_all(1, HELP.as_bytes());
            0
        }
        Ok(Command::Version) => {
            let mut v = fmt::Buf::<64>::new();
            v.str("bb-client ").str(VERSION).str("\n");
            let _ = os::write_all(1, v.as_bytes());
            0
        }
        Ok(Command::Init { quiet }) => init_mode(quiet),
        Ok(Command::Receive(_)) | Err(_) if pid1 => init_mode(false),
        Ok(Command::Receive(mut o)) => {
            if let Some(path) = o.key_file {
                match keyfile::load(path) {
                    Ok(k) => o.key = Some(k),
                    Err(f) => {
                        report(&f);
                        return f.code;
                    }
                }
            }
            let f = run::receive(&o);
            report(&f);
            f.code
        }
        Err(e) => {
            if e.arg.is_empty() {
                say(format_args!(
                    "bb-client: {}\nTry 'bb-client --help'.",
                    e.msg
                ));
            } else {
                say(format_args!(
                    "bb-client: {}: {}\nTry 'bb-client --help'.",
                    e.msg,
                    Lossy(e.arg)
                ));
            }
            EXIT_USAGE
        }
    }
}

fn report(f: &run::Finish) {
    if f.code == run::EXIT_OK {
        say(format_args!("bb-client: OK {}", f.line.as_str()));
    } else {
        say(format_args!("bb-client: FAILED {}", f.line.as_str()));
    }
}

/// The /init mode: the init module prepares the machine, we receive, it finishes.
fn init_mode(quiet: bool) -> i32 {
    let mut cfg = init::InitConfig::new();
    if let Err(e) = init::prepare(&mut cfg) {
        init::finish(cfg.done, false, e.message().as_bytes());
    }
    let mut o = Options::new(cfg.server);
    o.output = if disks::is_auto(cfg.dev_path()) {
        Output::Auto
    } else {
        Output::Path(cfg.dev_path())
    };
    o.group = cfg.group;
    if let Some(p) = cfg.port {
        o.port = p;
    }
    if !cfg.iface_name().is_empty() {
        o.iface = args::Iface::Name(cfg.iface_name());
    }
    // Machines often boot before the server is started: wait longer than on a command line.
    o.timeout_s = cfg.timeout.max(300);
    o.quiet = quiet;
    o.assume_zeroed = cfg.assume_zeroed;
    o.digest = cfg.digest;
    // bb.key= wins over the key baked into the initramfs at build time.
    o.key = cfg.key;
    if o.key.is_none() && keyfile::exists(keyfile::INITRAMFS_KEY_PATH) {
        match keyfile::load(keyfile::INITRAMFS_KEY_PATH) {
            Ok(k) => o.key = Some(k),
            Err(f) => {
                report(&f);
                init::finish(cfg.done, false, f.line.as_bytes())
            }
        }
    }
    let f = run::receive(&o);
    report(&f);
    let mut line = fmt::Buf::<600>::new();
    line.bytes(cfg.dev_path()).str(": ").str(f.line.as_str());
    init::finish(cfg.done, f.code == run::EXIT_OK, line.as_bytes())
}
