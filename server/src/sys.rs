//! The few system calls std does not wrap: signals, getrandom, block device size, ppoll
//! (readable, writable).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM (without SA_RESTART, so blocking reads return EINTR).
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic, which
        // is async-signal-safe; the pointers passed live for the call.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// 8 random bytes from getrandom(2).
pub fn random_u64() -> io::Result<u64> {
    let mut b = [0u8; 8];
    random_bytes(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Fills `b` from the kernel's random source (getrandom(2), blocking until it is seeded).
pub fn random_bytes(b: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < b.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `b`.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(())
}

/// Size of a block device (BLKGETSIZE64).
pub fn block_device_size(f: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    // SAFETY: the ioctl writes one u64 into `size`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Waits until `fd` is readable or `timeout` passed (nanosecond resolution). Returns true
/// when readable. EINTR counts as a timeout.
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    poll_one(fd, libc::POLLIN, timeout)
}

/// Waits until `fd` has room to send or `timeout` passed. Returns true when writable.
/// EINTR counts as a timeout.
pub fn wait_writable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    poll_one(fd, libc::POLLOUT, timeout)
}

fn poll_one(fd: &impl AsRawFd, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec, both live for the call; no sigmask.
    let r = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// True when stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only reads the descriptor's state.
    unsafe { libc::isatty(2) == 1 }
}

/// Where lseek(2) with SEEK_DATA or SEEK_HOLE lands from `offset`; None past the last data
/// (ENXIO). Err(Unsupported) where the filesystem cannot say (EINVAL).
fn seek_whence(f: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: lseek on a descriptor `f` owns; it reads no memory of ours.
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL) => Err(io::Error::new(io::ErrorKind::Unsupported, e)),
        _ => Err(e),
    }
}

/// The next byte at or after `offset` that may hold data (SEEK_DATA).
pub fn seek_data(f: &File, offset: u64) -> io::Result<Option<u64>> {
    seek_whence(f, offset, libc::SEEK_DATA)
}

/// The next hole at or after `offset` (SEEK_HOLE; the end of the file counts as one).
pub fn seek_hole(f: &File, offset: u64) -> io::Result<Option<u64>> {
    seek_whence(f, offset, libc::SEEK_HOLE)
}

/// CPU time this process used so far: (user, system) seconds, from getrusage(2).
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: a zeroed rusage is valid; getrusage only writes into the struct passed.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return (0.0, 0.0);
        }
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn cpu_times_grow_with_work() {
        let (u0, s0) = super::cpu_times();
        let t = Instant::now();
        let mut x = 1u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let (u1, s1) = super::cpu_times();
        assert!(u1 + s1 > u0 + s0, "{u0}+{s0} -> {u1}+{s1}");
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(super::random_u64().unwrap(), super::random_u64().unwrap());
    }

    #[test]
    fn polls_report_readiness_and_time_out() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        // An idle UDP socket has room to send at once.
        assert!(super::wait_writable(&a, Duration::from_secs(5)).unwrap());
        let t = Instant::now();
        assert!(!super::wait_readable(&a, Duration::from_millis(20)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(20));
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        assert!(super::wait_readable(&a, Duration::from_secs(5)).unwrap());
    }
}
