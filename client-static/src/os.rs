//! The syscall boundary of the receiver: every `unsafe` block it needs lives here (besides
//! the entry point and the static memory in `main.rs` and `mem.rs`; the calls only /init
//! makes are in `init/syscalls.rs`). Thin, typed wrappers over libc; errors are errno values.

use crate::fmt::Buf;
use core::ffi::{CStr, c_char, c_int, c_void};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub type Errno = i32;

pub fn errno() -> Errno {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// The C library's text for an errno value.
pub fn strerror(e: Errno) -> &'static str {
    // SAFETY: strerror returns a pointer to a static NUL-terminated string (musl and glibc never
    // return NULL); we never call it concurrently (single-threaded program).
    let s = unsafe { CStr::from_ptr(libc::strerror(e)) };
    s.to_str().unwrap_or("unknown error")
}

/// Microseconds on the monotonic clock.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

pub fn isatty(fd: c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Feeds all of `b` to `write(rest, written_so_far)` (one write syscall), retrying on EINTR
/// and short writes; a call that writes nothing fails with `on_zero`.
fn write_fully(
    mut b: &[u8],
    on_zero: Errno,
    mut write: impl FnMut(&[u8], u64) -> isize,
) -> Result<(), Errno> {
    let mut done = 0u64;
    while !b.is_empty() {
        let n = write(b, done);
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(on_zero);
        }
        b = &b[n as usize..];
        done += n as u64;
    }
    Ok(())
}

/// Writes all of `b` to `fd`, retrying on EINTR and short writes.
pub fn write_all(fd: c_int, b: &[u8]) -> Result<(), Errno> {
    write_fully(b, libc::EIO, |rest, _| {
        // SAFETY: rest is a valid readable slice of rest.len() bytes.
        unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) }
    })
}

/// Writes all of `b` at `offset` of `fd`.
pub fn pwrite_all(fd: c_int, b: &[u8], offset: u64) -> Result<(), Errno> {
    write_fully(b, libc::ENOSPC, |rest, done| {
        let at = (offset + done) as libc::off_t;
        // SAFETY: rest is a valid readable slice of rest.len() bytes.
        unsafe { libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), at) }
    })
}

/// 64 random bits from getrandom(2) (mixed with the clock if it fails, e.g. on old kernels).
pub fn random_u64() -> u64 {
    let mut v = [0u8; 8];
    // SAFETY: v is a writable 8-byte buffer.
    let n = unsafe { libc::getrandom(v.as_mut_ptr().cast(), v.len(), 0) };
    let r = u64::from_ne_bytes(v);
    if n == 8 {
        r
    } else {
        r ^ now_us().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (getpid() as u64) << 32
    }
}

/// Faults in (writable) the pages of `[addr, addr + len)` now, so that the memory a session
/// needs is resident from its start: the RSS is then the same whatever the image size or
/// loss pattern, and a machine short of memory fails at once rather than midway.
/// Best effort (MADV_POPULATE_WRITE needs Linux 5.14).
pub fn populate(addr: usize, len: usize) {
    const MADV_POPULATE_WRITE: c_int = 23;
    let start = addr & !4095;
    let len = (addr + len - start).next_multiple_of(4096);
    // SAFETY: the range covers (page-rounded) memory of our own static buffers; populating
    // only faults pages in and never changes their contents.
    unsafe { libc::madvise(start as *mut c_void, len, MADV_POPULATE_WRITE) };
}

// ---- signals ----------------------------------------------------------------------------

