//! System plumbing for /init: console lines, mounts, kernel modules, network interfaces.
//! The syscalls themselves are the safe wrappers of [`crate::os`] and [`super::syscalls`];
//! no heap.

use super::syscalls;
use crate::fmt::{Buf, Ip};
use crate::os::{self, CPath, Errno};
use core::ffi::CStr;
use core::fmt::Write;

/// Longest console line kept (the rest is cut), without its '\n'.
const LINE_MAX: usize = 319;

/// A console line built in a fixed buffer (truncated if too long), written with one write(2).
pub struct Line(Buf<LINE_MAX>);

impl Line {
    pub fn new() -> Line {
        let mut l = Line(Buf::new());
        l.s("bb: ");
        l
    }
    pub fn b(&mut self, s: &[u8]) -> &mut Self {
        self.0.bytes(s);
        self
    }
    pub fn s(&mut self, s: &str) -> &mut Self {
        self.0.str(s);
        self
    }
    pub fn u(&mut self, v: u64) -> &mut Self {
        let _ = write!(self.0, "{v}");
        self
    }
    pub fn ip(&mut self, a: [u8; 4]) -> &mut Self {
        let _ = write!(self.0, "{}", Ip(a));
        self
    }
    pub fn errno(&mut self, e: Errno) -> &mut Self {
        self.s(" (errno ").u(e as u64).s(")")
    }
    /// Writes the line (plus '\n') to stderr, which is /dev/console when we are /init.
    pub fn emit(&mut self) {
        let mut out = Buf::<{ LINE_MAX + 1 }>::new();
        out.bytes(self.0.as_bytes()).bytes(b"\n");
        let _ = os::write_all(2, out.as_bytes());
    }
}

/// True when `path` exists.
pub fn exists(path: &[u8]) -> bool {
    CPath::new(path).is_some_and(|p| syscalls::exists(p.as_cstr()))
}

/// Mounts proc, sysfs and devtmpfs unless something is already mounted there (a distribution's
/// initramfs has them; then this is a no-op). Failures are reported, not fatal.
pub fn mount_basics() {
    let st_dev = |p: &CStr| CPath::new(p.to_bytes()).and_then(|p| os::stat(&p).ok().map(|s| s.dev));
    let root = st_dev(c"/");
    let table: [(&CStr, &CStr); 3] = [
        (c"/proc", c"proc"),
        (c"/sys", c"sysfs"),
        (c"/dev", c"devtmpfs"),
    ];
    for (dir, fstype) in table {
        match st_dev(dir) {
            Some(d) if Some(d) != root => continue, // already a mount point
            Some(_) => {}
            None => {
                let _ = syscalls::mkdir(dir, 0o755);
            }
        }
        let flags = if fstype == c"devtmpfs" {
            libc::MS_NOSUID
        } else {
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
        };
        if let Err(e) = syscalls::mount(fstype, dir, flags) {
            Line::new()
                .s("init: cannot mount ")
                .b(dir.to_bytes())
                .errno(e)
                .emit();
        }
    }
}

/// If the kernel could not give us a console (no /dev/console in the initramfs), open the one
/// devtmpfs provides as stdin, stdout and stderr.
pub fn ensure_console() {
    if syscalls::fd_is_open(2) {
        return;
    }
    // Not O_CLOEXEC: a shell started later (bb.done=shell) inherits it.
    let Ok(fd) = os::open_inheritable(c"/dev/console", libc::O_RDWR | libc::O_NOCTTY, 0) else {
        return;
    };
    for t in 0..3 {
        if fd.0 != t {
            let _ = syscalls::dup2(fd.0, t);
        }
    }
    // Dropping fd closes it if it is not one of 0, 1, 2.
}

/// Where the initramfs builder lists the modules to load, in dependency order.
pub const MODULES_ORDER: &[u8] = b"/lib/modules/bb-modules.order";

/// Why a module file was not loaded.
pub enum ModError {
    /// The path is too long or contains a NUL.
    BadPath,
    /// The file could not be opened.
    Open(Errno),
    /// finit_module(2) refused it.
    Load(Errno),
}

