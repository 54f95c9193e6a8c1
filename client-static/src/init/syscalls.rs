//! The syscalls only the /init mode makes: mounts, kernel modules, descriptors of the
//! console, exec, reboot, the DHCP socket options and interface configuration. Thin, typed
//! wrappers over libc like [`crate::os`]; errors are errno values.

use crate::os::{Errno, errno, setsockopt};
use core::ffi::{CStr, c_char, c_int, c_void};

/// Sleeps `ms` milliseconds (less if a signal arrives).
pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    };
    // SAFETY: ts is a valid timespec; a null remainder pointer is allowed.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// True when `fd` is an open descriptor.
pub fn fd_is_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD only inspects the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Makes `to` a copy of `from` (dup2), closing what `to` was.
pub fn dup2(from: c_int, to: c_int) -> Result<(), Errno> {
    // SAFETY: plain syscall on descriptors; no memory is passed.
    if unsafe { libc::dup2(from, to) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// True when `path` exists (access F_OK).
pub fn exists(path: &CStr) -> bool {
    // SAFETY: path is NUL-terminated.
    unsafe { libc::access(path.as_ptr(), libc::F_OK) == 0 }
}

pub fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: path is NUL-terminated.
    if unsafe { libc::mkdir(path.as_ptr(), mode) } != 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Mounts a filesystem that needs no source device and no options (proc, sysfs, devtmpfs):
/// the source is the type's name.
pub fn mount(fstype: &CStr, target: &CStr, flags: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: all three strings are NUL-terminated; a null data pointer means no options.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            core::ptr::null(),
        )
    };
    if r != 0 { Err(errno()) } else { Ok(()) }
}

/// Reads directory entries (struct linux_dirent64 records) into `buf`; Ok(0) at the end.
pub fn getdents64(fd: c_int, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is a writable slice and the kernel writes at most buf.len() bytes to it.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd as libc::c_long,
            buf.as_mut_ptr(),
            buf.len() as libc::c_long,
        )
    };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// Loads the kernel module in the open file `fd` (finit_module(2), no parameters).
pub fn finit_module(fd: c_int) -> Result<(), Errno> {
    // SAFETY: the parameter string is a NUL-terminated empty string; the flags are 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            fd as libc::c_long,
            c"".as_ptr(),
            0 as libc::c_long,
        )
    };
    if r != 0 { Err(errno()) } else { Ok(()) }
}

/// True if the shell glob `pattern` matches `s` (fnmatch(3), no flags).
pub fn fnmatch(pattern: &CStr, s: &CStr) -> bool {
    // SAFETY: both strings are NUL-terminated; fnmatch only reads them.
    unsafe { libc::fnmatch(pattern.as_ptr(), s.as_ptr(), 0) == 0 }
}

/// Flushes every filesystem's dirty data (sync(2)).
pub fn sync() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}

/// reboot(2) with `how` (RB_POWER_OFF, RB_AUTOBOOT, RB_HALT_SYSTEM); returns only on failure,
/// with the errno.
pub fn reboot(how: c_int) -> Errno {
    // SAFETY: reboot takes no pointers; at worst it fails with EPERM.
    unsafe { libc::reboot(how) };
    errno()
}

/// Replaces the process with `path` (execve(2)); returns only on failure, with the errno.
/// At most 7 arguments and 7 environment entries (E2BIG beyond).
pub fn execve(path: &CStr, argv: &[&CStr], envp: &[&CStr]) -> Errno {
    const MAX: usize = 8;
    if argv.len() >= MAX || envp.len() >= MAX {
        return libc::E2BIG;
    }
    let mut a = [core::ptr::null::<c_char>(); MAX];
    for (p, s) in a.iter_mut().zip(argv) {
        *p = s.as_ptr();
    }
    let mut e = [core::ptr::null::<c_char>(); MAX];
    for (p, s) in e.iter_mut().zip(envp) {
        *p = s.as_ptr();
    }
    // SAFETY: path and every argv/envp entry are NUL-terminated strings borrowed for the
    // call; both pointer arrays end with a null pointer (len < MAX, the rest is null).
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    errno()
}

