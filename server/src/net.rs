//! Sockets: the data socket (broadcast, multicast or unicast; UDP GSO batches, sendmmsg
//! otherwise) and the control socket (status and results in, result acks out).

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::cli::{Interface, Options};

const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams the kernel takes in one GSO send.
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one GSO send over IPv4 (the super-packet is one IP datagram).
pub const GSO_MAX_BYTES: usize = 65_507;
/// Most datagrams handed to the kernel per system call.
pub const BATCH_MAX: usize = 64;

/// A send failure worth stopping for, with the destination for the message.
#[derive(Debug)]
pub struct SendError {
    pub to: SocketAddrV4,
    pub err: io::Error,
    pub len: usize,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sendto {}: {}", self.to, self.err)?;
        let hint = match self.err.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EADDRNOTAVAIL) => {
                " — is ADDRESS the broadcast address of a local subnet (or a multicast group with a route; try --interface)?".to_string()
            }
            Some(libc::EACCES) => " — broadcast refused: is ADDRESS a broadcast address of a local subnet?".to_string(),
            Some(libc::EMSGSIZE) => format!(
                " — {}-byte datagrams do not fit the interface MTU: lower --symbol-size (1408 fits a 1500 MTU)",
                self.len
            ),
            Some(libc::EPERM) => " — a firewall rule (nftables/iptables OUTPUT) refuses the packets".to_string(),
            Some(libc::ENOBUFS) => " — the interface queue stayed full: lower --rate".to_string(),
            _ => String::new(),
        };
        f.write_str(&hint)
    }
}

/// The server's sockets.
pub struct Net {
    data: Socket,
    control: UdpSocket,
    dest: SocketAddrV4,
    gso: bool,
    gso_confirmed: bool,
    /// Send system calls made for data batches.
    pub syscalls: u64,
    /// Sends retried because the queue was full.
    pub retries: u64,
    /// Result acks that could not be sent.
    pub ack_errors: u64,
    /// Set when GSO was refused and sendmmsg took over (for a message).
    pub gso_fallback: Option<String>,
}

fn ifindex(name: &str) -> io::Result<u32> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i)
}

