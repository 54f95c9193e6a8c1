//! IPv4 interface configuration with the classic ioctls (no netlink, no heap):
//! SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFBRDADDR, SIOCADDRT.

use super::sys::{errno, now_ms, read_file, sleep_ms};
use core::ffi::c_char;

const SIOCADDRT: u64 = 0x890B;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
const SIOCSIFADDR: u64 = 0x8916;
const SIOCSIFBRDADDR: u64 = 0x891a;
const SIOCSIFNETMASK: u64 = 0x891c;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;
const IFF_UP: i16 = 0x1;
const RTF_UP: u16 = 0x1;
const RTF_GATEWAY: u16 = 0x2;

/// struct ifreq: a 16-byte name and a 24-byte union.
#[repr(C, align(8))]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockAddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
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
    rt_pad4: *mut libc::c_void,
    rt_metric: i16,
    rt_dev: *mut c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: u16,
}

/// An AF_INET datagram socket used only for ioctls.
pub struct Ctl(i32);

impl Ctl {
    pub fn open() -> Result<Ctl, i32> {
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 { Err(errno()) } else { Ok(Ctl(fd)) }
    }

    fn req(name: &[u8]) -> IfReq {
        let mut r = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        let n = name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(name.len())
            .min(15);
        r.name[..n].copy_from_slice(&name[..n]);
        r
    }

    fn ioctl(&self, req: u64, arg: *mut libc::c_void) -> Result<(), i32> {
        let r = unsafe { libc::ioctl(self.0, req as _, arg) };
        if r < 0 { Err(errno()) } else { Ok(()) }
    }

    /// Sets IFF_UP on the interface.
    pub fn up(&self, ifname: &[u8]) -> Result<(), i32> {
        let mut r = Self::req(ifname);
        self.ioctl(SIOCGIFFLAGS, (&mut r as *mut IfReq).cast())?;
        let flags = i16::from_ne_bytes([r.data[0], r.data[1]]) | IFF_UP;
        r.data[..2].copy_from_slice(&flags.to_ne_bytes());
        self.ioctl(SIOCSIFFLAGS, (&mut r as *mut IfReq).cast())
    }

    fn set_addr(&self, ifname: &[u8], req: u64, a: [u8; 4]) -> Result<(), i32> {
        let mut r = Self::req(ifname);
        let s = sin(a);
        // SAFETY: SockAddrIn is 16 plain bytes, the union has 24.
        let bytes: [u8; 16] = unsafe { core::mem::transmute(s) };
        r.data[..16].copy_from_slice(&bytes);
        self.ioctl(req, (&mut r as *mut IfReq).cast())
    }

    /// Address, netmask and broadcast address.
    pub fn set_ipv4(&self, ifname: &[u8], addr: [u8; 4], mask: [u8; 4]) -> Result<(), i32> {
        self.set_addr(ifname, SIOCSIFADDR, addr)?;
        self.set_addr(ifname, SIOCSIFNETMASK, mask)?;
        let bcast = (u32::from_be_bytes(addr) | !u32::from_be_bytes(mask)).to_be_bytes();
        if u32::from_be_bytes(mask) != u32::MAX {
            let _ = self.set_addr(ifname, SIOCSIFBRDADDR, bcast);
        }
        Ok(())
    }

    /// Adds a route `dst/mask` via `gw` (or directly on the link) out of `ifname`.
    /// EEXIST counts as success.
    pub fn add_route(
        &self,
        ifname: &[u8],
        dst: [u8; 4],
        mask: [u8; 4],
        gw: Option<[u8; 4]>,
    ) -> Result<(), i32> {
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
            rt_dev: dev.as_mut_ptr() as *mut c_char,
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        match self.ioctl(SIOCADDRT, (&mut rt as *mut RtEntry).cast()) {
            Err(e) if e != libc::EEXIST => Err(e),
            _ => Ok(()),
        }
    }

    pub fn hwaddr(&self, ifname: &[u8]) -> Result<[u8; 6], i32> {
        let mut r = Self::req(ifname);
        self.ioctl(SIOCGIFHWADDR, (&mut r as *mut IfReq).cast())?;
        let mut m = [0u8; 6];
        m.copy_from_slice(&r.data[2..8]); // sockaddr.sa_data
        Ok(m)
    }

    pub fn ifindex(&self, ifname: &[u8]) -> Result<i32, i32> {
        let mut r = Self::req(ifname);
        self.ioctl(SIOCGIFINDEX, (&mut r as *mut IfReq).cast())?;
        Ok(i32::from_ne_bytes([
            r.data[0], r.data[1], r.data[2], r.data[3],
        ]))
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

/// Waits for /sys/class/net/IF/carrier to read 1, at most `ms` milliseconds.
pub fn wait_carrier(ifname: &[u8], ms: u64) -> bool {
    let mut path = [0u8; 64];
    let pre = b"/sys/class/net/";
    let suf = b"/carrier\0";
    let n = ifname
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(ifname.len())
        .min(15);
    path[..pre.len()].copy_from_slice(pre);
    path[pre.len()..pre.len() + n].copy_from_slice(&ifname[..n]);
    path[pre.len() + n..pre.len() + n + suf.len()].copy_from_slice(suf);
    let deadline = now_ms() + ms;
    loop {
        let mut b = [0u8; 4];
        if let Ok(k) = read_file(&path, &mut b) {
            if k > 0 && b[0] == b'1' {
                return true;
            }
        }
        if now_ms() >= deadline {
            return false;
        }
        sleep_ms(50);
    }
}