pub fn set_broadcast(fd: c_int) -> Result<(), Errno> {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, &(1 as c_int))
}

/// Sends and receives only through the interface `name` (SO_BINDTODEVICE; no NUL needed).
pub fn bind_to_device(fd: c_int, name: &[u8]) -> Result<(), Errno> {
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, name)
}

/// Receives one datagram into `buf` (blocking); returns its length (cut at `buf.len()`).
pub fn recv(fd: c_int, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is a writable slice of buf.len() bytes.
    let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if r < 0 { Err(errno()) } else { Ok(r as usize) }
}

// ---- interface configuration (the /init mode) --------------------------------------------

/// struct ifreq: a 16-byte name and a 24-byte union.
#[repr(C, align(8))]
pub struct IfReq {
    pub name: [u8; 16],
    pub data: [u8; 24],
}

/// The interface ioctls used, all of which read and write one struct ifreq.
#[derive(Clone, Copy)]
pub enum IfIoctl {
    GetFlags = 0x8913,
    SetFlags = 0x8914,
    SetAddr = 0x8916,
    SetBroadcast = 0x891a,
    SetNetmask = 0x891c,
    GetHwAddr = 0x8927,
}

/// One interface ioctl on the socket `fd`.
pub fn if_ioctl(fd: c_int, op: IfIoctl, r: &mut IfReq) -> Result<(), Errno> {
    // SAFETY: each IfIoctl request reads and writes exactly one struct ifreq, and r is a live,
    // exclusive IfReq with the kernel's layout (40 bytes, 8-aligned).
    let res = unsafe { libc::ioctl(fd, op as libc::c_ulong as _, r as *mut IfReq) };
    if res < 0 { Err(errno()) } else { Ok(()) }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
}

/// A struct sockaddr_in with port 0, as the interface ioctls want it (16 bytes).
pub fn sockaddr_bytes(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    b[4..8].copy_from_slice(&a);
    b
}

fn sin(a: [u8; 4]) -> SockAddrIn {
    SockAddrIn {
        family: libc::AF_INET as u16,
        port: [0; 2],
        addr: a,
        zero: [0; 8],
    }
}

/// struct rtentry (include/uapi/linux/route.h).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: SockAddrIn,
    rt_gateway: SockAddrIn,
    rt_genmask: SockAddrIn,
    rt_flags: u16,
    rt_pad2: i16,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut c_void,
    rt_metric: i16,
    rt_dev: *mut c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: u16,
}

/// Adds the route `dst/mask` via `gw` (or directly on the link) out of interface `ifname`
/// (SIOCADDRT on the socket `fd`). The name is cut at a NUL and at 15 bytes.
pub fn add_route(
    fd: c_int,
    ifname: &[u8],
    dst: [u8; 4],
    mask: [u8; 4],
    gw: Option<[u8; 4]>,
) -> Result<(), Errno> {
    const SIOCADDRT: libc::c_ulong = 0x890B;
    const RTF_UP: u16 = 0x1;
    const RTF_GATEWAY: u16 = 0x2;
    let mut dev = [0u8; 16];
    let n = ifname
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(ifname.len())
        .min(15);
    dev[..n].copy_from_slice(&ifname[..n]);
    let mut rt = RtEntry {
        rt_pad1: 0,
        rt_dst: sin(dst),
        rt_gateway: sin(gw.unwrap_or([0; 4])),
        rt_genmask: sin(mask),
        rt_flags: RTF_UP | if gw.is_some() { RTF_GATEWAY } else { 0 },
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: core::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr().cast(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: SIOCADDRT reads one struct rtentry, which rt is (same layout); its rt_dev points
    // to `dev`, a NUL-terminated name that outlives the call.
    let r = unsafe { libc::ioctl(fd, SIOCADDRT as _, &mut rt as *mut RtEntry) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}
