//! IPv4 interface configuration with the classic ioctls (no netlink, no heap):
//! SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFBRDADDR, SIOCADDRT.

use super::syscalls::{self, IfIoctl, IfReq};
use crate::os::{self, Errno, Fd};

const IFF_UP: i16 = 0x1;

/// An AF_INET datagram socket used only for ioctls.
pub struct Ctl(Fd);

impl Ctl {
    pub fn open() -> Result<Ctl, Errno> {
        os::udp_socket().map(Ctl)
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

    /// Sets IFF_UP on the interface.
    pub fn up(&self, ifname: &[u8]) -> Result<(), Errno> {
        let mut r = Self::req(ifname);
        syscalls::if_ioctl(self.0.0, IfIoctl::GetFlags, &mut r)?;
        let flags = i16::from_ne_bytes([r.data[0], r.data[1]]) | IFF_UP;
        r.data[..2].copy_from_slice(&flags.to_ne_bytes());
        syscalls::if_ioctl(self.0.0, IfIoctl::SetFlags, &mut r)
    }

    fn set_addr(&self, ifname: &[u8], op: IfIoctl, a: [u8; 4]) -> Result<(), Errno> {
        let mut r = Self::req(ifname);
        r.data[..16].copy_from_slice(&syscalls::sockaddr_bytes(a));
        syscalls::if_ioctl(self.0.0, op, &mut r)
    }

    /// Address, netmask and broadcast address.
    pub fn set_ipv4(&self, ifname: &[u8], addr: [u8; 4], mask: [u8; 4]) -> Result<(), Errno> {
        self.set_addr(ifname, IfIoctl::SetAddr, addr)?;
        self.set_addr(ifname, IfIoctl::SetNetmask, mask)?;
        let bcast = (u32::from_be_bytes(addr) | !u32::from_be_bytes(mask)).to_be_bytes();
        if u32::from_be_bytes(mask) != u32::MAX {
            let _ = self.set_addr(ifname, IfIoctl::SetBroadcast, bcast);
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
    ) -> Result<(), Errno> {
        match syscalls::add_route(self.0.0, ifname, dst, mask, gw) {
            Err(e) if e != libc::EEXIST => Err(e),
            _ => Ok(()),
        }
    }

    pub fn hwaddr(&self, ifname: &[u8]) -> Result<[u8; 6], Errno> {
        let mut r = Self::req(ifname);
        syscalls::if_ioctl(self.0.0, IfIoctl::GetHwAddr, &mut r)?;
        let mut m = [0u8; 6];
        m.copy_from_slice(&r.data[2..8]); // sockaddr.sa_data
        Ok(m)
    }
}

/// Waits for /sys/class/net/IF/carrier to read 1, at most `ms` milliseconds.
pub fn wait_carrier(ifname: &[u8], ms: u64) -> bool {
    let mut path = [0u8; 64];
    let pre = b"/sys/class/net/";
    let suf = b"/carrier";
    let n = ifname
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(ifname.len())
        .min(15);
    path[..pre.len()].copy_from_slice(pre);
    path[pre.len()..pre.len() + n].copy_from_slice(&ifname[..n]);
    path[pre.len() + n..pre.len() + n + suf.len()].copy_from_slice(suf);
    let path = &path[..pre.len() + n + suf.len()];
    let deadline = os::now_ms() + ms;
    loop {
        let mut b = [0u8; 4];
        if let Ok(k) = os::read_file(path, &mut b)
            && k > 0
            && b[0] == b'1'
        {
            return true;
        }
        if os::now_ms() >= deadline {
            return false;
        }
        syscalls::sleep_ms(50);
    }
}
