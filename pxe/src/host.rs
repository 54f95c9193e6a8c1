//! What bb-pxe needs from this machine, checked before anything starts: the interface and
//! its IPv4 address, free DHCP/TFTP ports, dnsmasq, iPXE's loaders, the netboot files and
//! bb-server. Every error says how to fix it.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

/// INTERFACE's first IPv4 address and its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

impl IfAddr {
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !u32::from(self.netmask))
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask))
    }
}

/// The interface exists and has an IPv4 address.
pub fn interface_address(name: &str) -> Result<IfAddr, String> {
    if name.is_empty() || name.contains('/') || !Path::new("/sys/class/net").join(name).exists() {
        let mut have: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        have.sort();
        return Err(format!(
            "no network interface {name:?} on this machine (have: {}; `ip -br link` lists them)",
            have.join(", ")
        ));
    }
    ipv4_of(name)?.ok_or_else(|| {
        format!(
            "interface {name} has no IPv4 address: the machines need one to fetch their boot files \
             (give it one, e.g. `ip addr add 10.0.0.1/24 dev {name}`, or let the network's DHCP \
             server configure it)"
        )
    })
}

/// The first IPv4 address of `name` from getifaddrs(3).
fn ipv4_of(name: &str) -> Result<Option<IfAddr>, String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(format!(
            "cannot list the interfaces' addresses: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut found = None;
    let mut p = list;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned, alive until freeifaddrs;
        // ifa_name is a NUL-terminated string, ifa_addr/ifa_netmask are sockaddr_in when
        // their family is AF_INET.
        unsafe {
            let ifa = &*p;
            let n = std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes();
            if n == name.as_bytes()
                && !ifa.ifa_addr.is_null()
                && !ifa.ifa_netmask.is_null()
                && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET
            {
                let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                found = Some(IfAddr {
                    addr: Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    netmask: Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr)),
                });
                break;
            }
            p = ifa.ifa_next;
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// UDP ports dnsmasq needs: 67 (DHCP), 69 (TFTP), and 4011 (PXE boot server) in proxy mode.
pub fn check_ports(proxy: bool) -> Result<(), String> {
    let mut ports = vec![(67u16, "DHCP"), (69, "TFTP")];
    if proxy {
        ports.push((4011, "proxy DHCP (PXE boot server)"));
    }
    for (port, what) in ports {
        if let Err(e) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)) {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "is taken by another program (`ss -ulpn 'sport = :{port}'` names it; stop it, \
                     e.g. `systemctl stop dnsmasq isc-dhcp-server tftpd-hpa`, or run bb-pxe where \
                     it is not running)"
                )
            } else if e.kind() == std::io::ErrorKind::PermissionDenied {
                "needs root (run bb-pxe with sudo)".to_string()
            } else {
                format!("cannot be bound: {e}")
            };
            return Err(format!("UDP port {port} ({what}) {why}"));
        }
    }
    Ok(())
}

/// A program by name in PATH (and /usr/sbin, /sbin, which a user's PATH often lacks).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn find_dnsmasq(given: Option<&Path>) -> Result<PathBuf, String> {
    match given {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(format!("--dnsmasq {}: no such program", p.display())),
        None => find_program("dnsmasq").ok_or_else(|| {
            "dnsmasq not found: install it (apt-get install dnsmasq-base; the service package \
             dnsmasq is not needed) or give --dnsmasq PATH"
                .into()
        }),
    }
}

/// bb-server: --bb-server, else beside this program, else in PATH.
pub fn find_bb_server(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--bb-server {}: no such program", p.display()))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("bb-server")))
        .filter(|p| p.is_file());
    beside.or_else(|| find_program("bb-server")).ok_or_else(|| {
        "bb-server not found beside bb-pxe or in PATH: install broadband (make install, or the \
         .deb of make deb) or give --bb-server PATH"
            .into()
    })
}

/// iPXE's loaders in `dir`: undionly.kpxe (BIOS) and ipxe.efi (UEFI) are needed;
/// snponly.efi is served when present.
pub fn ipxe_loaders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for (name, needed) in [
        ("undionly.kpxe", true),
        ("ipxe.efi", true),
        ("snponly.efi", false),
    ] {
        let p = dir.join(name);
        if p.is_file() {
            out.push(p);
        } else if needed {
            return Err(format!(
                "iPXE loader {} missing: install iPXE's loaders (apt-get install ipxe) or give \
                 --ipxe DIR with undionly.kpxe and ipxe.efi",
                p.display()
            ));
        }
    }
    Ok(out)
}

/// Directories searched for vmlinuz + bb-initramfs.img, in order.
pub fn netboot_candidates(given: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = given {
        return vec![p.to_path_buf()];
    }
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("BB_NETBOOT") {
        v.push(PathBuf::from(d));
    }
    // PREFIX/bin/bb-pxe -> PREFIX/share/broadband/netboot (make install with any PREFIX).
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(|b| b.parent()).map(Path::to_path_buf))
    {
        v.push(prefix.join("share/broadband/netboot"));
    }
    v.push(PathBuf::from("/usr/share/broadband/netboot"));
    v.push(PathBuf::from("build/netboot"));
    v.dedup();
    v
}

/// The first candidate directory holding both vmlinuz and bb-initramfs.img.
pub fn find_netboot(given: Option<&Path>) -> Result<PathBuf, String> {
    let c = netboot_candidates(given);
    c.iter()
        .find(|d| d.join("vmlinuz").is_file() && d.join("bb-initramfs.img").is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "the imaging kernel and initramfs (vmlinuz, bb-initramfs.img) are in none of {}: \
                 build them with `make netboot` in the broadband source tree (build/netboot), \
                 install the broadband package, or give --netboot DIR",
                c.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_network() {
        let a = IfAddr {
            addr: Ipv4Addr::new(10, 99, 0, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        };
        assert_eq!(a.broadcast(), Ipv4Addr::new(10, 99, 0, 255));
        assert_eq!(a.network(), Ipv4Addr::new(10, 99, 0, 0));
    }

    #[test]
    fn loopback_has_its_address_and_unknown_interfaces_are_named() {
        let lo = interface_address("lo").unwrap();
        assert_eq!(lo.addr, Ipv4Addr::LOCALHOST);
        let e = interface_address("bbnosuch0").unwrap_err();
        assert!(e.contains("no network interface \"bbnosuch0\""), "{e}");
        assert!(e.contains("lo"), "{e}");
    }

    #[test]
    fn missing_files_name_the_fix() {
        let dir = std::env::temp_dir().join(format!("bb-pxe-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = ipxe_loaders(&dir).unwrap_err();
        assert!(e.contains("apt-get install ipxe"), "{e}");
        std::fs::write(dir.join("undionly.kpxe"), b"x").unwrap();
        std::fs::write(dir.join("ipxe.efi"), b"x").unwrap();
        assert_eq!(ipxe_loaders(&dir).unwrap().len(), 2);
        let e = find_netboot(Some(&dir)).unwrap_err();
        assert!(e.contains("make netboot"), "{e}");
        std::fs::write(dir.join("vmlinuz"), b"k").unwrap();
        std::fs::write(dir.join("bb-initramfs.img"), b"i").unwrap();
        assert_eq!(find_netboot(Some(&dir)).unwrap(), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