static SIGNALLED: AtomicU32 = AtomicU32::new(0);
static SIGNALS_SET: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: c_int) {
    SIGNALLED.store(sig as u32, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM (a flag, see [`signalled`]) and ignores SIGPIPE (a closed
/// stdout pipe becomes an EPIPE write error).
pub fn install_signals() {
    if SIGNALS_SET.swap(true, Ordering::SeqCst) {
        return;
    }
    for (sig, handler) in [
        (
            libc::SIGINT,
            on_signal as extern "C" fn(c_int) as libc::sighandler_t,
        ),
        (
            libc::SIGTERM,
            on_signal as extern "C" fn(c_int) as libc::sighandler_t,
        ),
        (libc::SIGPIPE, libc::SIG_IGN),
    ] {
        // SAFETY: an all-zero sigaction is valid (empty mask, no flags); the handler only
        // stores to an atomic, which is async-signal-safe. No SA_RESTART: poll() returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = handler;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// The last SIGINT/SIGTERM received (0 if none).
pub fn signalled() -> u32 {
    SIGNALLED.load(Ordering::SeqCst)
}

/// Forgets a received signal (so a second one can be told apart).
pub fn clear_signal() {
    SIGNALLED.store(0, Ordering::SeqCst);
}

// ---- files ------------------------------------------------------------------------------

/// A NUL-terminated copy of a path, in a fixed buffer.
pub struct CPath {
    buf: [u8; libc::PATH_MAX as usize],
}

impl CPath {
    pub fn new(p: &[u8]) -> Option<CPath> {
        if p.len() >= libc::PATH_MAX as usize || p.contains(&0) {
            return None;
        }
        let mut buf = [0u8; libc::PATH_MAX as usize];
        buf[..p.len()].copy_from_slice(p);
        Some(CPath { buf })
    }
    pub fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
    pub fn as_cstr(&self) -> &CStr {
        // The buffer always holds a NUL (new() rejects paths that would fill it).
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }
    pub fn as_bytes(&self) -> &[u8] {
        let n = self
            .buf
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.buf.len());
        &self.buf[..n]
    }
    /// The canonical path (symlinks resolved), if it exists: readlink of /proc/self/fd/N
    /// (musl's realpath would link malloc).
    pub fn canonical(&self) -> Option<CPath> {
        let fd = open(self, libc::O_PATH, 0).ok()?;
        let mut link = Buf::<32>::new();
        let _ = write!(link, "/proc/self/fd/{}\0", fd.0);
        let mut out = CPath {
            buf: [0; libc::PATH_MAX as usize],
        };
        // SAFETY: link is NUL-terminated; out.buf has room for PATH_MAX - 1 bytes plus the NUL
        // that stays in place (readlink does not write one).
        let n = unsafe {
            libc::readlink(
                link.as_bytes().as_ptr().cast(),
                out.buf.as_mut_ptr().cast(),
                out.buf.len() - 1,
            )
        };
        (n > 0 && out.buf[0] == b'/').then_some(out)
    }
}

/// An owned file descriptor, closed on drop.
pub struct Fd(pub c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 > 2 {
            // SAFETY: we own this descriptor and nothing uses it after drop.
            unsafe { libc::close(self.0) };
        }
    }
}

/// The target of the symbolic link `path` into `out`; returns its length.
pub fn readlink(path: &CPath, out: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: path is NUL-terminated; readlink writes at most out.len() bytes into out.
    let n = unsafe { libc::readlink(path.as_ptr(), out.as_mut_ptr().cast(), out.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

pub fn open(path: &CPath, flags: c_int, mode: libc::mode_t) -> Result<Fd, Errno> {
    open_inheritable(path.as_cstr(), flags | libc::O_CLOEXEC, mode)
}

/// open(2) with exactly `flags`: without O_CLOEXEC the descriptor survives an exec.
pub fn open_inheritable(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<Fd, Errno> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 { Err(errno()) } else { Ok(Fd(fd)) }
}

/// Ends the process at once (no atexit handlers, nothing to flush in this program).
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// What kind of file, and its device number.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub kind: Kind,
    /// The device the file is on (st_dev).
    pub dev: u64,
    /// The device a block or character special file is (st_rdev).
    pub rdev: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Block,
    Char,
    Fifo,
    Other,
}

#[allow(clippy::unnecessary_cast)] // st_dev and st_rdev are not u64 on every target
fn conv(st: &libc::stat) -> Stat {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::Regular,
        libc::S_IFBLK => Kind::Block,
        libc::S_IFCHR => Kind::Char,
        libc::S_IFIFO => Kind::Fifo,
        _ => Kind::Other,
    };
    Stat {
        kind,
        dev: st.st_dev as u64,
        rdev: st.st_rdev as u64,
    }
}

pub fn stat(path: &CPath) -> Result<Stat, Errno> {
    // SAFETY: an all-zero stat is a valid out-parameter; path is NUL-terminated.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
        return Err(errno());
    }
    Ok(conv(&st))
}

/// Size of a block device in bytes (BLKGETSIZE64).
pub fn block_size(fd: c_int) -> Result<u64, Errno> {
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 to the pointer, which points to a live u64.
    if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64) } != 0 {
        return Err(errno());
    }
    Ok(size)
}

/// Makes `len` bytes at `start` of a block device read as zeros (BLKZEROOUT: the kernel uses
/// the device's write-zeroes or a discard that guarantees zeroes, else writes zeros). Both
/// must be multiples of the logical block size.
pub fn block_zero_out(fd: c_int, start: u64, len: u64) -> Result<(), Errno> {
    const BLKZEROOUT: libc::c_ulong = 0x127f;
    let range: [u64; 2] = [start, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer, which points to a
    // live [u64; 2].
    if unsafe { libc::ioctl(fd, BLKZEROOUT as _, range.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

pub fn ftruncate(fd: c_int, len: u64) -> Result<(), Errno> {
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

pub fn fdatasync(fd: c_int) -> Result<(), Errno> {
    // SAFETY: plain syscall on a descriptor.
    if unsafe { libc::fdatasync(fd) } != 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

pub fn fsync(fd: c_int) -> Result<(), Errno> {
    // SAFETY: plain syscall on a descriptor.
    if unsafe { libc::fsync(fd) } != 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Reads a whole (small, procfs) file into `buf` in pieces; returns the bytes read (the file
/// is cut at `buf.len()`).
pub fn read_file(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    let p = CPath::new(path).ok_or(libc::ENAMETOOLONG)?;
    let fd = open(&p, libc::O_RDONLY, 0)?;
    let mut n = 0;
    while n < buf.len() {
        let rest = &mut buf[n..];
        // SAFETY: rest is a writable slice of rest.len() bytes.
        let r = unsafe { libc::read(fd.0, rest.as_mut_ptr().cast(), rest.len()) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(errno());
        }
        if r == 0 {
            break;
        }
        n += r as usize;
    }
    Ok(n)
}

// ---- sockets ----------------------------------------------------------------------------

pub fn sockaddr(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    }
}

pub(crate) fn setsockopt<T: ?Sized>(
    fd: c_int,
    level: c_int,
    name: c_int,
    v: &T,
) -> Result<(), Errno> {
    // SAFETY: v points to size_of_val(v) live bytes, the option value and length the kernel
    // reads; it only reads them.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast::<c_void>(),
            size_of_val(v) as libc::socklen_t,
        )
    };
    if r != 0 { Err(errno()) } else { Ok(()) }
}

/// A UDP socket for the data port.
pub fn udp_socket() -> Result<Fd, Errno> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 { Err(errno()) } else { Ok(Fd(fd)) }
}

pub fn set_reuseaddr(fd: c_int) -> Result<(), Errno> {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &(1 as c_int))
}

/// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE when privileged, else SO_RCVBUF,
/// capped by net.core.rmem_max); returns what the kernel granted.
pub fn set_rcvbuf(fd: c_int, bytes: c_int) -> c_int {
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &bytes).is_err() {
        let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes);
    }
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: v and len are live and sized for an int option.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut c_int).cast(),
            &mut len,
        )
    };
    v
}

