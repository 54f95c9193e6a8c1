//! The words for `net.rs`'s typed errors and notices: what the user reads, with the option
//! to change where one helps.

use std::fmt;

use crate::net::{Interface, Notice, OpenError, OpenStep, SendError};

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interface::Addr(a) => write!(f, "{a}"),
            Interface::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.err;
        match &self.step {
            OpenStep::CreateSocket => write!(f, "socket: {e}"),
            OpenStep::BindDevice(n) => write!(f, "--interface {n}: cannot bind to the device: {e}"),
            OpenStep::MulticastTtl => write!(f, "IP_MULTICAST_TTL: {e}"),
            OpenStep::InterfaceIndex(n) => write!(f, "--interface {n}: {e}"),
            OpenStep::MulticastInterface(i) => write!(f, "--interface {i}: IP_MULTICAST_IF: {e}"),
            OpenStep::Broadcast => write!(f, "SO_BROADCAST: {e}"),
            OpenStep::BindData(local) => write!(
                f,
                "cannot bind the data socket to {local}: {e} — is --interface an address of this machine?"
            ),
            OpenStep::BindControl(addr) => {
                write!(f, "cannot bind the control port {addr}: {e}")?;
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    f.write_str(" — is another bb-server running? (--control-port)")?;
                }
                Ok(())
            }
            OpenStep::DataNonblocking => write!(f, "data socket: {e}"),
            OpenStep::ControlNonblocking => write!(f, "control socket: {e}"),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sendto {}: {}", self.to, self.err)?;
        match self.err.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EADDRNOTAVAIL) => {
                f.write_str(" — is ADDRESS the broadcast address of a local subnet (or a multicast group with a route; try --interface)?")
            }
            Some(libc::EACCES) => f.write_str(
                " — broadcast refused: is ADDRESS a broadcast address of a local subnet?",
            ),
            Some(libc::EMSGSIZE) => write!(
                f,
                " — {}-byte datagrams do not fit the interface MTU: lower --symbol-size (1408 fits a 1500 MTU)",
                self.len
            ),
            Some(libc::EPERM) => {
                f.write_str(" — a firewall rule (nftables/iptables OUTPUT) refuses the packets")
            }
            Some(libc::ENOBUFS) => f.write_str(" — the interface queue stayed full: lower --rate"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::GsoRefused(e) => write!(f, "UDP GSO refused ({e}); sending with sendmmsg"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4};

    use crate::net::{Full, Interface, Notice, OpenError, OpenStep, SendError};

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn open_errors_name_the_option_to_change() {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7854);
        let in_use = OpenError {
            step: OpenStep::BindControl(addr),
            err: os(libc::EADDRINUSE),
        };
        let text = in_use.to_string();
        assert!(text.starts_with("cannot bind the control port 127.0.0.1:7854: "));
        assert!(text.ends_with(" — is another bb-server running? (--control-port)"));
        let denied = OpenError {
            step: OpenStep::BindControl(addr),
            err: os(libc::EACCES),
        };
        assert!(!denied.to_string().contains("another bb-server"));
        let mcast = OpenError {
            step: OpenStep::MulticastInterface(Interface::Addr(Ipv4Addr::new(10, 0, 0, 1))),
            err: os(libc::EADDRNOTAVAIL),
        };
        assert!(
            mcast
                .to_string()
                .starts_with("--interface 10.0.0.1: IP_MULTICAST_IF: ")
        );
        let device = OpenError {
            step: OpenStep::BindDevice("eth9".into()),
            err: os(libc::ENODEV),
        };
        assert!(
            device
                .to_string()
                .starts_with("--interface eth9: cannot bind to the device: ")
        );
    }

    #[test]
    fn send_errors_carry_a_hint_by_errno() {
        let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), 7855);
        let big = SendError {
            to,
            err: os(libc::EMSGSIZE),
            len: 9000,
        };
        assert!(big.to_string().starts_with("sendto 10.0.0.255:7855: "));
        assert!(big.to_string().ends_with(
            " — 9000-byte datagrams do not fit the interface MTU: lower --symbol-size (1408 fits a 1500 MTU)"
        ));
        let full = SendError {
            to,
            err: Full::DeviceQueue.error(),
            len: 1444,
        };
        assert!(
            full.to_string()
                .ends_with(" — the interface queue stayed full: lower --rate")
        );
        let other = SendError {
            to,
            err: os(libc::EBADF),
            len: 1444,
        };
        assert!(!other.to_string().contains(" — "));
    }

    #[test]
    fn gso_notice_keeps_the_kernel_error() {
        let n = Notice::GsoRefused(os(libc::EIO));
        assert_eq!(
            n.to_string(),
            format!("UDP GSO refused ({}); sending with sendmmsg", os(libc::EIO))
        );
    }
}
