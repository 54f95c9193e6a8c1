//! The sending interface's link speed, where the kernel reports one: the rate control starts
//! there and never exceeds it.

use crate::net::Interface;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;

/// The link speed of the device that sends to `dest` (the one named by `--interface`, or
/// the one the routing table picks), in bits per second; None when it cannot be told.
pub fn for_destination(dest: SocketAddrV4, interface: Option<&Interface>) -> Option<u64> {
    let device = match interface {
        Some(Interface::Name(n)) => n.clone(),
        Some(Interface::Addr(a)) => device_with_address(*a)?,
        None => device_with_address(route_source(dest)?)?,
    };
    speed_bps(Path::new("/sys/class/net"), &device)
}

/// Reads `DEV/speed` (Mbit/s) under `sys_class_net`. Virtual devices (veth, bridges, tun)
/// have no `DEV/device` and report a nominal or unknown speed: None, so the rate probes.
pub fn speed_bps(sys_class_net: &Path, device: &str) -> Option<u64> {
    let dir = sys_class_net.join(device);
    if !dir.join("device").exists() {
        return None;
    }
    let mbit: i64 = std::fs::read_to_string(dir.join("speed"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (mbit > 0).then(|| mbit as u64 * 1_000_000)
}

/// The local address the kernel would send from to `dest` (a connected UDP socket sends
/// nothing).
fn route_source(dest: SocketAddrV4) -> Option<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.set_broadcast(true).ok()?;
    s.connect(dest).ok()?;
    match s.local_addr().ok()? {
        std::net::SocketAddr::V4(a) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    }
}

/// The name of the device holding `addr`.
fn device_with_address(addr: Ipv4Addr) -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed; its
        // ifa_addr, when not null, points to a sockaddr of the family it names, and
        // ifa_name to a NUL-terminated string.
        let (ifa, name) = unsafe {
            let ifa = &*cur;
            let sa = ifa.ifa_addr;
            let name = if !sa.is_null() && (*sa).sa_family as i32 == libc::AF_INET {
                let sin = &*(sa as *const libc::sockaddr_in);
                (Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr).then(|| {
                    std::ffi::CStr::from_ptr(ifa.ifa_name)
                        .to_string_lossy()
                        .into_owned()
                })
            } else {
                None
            };
            (ifa, name)
        };
        if name.is_some() {
            found = name;
            break;
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_speeds_count_virtual_ones_do_not() {
        let root = std::env::temp_dir().join(format!("bb-linkspeed-{}", std::process::id()));
        let dev = |name: &str, speed: &str, physical: bool| {
            let d = root.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("speed"), speed).unwrap();
            if physical {
                std::fs::create_dir_all(d.join("device")).unwrap();
            }
        };
        dev("eth0", "1000\n", true);
        dev("eth1", "-1\n", true);
        dev("veth0", "10000\n", false);
        assert_eq!(speed_bps(&root, "eth0"), Some(1_000_000_000));
        assert_eq!(speed_bps(&root, "eth1"), None, "unknown speed");
        assert_eq!(speed_bps(&root, "veth0"), None, "virtual device");
        assert_eq!(speed_bps(&root, "nope"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn loopback_is_found_by_its_address() {
        assert_eq!(
            device_with_address(Ipv4Addr::LOCALHOST).as_deref(),
            Some("lo")
        );
        assert_eq!(
            route_source(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9)),
            Some(Ipv4Addr::LOCALHOST)
        );
    }
}
