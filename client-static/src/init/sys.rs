//! System plumbing for /init: console lines, clocks, mounts, kernel modules, waiting for devices.
//! libc only, no heap.

use core::ffi::c_char;

/// A console line built in a fixed buffer (truncated if too long), written with one write(2).
pub struct Line {
    buf: [u8; 320],
    len: usize,
}

impl Line {
    pub fn new() -> Line {
        let mut l = Line {
            buf: [0; 320],
            len: 0,
        };
        l.s("bb: ");
        l
    }
    pub fn b(&mut self, s: &[u8]) -> &mut Self {
        let room = self.buf.len() - 1 - self.len; // keep one byte for '\n'
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }
    pub fn s(&mut self, s: &str) -> &mut Self {
        self.b(s.as_bytes())
    }
    pub fn u(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let (_, digits) = d.split_at(i);
        let mut tmp = [0u8; 20];
        tmp[..digits.len()].copy_from_slice(digits);
        self.b(&tmp[..digits.len()])
    }
    pub fn ip(&mut self, a: [u8; 4]) -> &mut Self {
        for (i, o) in a.iter().enumerate() {
            if i > 0 {
                self.s(".");
            }
            self.u(*o as u64);
        }
        self
    }
    pub fn errno(&mut self, e: i32) -> &mut Self {
        self.s(" (errno ").u(e as u64).s(")")
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Writes the line (plus '\n') to stderr, which is /dev/console when we are /init.
    pub fn emit(&mut self) {
        self.buf[self.len] = b'\n';
        write_all(2, &self.buf[..self.len + 1]);
    }
}

pub fn write_all(fd: i32, mut b: &[u8]) {
    while !b.is_empty() {
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

pub fn errno() -> i32 {
    unsafe { *libc::__errno_location() }
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    };
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// True when `path` (NUL-terminated) exists.
pub fn exists(path: &[u8]) -> bool {
    debug_assert!(path.last() == Some(&0));
    unsafe { libc::access(path.as_ptr() as *const c_char, libc::F_OK) == 0 }
}

fn st_dev(path: &[u8]) -> Option<u64> {
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    if unsafe { libc::stat(path.as_ptr() as *const c_char, &mut st) } != 0 {
        return None;
    }
    Some(st.st_dev as u64)
}

/// Mounts proc, sysfs and devtmpfs unless something is already mounted there (a distribution's
/// initramfs has them; then this is a no-op). Failures are reported, not fatal.
pub fn mount_basics() {
    let root = st_dev(b"/\0");
    let table: [(&[u8], &[u8]); 3] = [
        (b"/proc\0", b"proc\0"),
        (b"/sys\0", b"sysfs\0"),
        (b"/dev\0", b"devtmpfs\0"),
    ];
    for (dir, fstype) in table {
        match st_dev(dir) {
            Some(d) if Some(d) != root => continue, // already a mount point
            Some(_) => {}
            None => unsafe {
                libc::mkdir(dir.as_ptr() as *const c_char, 0o755);
            },
        }
        let flags = if fstype == b"devtmpfs\0" {
            libc::MS_NOSUID
        } else {
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
        };
        let r = unsafe {
            libc::mount(
                fstype.as_ptr() as *const c_char,
                dir.as_ptr() as *const c_char,
                fstype.as_ptr() as *const c_char,
                flags,
                core::ptr::null(),
            )
        };
        if r != 0 {
            let e = errno();
            Line::new()
                .s("init: cannot mount ")
                .b(&dir[..dir.len() - 1])
                .errno(e)
                .emit();
        }
    }
}

/// If the kernel could not give us a console (no /dev/console in the initramfs), open the one
/// devtmpfs provides as stdin, stdout and stderr.
pub fn ensure_console() {
    if unsafe { libc::fcntl(2, libc::F_GETFD) } >= 0 {
        return;
    }
    let fd = unsafe {
        libc::open(
            b"/dev/console\0".as_ptr() as *const c_char,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if fd < 0 {
        return;
    }
    for t in 0..3 {
        if fd != t {
            unsafe { libc::dup2(fd, t) };
        }
    }
    if fd > 2 {
        unsafe { libc::close(fd) };
    }
}

/// Reads a whole (small) file into `buf`; returns the length read.
pub fn read_file(path: &[u8], buf: &mut [u8]) -> Result<usize, i32> {
    let fd = unsafe {
        libc::open(
            path.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    let mut len = 0;
    while len < buf.len() {
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            let e = errno();
            unsafe { libc::close(fd) };
            return Err(e);
        }
        if n == 0 {
            break;
        }
        len += n as usize;
    }
    unsafe { libc::close(fd) };
    Ok(len)
}

/// Where the initramfs builder lists the modules to load, in dependency order.
pub const MODULES_ORDER: &[u8] = b"/lib/modules/bb-modules.order\0";

/// Loads every module listed (one path per line, dependency order) with finit_module(2).
/// EEXIST (already loaded or built in) is fine; other errors are reported and skipped:
/// a driver for hardware this machine does not have must not stop the boot.
/// ENODEV (a CPU-feature module on a CPU without the feature) is counted but not reported.
/// Returns (loaded, failed). A missing list is not an error (0, 0).
pub fn load_modules(list: &[u8]) -> (u32, u32) {
    let mut buf = [0u8; 16384];
    let len = match read_file(list, &mut buf) {
        Ok(n) => n,
        Err(_) => return (0, 0),
    };
    let mut loaded = 0;
    let mut failed = 0;
    for raw in buf[..len].split(|&c| c == b'\n') {
        let line = trim(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let mut path = [0u8; 512];
        if line.len() >= path.len() {
            failed += 1;
            continue;
        }
        path[..line.len()].copy_from_slice(line);
        let fd = unsafe {
            libc::open(
                path.as_ptr() as *const c_char,
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = errno();
            Line::new()
                .s("init: cannot open module ")
                .b(line)
                .errno(e)
                .emit();
            failed += 1;
            continue;
        }
        let r = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                fd as libc::c_long,
                b"\0".as_ptr(),
                0 as libc::c_long,
            )
        };
        let e = if r != 0 { errno() } else { 0 };
        unsafe { libc::close(fd) };
        if r == 0 || e == libc::EEXIST {
            loaded += 1;
        } else if e == libc::ENODEV {
            // a CPU-specific module (crct10dif-pclmul without PCLMUL): not needed here
            failed += 1;
        } else {
            Line::new()
                .s("init: module ")
                .b(line)
                .s(" not loaded")
                .errno(e)
                .emit();
            failed += 1;
        }
    }
    (loaded, failed)
}

pub fn trim(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && s[a].is_ascii_whitespace() {
        a += 1;
    }
    while b > a && s[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    &s[a..b]
}

/// Waits until `path` (NUL-terminated) exists, polling every 50 ms, at most `ms` milliseconds.
pub fn wait_for_path(path: &[u8], ms: u64) -> bool {
    let deadline = now_ms() + ms;
    loop {
        if exists(path) {
            return true;
        }
        if now_ms() >= deadline {
            return false;
        }
        sleep_ms(50);
    }
}

/// The first network interface that is not loopback, in name order (eth0 before eth1),
/// preferring names without ':' or '.'. Returns false if there is none yet.
pub fn first_nic(out: &mut [u8; 16]) -> bool {
    let mut best = [0u8; 16];
    let mut best_len = 0usize;
    for_each_dirent(b"/sys/class/net\0", |name| {
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

/// Calls `f(name)` for every entry of the directory `path` (NUL-terminated), "." and ".."
/// included. getdents64 into a fixed buffer: opendir(3) would allocate.
pub fn for_each_dirent(path: &[u8], mut f: impl FnMut(&[u8])) {
    let fd = unsafe {
        libc::open(
            path.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u64; 512]; // 4 KiB, 8-byte aligned for linux_dirent64
    loop {
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd as libc::c_long,
                buf.as_mut_ptr(),
                core::mem::size_of_val(&buf) as libc::c_long,
            )
        };
        if n <= 0 {
            break;
        }
        let bytes = unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const u8, n as usize) };
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
    unsafe { libc::close(fd) };
}

/// Loads one module file (`path` NUL-terminated) with finit_module(2). Already loaded
/// (EEXIST) counts as success.
pub fn finit_module(path: &[u8]) -> Result<(), i32> {
    let fd = unsafe {
        libc::open(
            path.as_ptr() as *const c_char,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            fd as libc::c_long,
            b"\0".as_ptr(),
            0 as libc::c_long,
        )
    };
    let e = if r != 0 { errno() } else { 0 };
    unsafe { libc::close(fd) };
    if r == 0 || e == libc::EEXIST {
        Ok(())
    } else {
        Err(e)
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
    unsafe { libc::getpid() == 1 }
}