/// Only the groups joined on this socket, not every group any socket joined.
pub fn set_multicast_all_off(fd: c_int) -> Result<(), Errno> {
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, &(0 as c_int))
}

pub fn bind(fd: c_int, ip: [u8; 4], port: u16) -> Result<(), Errno> {
    let sa = sockaddr(ip, port);
    // SAFETY: sa is a live sockaddr_in and the length says so.
    let r = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 { Err(errno()) } else { Ok(()) }
}

/// Index of a network interface by name (0 if unknown).
pub fn if_index(name: &[u8]) -> u32 {
    let Some(p) = CPath::new(name) else { return 0 };
    // SAFETY: p is NUL-terminated.
    unsafe { libc::if_nametoindex(p.as_ptr()) }
}

/// Joins `group` on the interface with address `local` or index `ifindex` (both 0: any).
pub fn join_group(fd: c_int, group: [u8; 4], local: [u8; 4], ifindex: u32) -> Result<(), Errno> {
    let m = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group),
        },
        imr_address: libc::in_addr {
            s_addr: u32::from_ne_bytes(local),
        },
        imr_ifindex: ifindex as c_int,
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &m)
}

pub fn send_to(fd: c_int, buf: &[u8], to: &libc::sockaddr_in) -> Result<(), Errno> {
    // SAFETY: buf and `to` are live for the call; the length matches sockaddr_in.
    let r = unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (to as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// Waits until `fd` is readable or `timeout_ms` passes (negative: forever). Ok(false) on
/// timeout or a signal.
pub fn poll_readable(fd: c_int, timeout_ms: c_int) -> Result<bool, Errno> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is one live pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = errno();
        return if e == libc::EINTR { Ok(false) } else { Err(e) };
    }
    Ok(r > 0)
}