fn setsockopt<T>(s: &impl AsRawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

impl Net {
    /// Opens both sockets. Errors are messages for exit code 4.
    pub fn open(o: &Options) -> Result<Net, String> {
        let multicast = o.address.is_multicast();
        let data = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| format!("socket: {e}"))?;
        let sndbuf: libc::c_int = 8 << 20;
        // As root the larger size holds whatever wmem_max says; otherwise take what is allowed.
        if setsockopt(&data, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = data.set_send_buffer_size(sndbuf as usize);
        }
        // Never fragment: a datagram above the MTU is an error that names --symbol-size.
        let _ = setsockopt(
            &data,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            &libc::IP_PMTUDISC_DO,
        );
        let mut local = Ipv4Addr::UNSPECIFIED;
        match &o.interface {
            Some(Interface::Addr(a)) => local = *a,
            Some(Interface::Name(n)) => {
                data.bind_device(Some(n.as_bytes()))
                    .map_err(|e| format!("--interface {n}: cannot bind to the device: {e}"))?;
            }
            None => {}
        }
        if multicast {
            data.set_multicast_ttl_v4(o.ttl)
                .map_err(|e| format!("IP_MULTICAST_TTL: {e}"))?;
            let _ = data.set_multicast_loop_v4(true);
            match &o.interface {
                Some(Interface::Addr(a)) => data
                    .set_multicast_if_v4(a)
                    .map_err(|e| format!("--interface {a}: IP_MULTICAST_IF: {e}"))?,
                Some(Interface::Name(n)) => {
                    let idx = ifindex(n).map_err(|e| format!("--interface {n}: {e}"))?;
                    let m = libc::ip_mreqn {
                        imr_multiaddr: libc::in_addr { s_addr: 0 },
                        imr_address: libc::in_addr { s_addr: 0 },
                        imr_ifindex: idx as libc::c_int,
                    };
                    setsockopt(&data, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m)
                        .map_err(|e| format!("--interface {n}: IP_MULTICAST_IF: {e}"))?;
                }
                None => {}
            }
        } else {
            data.set_broadcast(true)
                .map_err(|e| format!("SO_BROADCAST: {e}"))?;
        }
        data.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))
            .map_err(|e| format!("cannot bind the data socket to {local}: {e} — is --interface an address of this machine?"))?;

        let control = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| format!("socket: {e}"))?;
        let _ = control.set_recv_buffer_size(4 << 20);
        if let Some(Interface::Name(n)) = &o.interface {
            control
                .bind_device(Some(n.as_bytes()))
                .map_err(|e| format!("--interface {n}: cannot bind to the device: {e}"))?;
        }
        let caddr = SocketAddrV4::new(local, o.control_port);
        control.bind(&SockAddr::from(caddr)).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::AddrInUse {
                " — is another bb-server running? (--control-port)"
            } else {
                ""
            };
            format!("cannot bind the control port {caddr}: {e}{hint}")
        })?;
        control
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        Ok(Net {
            data,
            control: control.into(),
            dest: SocketAddrV4::new(o.address, o.port),
            gso: true,
            gso_confirmed: false,
            syscalls: 0,
            retries: 0,
            ack_errors: 0,
            gso_fallback: None,
        })
    }

    /// The control socket, to wait on.
    pub fn control(&self) -> &UdpSocket {
        &self.control
    }

    /// Where data goes.
    pub fn dest(&self) -> SocketAddrV4 {
        self.dest
    }

    /// Datagrams of `seg` bytes per send call.
    pub fn batch_limit(seg: usize) -> usize {
        (GSO_MAX_BYTES / seg).clamp(1, GSO_MAX_SEGMENTS.min(BATCH_MAX))
    }

    /// Sends one datagram to the data address (announces).
    pub fn send_data_one(&mut self, pkt: &[u8]) -> Result<(), SendError> {
        self.send_batch(pkt, pkt.len(), 1)
    }

    /// Sends `count` datagrams of `seg` bytes laid end to end in `buf`.
    pub fn send_batch(&mut self, buf: &[u8], seg: usize, count: usize) -> Result<(), SendError> {
        debug_assert!(buf.len() >= seg * count);
        let mut sent = 0;
        let mut retry_since: Option<Instant> = None;
        while sent < count {
            let r = if self.gso && count - sent > 1 {
                self.send_gso(&buf[sent * seg..count * seg], seg)
                    .map(|_| count - sent)
            } else {
                self.send_mmsg(&buf[sent * seg..count * seg], seg)
            };
            self.syscalls += 1;
            match r {
                Ok(n) => {
                    if self.gso && count - sent > 1 {
                        self.gso_confirmed = true;
                    }
                    sent += n;
                    retry_since = None;
                }
                Err(e) => {
                    let code = e.raw_os_error();
                    if self.gso
                        && !self.gso_confirmed
                        && count - sent > 1
                        && matches!(
                            code,
                            Some(libc::EINVAL)
                                | Some(libc::EIO)
                                | Some(libc::ENOPROTOOPT)
                                | Some(libc::EOPNOTSUPP)
                        )
                    {
                        self.gso = false;
                        self.gso_fallback =
                            Some(format!("UDP GSO refused ({e}); sending with sendmmsg"));
                        continue;
                    }
                    if matches!(
                        code,
                        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
                    ) {
                        let t = *retry_since.get_or_insert_with(Instant::now);
                        if t.elapsed() < Duration::from_secs(5) {
                            self.retries += 1;
                            std::thread::sleep(Duration::from_micros(200));
                            continue;
                        }
                    }
                    return Err(SendError {
                        to: self.dest,
                        err: e,
                        len: seg,
                    });
                }
            }
        }
        Ok(())
    }

    fn send_gso(&self, buf: &[u8], seg: usize) -> io::Result<()> {
        let mut addr = sockaddr_in(self.dest);
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // Room for one cmsg carrying a u16, aligned as cmsghdr wants.
        let mut cbuf = [0u64; 4];
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        // SAFETY: a zeroed msghdr is valid; every pointer set below refers to a local that
        // outlives the sendmsg call; the cmsg is written inside `cbuf` (32 bytes >= space).
        let r = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg as u16);
            libc::sendmsg(self.data.as_raw_fd(), &msg, 0)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn send_mmsg(&self, buf: &[u8], seg: usize) -> io::Result<usize> {
        let count = buf.len() / seg;
        let mut addr = sockaddr_in(self.dest);
        let mut iovs: [libc::iovec; BATCH_MAX] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH_MAX];
        // SAFETY: mmsghdr is plain data; zeroed is a valid empty value.
        let mut msgs: [libc::mmsghdr; BATCH_MAX] = unsafe { std::mem::zeroed() };
        let n = count.min(BATCH_MAX);
        for i in 0..n {
            iovs[i] = libc::iovec {
                iov_base: buf[i * seg..].as_ptr() as *mut libc::c_void,
                iov_len: seg,
            };
            msgs[i].msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` point at `addr`, `iovs` and `buf`, all alive for the call.
        let r = unsafe {
            libc::sendmmsg(
                self.data.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Sends a result ack to a client (best effort: the client repeats its result).
    pub fn send_ack(&mut self, pkt: &[u8], to: SocketAddrV4) {
        if self.control.send_to(pkt, to).is_err() {
            self.ack_errors += 1;
        }
    }

    /// Receives one control datagram if one is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> Option<(usize, SocketAddrV4)> {
        loop {
            match self.control.recv_from(buf) {
                Ok((n, SocketAddr::V4(a))) => return Some((n, a)),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // ICMP errors from earlier acks (port unreachable) and the like: skip.
                Err(_) => return None,
            }
        }
    }
}