/// Loads one module file with finit_module(2). Already loaded (EEXIST) counts as success.
pub fn load_module(path: &[u8]) -> Result<(), ModError> {
    let p = CPath::new(path).ok_or(ModError::BadPath)?;
    let fd = os::open(&p, libc::O_RDONLY, 0).map_err(ModError::Open)?;
    match syscalls::finit_module(fd.0) {
        Err(e) if e != libc::EEXIST => Err(ModError::Load(e)),
        _ => Ok(()),
    }
}

/// Loads every module listed (one path per line, dependency order) with finit_module(2).
/// EEXIST (already loaded or built in) is fine; other errors are reported and skipped:
/// a driver for hardware this machine does not have must not stop the boot.
/// ENODEV (a CPU-feature module on a CPU without the feature) is counted but not reported.
/// Returns (loaded, failed). A missing list is not an error (0, 0).
pub fn load_modules(list: &[u8]) -> (u32, u32) {
    let mut buf = [0u8; 16384];
    let len = match os::read_file(list, &mut buf) {
        Ok(n) => n,
        Err(_) => return (0, 0),
    };
    let mut loaded = 0;
    let mut failed = 0;
    for raw in buf[..len].split(|&c| c == b'\n') {
        let line = raw.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        match load_module(line) {
            Ok(()) => {
                loaded += 1;
                continue;
            }
            // a CPU-specific module (crct10dif-pclmul without PCLMUL): not needed here
            Err(ModError::Load(libc::ENODEV)) | Err(ModError::BadPath) => {}
            Err(ModError::Open(e)) => Line::new()
                .s("init: cannot open module ")
                .b(line)
                .errno(e)
                .emit(),
            Err(ModError::Load(e)) => Line::new()
                .s("init: module ")
                .b(line)
                .s(" not loaded")
                .errno(e)
                .emit(),
        }
        failed += 1;
    }
    (loaded, failed)
}

/// Waits until `path` exists, polling every 50 ms, at most `ms` milliseconds.
pub fn wait_for_path(path: &[u8], ms: u64) -> bool {
    let deadline = os::now_ms() + ms;
    loop {
        if exists(path) {
            return true;
        }
        if os::now_ms() >= deadline {
            return false;
        }
        syscalls::sleep_ms(50);
    }
}

/// The first network interface that is not loopback, in name order (eth0 before eth1),
/// preferring names without ':' or '.'. Returns false if there is none yet.
pub fn first_nic(out: &mut [u8; 16]) -> bool {
    let mut best = [0u8; 16];
    let mut best_len = 0usize;
    for_each_dirent(b"/sys/class/net", |name| {
        if nic_candidate(name) && (best_len == 0 || name < &best[..best_len]) {
            best = [0; 16];
            best[..name.len()].copy_from_slice(name);
            best_len = name.len();
        }
    });
    if best_len == 0 {
        return false;
    }
    *out = best;
    true
}

/// Calls `f(name)` for every entry of the directory `path`, "." and ".." included.
/// getdents64 into a fixed buffer: opendir(3) would allocate.
pub fn for_each_dirent(path: &[u8], mut f: impl FnMut(&[u8])) {
    let Some(p) = CPath::new(path) else { return };
    let Ok(fd) = os::open(&p, libc::O_RDONLY | libc::O_DIRECTORY, 0) else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = match syscalls::getdents64(fd.0, &mut buf) {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        let bytes = &buf[..n];
        let mut off = 0usize;
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while off + 19 <= bytes.len() {
            let reclen = u16::from_ne_bytes([bytes[off + 16], bytes[off + 17]]) as usize;
            if reclen < 19 || off + reclen > bytes.len() {
                break;
            }
            let raw = &bytes[off + 19..off + reclen];
            let name = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
            off += reclen;
            f(name);
        }
    }
}

/// Whether an entry of /sys/class/net is a real NIC we could use: not lo, not the virtual
/// devices a distribution's initramfs may have (bonding_masters, sit0, tunl0, ...).
pub fn nic_candidate(name: &[u8]) -> bool {
    !(name.is_empty()
        || name[0] == b'.'
        || name == b"lo"
        || name.len() >= 16
        || name == b"bonding_masters"
        || name.starts_with(b"sit")
        || name.starts_with(b"tunl")
        || name.starts_with(b"ip6tnl")
        || name.starts_with(b"gre")
        || name.starts_with(b"erspan"))
}

pub fn is_pid1() -> bool {
    os::getpid() == 1
}