/// One read from the socket: length, source address, truncated flag, and the size of each
/// datagram in it. With UDP GRO ([`set_udp_gro`]) the kernel may hand over several
/// datagrams of one flow in one read: each is `segment` bytes, the last one may be shorter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Received {
    pub len: usize,
    pub from: [u8; 4],
    pub truncated: bool,
    pub segment: usize,
    /// When the kernel received it, microseconds on the wall clock (`CLOCK_REALTIME`);
    /// 0 without receive timestamps ([`set_receive_timestamps`]).
    pub stamp_us: u64,
}

impl Received {
    /// The byte ranges of the datagrams in the read (an empty datagram is one, too).
    pub fn datagrams(&self) -> impl Iterator<Item = core::ops::Range<usize>> {
        let (len, seg) = (self.len, self.segment.max(1));
        (0..len.div_ceil(seg).max(1)).map(move |i| i * seg..((i + 1) * seg).min(len))
    }
}

/// linux/udp.h: UDP_GRO (Linux 5.0), not in the libc crate for glibc and musl.
const UDP_GRO: c_int = 104;

/// Lets the kernel coalesce the datagrams of one flow that arrive together (UDP GRO), so
/// that a batch costs the socket one read instead of one per datagram. Only a NIC (or veth)
/// that does GRO coalesces; elsewhere nothing changes. False where the kernel has no UDP GRO
/// (before Linux 5.0): reads then hold one datagram each, as without it.
pub fn set_udp_gro(fd: c_int) -> bool {
    setsockopt(fd, libc::SOL_UDP, UDP_GRO, &1 as &c_int).is_ok()
}

/// Asks the kernel to timestamp each datagram as it receives it (SO_TIMESTAMPNS), so that
/// the time one waited in the socket while this process did not run can be told apart from
/// the time it took to arrive. False where the kernel refuses: reads carry no stamp then.
pub fn set_receive_timestamps(fd: c_int) -> bool {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1 as &c_int).is_ok()
}

/// Microseconds on the wall clock (`CLOCK_REALTIME`, the clock of receive timestamps).
pub fn wall_clock_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000) + ts.tv_nsec as u64 / 1000
}

/// Receives up to `N` reads without blocking (recvmmsg, MSG_DONTWAIT) into `bufs`; fills
/// `out` and returns how many arrived (0 when none are queued). A read holds several
/// datagrams when the kernel coalesced them (see [`Received::datagrams`]).
pub fn recv_batch<const N: usize, const L: usize>(
    fd: c_int,
    bufs: &mut [[u8; L]; N],
    out: &mut [Received; N],
) -> Result<usize, Errno> {
    // SAFETY: all-zero iovec, sockaddr_in and mmsghdr values are valid (null pointers, zero
    // lengths) and every pointer field is set below before use.
    let mut iov: [libc::iovec; N] = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut names: [libc::sockaddr_in; N] = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; N] = unsafe { core::mem::zeroed() };
    // Room for UDP_GRO's control message (an int: 24 bytes) and a receive timestamp (a
    // timespec: 32 bytes), 8-byte aligned.
    let mut control = [[0u64; 8]; N];
    for i in 0..N {
        iov[i].iov_base = bufs[i].as_mut_ptr().cast();
        iov[i].iov_len = L;
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_in).cast();
        msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msgs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
        msgs[i].msg_hdr.msg_controllen = size_of_val(&control[i]) as _;
    }
    // SAFETY: msgs holds N headers whose iovecs point into `bufs` (N buffers of L bytes),
    // whose names point into `names` and whose control buffers into `control`; all outlive
    // the call.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            N as _,
            libc::MSG_DONTWAIT as _,
            core::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = errno();
        return if e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::EINTR {
            Ok(0)
        } else {
            Err(e)
        };
    }
    let n = r as usize;
    for i in 0..n {
        let len = (msgs[i].msg_len as usize).min(L);
        let (gro, stamp_us) = control_messages(&msgs[i].msg_hdr);
        let segment = match gro {
            Some(s) if s > 0 && s < len => s,
            _ => len,
        };
        out[i] = Received {
            len,
            from: names[i].sin_addr.s_addr.to_ne_bytes(),
            // A cut control message may have lost the segment size: the read cannot be split.
            truncated: msgs[i].msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
            segment,
            stamp_us,
        };
    }
    Ok(n)
}

/// What a read's control messages say: the segment size of a coalesced read (UDP_GRO), if
/// any, and the receive timestamp in wall-clock microseconds (0 without one).
fn control_messages(h: &libc::msghdr) -> (Option<usize>, u64) {
    let (mut gro, mut stamp_us) = (None, 0);
    // msg_controllen is a socklen_t in musl, a size_t in glibc (the host's unit tests).
    #[allow(clippy::unnecessary_cast)]
    let end = h.msg_control as usize + h.msg_controllen as usize;
    // SAFETY: `h` is a header recvmmsg filled: msg_control/msg_controllen describe the
    // control bytes the kernel wrote into our buffer. The macros find each header within
    // them; its value is read only when the header says it holds one of that size and it
    // ends in the buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let holds = |size: usize| {
                (*c).cmsg_len as usize >= libc::CMSG_LEN(size as u32) as usize
                    && data as usize + size <= end
            };
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            if level == libc::SOL_UDP && ty == UDP_GRO && holds(size_of::<c_int>()) {
                let v = core::ptr::read_unaligned(data.cast::<c_int>());
                gro = usize::try_from(v).ok();
            } else if level == libc::SOL_SOCKET
                && ty == libc::SCM_TIMESTAMPNS
                && holds(size_of::<libc::timespec>())
            {
                let ts = core::ptr::read_unaligned(data.cast::<libc::timespec>());
                stamp_us = (ts.tv_sec as u64).saturating_mul(1_000_000) + ts.tv_nsec as u64 / 1000;
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (gro, stamp_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// linux/udp.h: UDP_SEGMENT, the sender's side of GSO.
    const UDP_SEGMENT: c_int = 103;

    fn local_port(fd: c_int) -> u16 {
        // SAFETY: a zeroed sockaddr_in is valid; getsockname fills at most `len` bytes of it.
        let mut a: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a and len are live and sized for an IPv4 address.
        let r =
            unsafe { libc::getsockname(fd, (&mut a as *mut libc::sockaddr_in).cast(), &mut len) };
        assert_eq!(r, 0);
        u16::from_be(a.sin_port)
    }

    /// Five datagrams sent in one GSO batch over loopback come back as one read of five
    /// with UDP GRO on (the kernel keeps the batch whole for such a socket), and each is
    /// split out at its own bytes; without UDP GRO in the kernel, as five reads.
    #[test]
    fn a_coalesced_read_is_split_into_its_datagrams() {
        let rx = udp_socket().unwrap();
        bind(rx.0, [127, 0, 0, 1], 0).unwrap();
        let gro = set_udp_gro(rx.0);
        let to = sockaddr([127, 0, 0, 1], local_port(rx.0));
        let tx = udp_socket().unwrap();
        // Four datagrams of 100 bytes and a short last one of 40, each numbered in its bytes.
        let mut batch = [0u8; 440];
        for (i, b) in batch.iter_mut().enumerate() {
            *b = (i / 100) as u8;
        }
        if setsockopt(tx.0, libc::SOL_UDP, UDP_SEGMENT, &100 as &c_int).is_err() {
            return; // no UDP GSO to send a batch with (before Linux 4.18)
        }
        send_to(tx.0, &batch, &to).unwrap();
        let mut bufs = [[0u8; 1 << 16]; 8];
        let mut out = [Received::default(); 8];
        let mut datagrams: [([u8; 2], usize); 8] = [([0; 2], 0); 8];
        let mut count = 0;
        let mut reads = 0;
        // Until the five are in, or nothing more comes for a second.
        while count < 5 && poll_readable(rx.0, 1000).unwrap() {
            let n = recv_batch(rx.0, &mut bufs, &mut out).unwrap();
            for i in 0..n {
                reads += 1;
                for r in out[i].datagrams() {
                    let d = &bufs[i][r];
                    datagrams[count] = ([d[0], d[d.len() - 1]], d.len());
                    count += 1;
                }
            }
        }
        let want = [
            ([0, 0], 100),
            ([1, 1], 100),
            ([2, 2], 100),
            ([3, 3], 100),
            ([4, 4], 40),
        ];
        assert_eq!(datagrams[..count], want);
        if gro {
            assert_eq!((reads, out[0].len, out[0].segment), (1, 440, 100));
        } else {
            assert_eq!(reads, 5);
        }
    }

    /// With receive timestamps on, a read carries when the kernel took the datagram in,
    /// on the wall clock: after it was sent, and no later than it was read. (A datagram
    /// that sat in the socket keeps its stamp: that wait is what the stamp tells apart.)
    #[test]
    fn a_read_carries_the_kernels_receive_time() {
        let rx = udp_socket().unwrap();
        bind(rx.0, [127, 0, 0, 1], 0).unwrap();
        assert!(set_receive_timestamps(rx.0), "SO_TIMESTAMPNS refused");
        let to = sockaddr([127, 0, 0, 1], local_port(rx.0));
        let tx = udp_socket().unwrap();
        use crate::init::syscalls::sleep_ms;
        // The kernel switches its receive stamps on a moment later (a deferred static key):
        // until then a datagram is stamped when read.
        sleep_ms(20);
        let before = wall_clock_us();
        send_to(tx.0, b"stamped", &to).unwrap();
        // Read 20 ms later: the stamp stays the arrival's.
        assert!(poll_readable(rx.0, 1000).unwrap());
        sleep_ms(20);
        let mut bufs = [[0u8; 64]; 1];
        let mut out = [Received::default(); 1];
        assert_eq!(recv_batch(rx.0, &mut bufs, &mut out).unwrap(), 1);
        let read_at = wall_clock_us();
        let stamp = out[0].stamp_us;
        assert!(stamp >= before, "stamped {stamp}, sent at {before}");
        assert!(
            stamp + 15_000 <= read_at,
            "stamped {stamp}, read at {read_at}: the read time, not the arrival's"
        );
        assert_eq!(&bufs[0][..out[0].len], b"stamped");
    }

    /// The datagrams' byte ranges in a read of `len` bytes coalesced at `segment`.
    fn ranges(len: usize, segment: usize) -> Vec<(usize, usize)> {
        let r = Received {
            len,
            from: [0; 4],
            truncated: false,
            segment,
            stamp_us: 0,
        };
        r.datagrams().map(|d| (d.start, d.end)).collect()
    }

    #[test]
    fn a_read_splits_at_its_segment_size_and_an_empty_one_is_one_datagram() {
        assert_eq!(ranges(10, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(ranges(8, 4), [(0, 4), (4, 8)]);
        assert_eq!(ranges(7, 7), [(0, 7)]);
        assert_eq!(ranges(0, 0), [(0, 0)]);
    }
}
