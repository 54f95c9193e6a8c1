//! Sockets: the data socket (broadcast, multicast or unicast; UDP GSO batches, sendmmsg
//! otherwise) and the control socket (status and results in, result acks out).
//!
//! Modelled on quinn-udp: this module alone owns the kernel's UDP features and degrades
//! gracefully (GSO refused: sendmmsg). It never sleeps: a full kernel is reported as
//! [`Sent::WouldBlock`] with the datagrams that went out, and the caller decides how to
//! wait. It holds no user-facing text: failures and notices are typed values, worded in
//! `messages.rs`.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams the kernel takes in one GSO send.
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one GSO send over IPv4 (the super-packet is one IP datagram).
pub const GSO_MAX_BYTES: usize = 65_507;
/// Most datagrams handed to the kernel per system call.
pub const BATCH_MAX: usize = 64;
/// Data socket send buffer asked for: room for bursts at multi-gigabit rates.
pub const DATA_SEND_BUFFER: usize = 8 << 20;
/// Control socket receive buffer asked for: status reports of thousands of clients.
pub const CONTROL_RECV_BUFFER: usize = 4 << 20;

/// `--interface`: an address or a device name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interface {
    /// Bind to this local address.
    Addr(Ipv4Addr),
    /// Bind to this device (SO_BINDTODEVICE).
    Name(String),
}

/// Everything the sockets need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// Where data goes: a broadcast address, a multicast group or one host, and the data port.
    pub destination: SocketAddrV4,
    /// The port the control socket binds (status and results in, acks out).
    pub control_port: u16,
    /// Send from this local address or device.
    pub interface: Option<Interface>,
    /// Hops a multicast datagram may take.
    pub multicast_ttl: u32,
    /// Whether multicast data also reaches clients on this machine.
    pub multicast_loop: bool,
    /// Data socket send buffer (forced as root, else capped by net.core.wmem_max).
    pub send_buffer: usize,
    /// Control socket receive buffer (forced with CAP_NET_ADMIN, else capped by
    /// net.core.rmem_max).
    pub control_recv_buffer: usize,
    /// Try UDP GSO first; sendmmsg takes over if the kernel refuses it.
    pub gso: bool,
}

impl SocketConfig {
    /// The defaults for everything but the addresses: TTL 1 (the local segment), multicast
    /// loop on, the buffer sizes above, GSO on.
    pub fn new(destination: SocketAddrV4, control_port: u16) -> SocketConfig {
        SocketConfig {
            destination,
            control_port,
            interface: None,
            multicast_ttl: 1,
            multicast_loop: true,
            send_buffer: DATA_SEND_BUFFER,
            control_recv_buffer: CONTROL_RECV_BUFFER,
            gso: true,
        }
    }
}

/// The step of [`Net::open`] that failed.
#[derive(Debug)]
pub enum OpenStep {
    /// socket(2).
    CreateSocket,
    /// SO_BINDTODEVICE on this device.
    BindDevice(String),
    /// IP_MULTICAST_TTL.
    MulticastTtl,
    /// Looking up this device's index.
    InterfaceIndex(String),
    /// IP_MULTICAST_IF for this interface.
    MulticastInterface(Interface),
    /// SO_BROADCAST.
    Broadcast,
    /// Binding the data socket to this local address.
    BindData(Ipv4Addr),
    /// Binding the control socket to this address.
    BindControl(SocketAddrV4),
    /// Making the data socket non-blocking.
    DataNonblocking,
    /// Making the control socket non-blocking.
    ControlNonblocking,
}

/// Why the sockets could not be opened.
#[derive(Debug)]
pub struct OpenError {
    pub step: OpenStep,
    pub err: io::Error,
}

/// A send failure worth stopping for, with the destination and datagram size.
#[derive(Debug)]
pub struct SendError {
    pub to: SocketAddrV4,
    pub err: io::Error,
    pub len: usize,
}

/// What the kernel ran out of when it would block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The socket's send buffer (EAGAIN): the socket turns writable when it drains.
    SocketBuffer,
    /// The device queue (ENOBUFS): no event says when it drains.
    DeviceQueue,
}

impl Full {
    /// The kernel's error, for a message when the caller gives up.
    pub fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Full::SocketBuffer => libc::EAGAIN,
            Full::DeviceQueue => libc::ENOBUFS,
        })
    }
}

/// How a send went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Every datagram went out.
    All,
    /// The kernel would block after the first `sent` datagrams; the rest were not sent.
    WouldBlock { sent: usize, full: Full },
}

/// Something worth telling the user that is not an error.
#[derive(Debug)]
pub enum Notice {
    /// The kernel refused UDP GSO; every batch goes out with sendmmsg from now on.
    GsoRefused(io::Error),
}

/// The send system calls, apart from the batch logic so that tests can script a kernel.
trait SendCalls {
    /// One GSO send of every datagram in `buf` (all or nothing).
    fn send_gso(&mut self, buf: &[u8], seg: usize) -> io::Result<()>;
    /// One sendmmsg of up to [`BATCH_MAX`] datagrams from `buf`; how many went out.
    fn send_mmsg(&mut self, buf: &[u8], seg: usize) -> io::Result<usize>;
}

/// The batch logic: GSO or sendmmsg, the fallback, partial sends, would-block.
#[derive(Debug)]
struct Batcher {
    gso: bool,
    /// A GSO send succeeded once: later GSO errors are real errors, not a refusal.
    gso_confirmed: bool,
    notice: Option<Notice>,
}

/// Errors with which a kernel refuses UDP GSO (old kernel, device or driver without it).
fn refuses_gso(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EIO) | Some(libc::ENOPROTOOPT) | Some(libc::EOPNOTSUPP)
    )
}

impl Batcher {
    fn new(gso: bool) -> Batcher {
        Batcher {
            gso,
            gso_confirmed: false,
            notice: None,
        }
    }

    /// Sends `count` datagrams of `seg` bytes laid end to end in `buf`.
    fn send(
        &mut self,
        calls: &mut impl SendCalls,
        buf: &[u8],
        seg: usize,
        count: usize,
    ) -> io::Result<Sent> {
        debug_assert!(buf.len() >= seg * count);
        let mut sent = 0;
        while sent < count {
            let rest = &buf[sent * seg..count * seg];
            let gso = self.gso && count - sent > 1;
            let r = if gso {
                calls.send_gso(rest, seg).map(|()| count - sent)
            } else {
                calls.send_mmsg(rest, seg)
            };
            let e = match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.gso_confirmed |= gso;
                    sent += n;
                    continue;
                }
                Err(e) => e,
            };
            if gso && !self.gso_confirmed && refuses_gso(&e) {
                self.gso = false;
                self.notice = Some(Notice::GsoRefused(e));
                continue;
            }
            let full = match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => Full::SocketBuffer,
                Some(libc::ENOBUFS) => Full::DeviceQueue,
                _ => return Err(e),
            };
            return Ok(Sent::WouldBlock { sent, full });
        }
        Ok(Sent::All)
    }
}

/// The data socket and where it sends.
struct DataSocket {
    socket: Socket,
    dest: SocketAddrV4,
}

impl SendCalls for DataSocket {
    fn send_gso(&mut self, buf: &[u8], seg: usize) -> io::Result<()> {
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
            libc::sendmsg(self.socket.as_raw_fd(), &msg, 0)
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn send_mmsg(&mut self, buf: &[u8], seg: usize) -> io::Result<usize> {
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
                self.socket.as_raw_fd(),
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
}

/// The server's sockets.
pub struct Net {
    data: DataSocket,
    control: UdpSocket,
    batcher: Batcher,
    /// Result acks that could not be sent.
    pub ack_errors: u64,
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

/// Sets a socket buffer of `bytes`: `forced` (past the sysctl's cap, with CAP_NET_ADMIN),
/// else `plain` (capped by it). Best effort: a smaller buffer only holds fewer datagrams.
fn set_buffer(s: &impl AsRawFd, forced: libc::c_int, plain: libc::c_int, bytes: usize) {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt(s, libc::SOL_SOCKET, forced, &size).is_err() {
        let _ = setsockopt(s, libc::SOL_SOCKET, plain, &size);
    }
}

fn zeroed_sockaddr_in() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeros is a valid value.
    unsafe { std::mem::zeroed() }
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

/// Tags an io::Result with the step of `open` it belongs to.
fn at(step: impl FnOnce() -> OpenStep) -> impl FnOnce(io::Error) -> OpenError {
    move |err| OpenError { step: step(), err }
}

fn open_data(c: &SocketConfig) -> Result<(Socket, Ipv4Addr), OpenError> {
    let data = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(at(|| OpenStep::CreateSocket))?;
    // As root the larger size holds whatever wmem_max says; otherwise take what is allowed.
    set_buffer(&data, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, c.send_buffer);
    // Never fragment: a datagram above the MTU is an error that names --symbol-size.
    let _ = setsockopt(
        &data,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        &libc::IP_PMTUDISC_DO,
    );
    let mut local = Ipv4Addr::UNSPECIFIED;
    match &c.interface {
        Some(Interface::Addr(a)) => local = *a,
        Some(Interface::Name(n)) => data
            .bind_device(Some(n.as_bytes()))
            .map_err(at(|| OpenStep::BindDevice(n.clone())))?,
        None => {}
    }
    if c.destination.ip().is_multicast() {
        data.set_multicast_ttl_v4(c.multicast_ttl)
            .map_err(at(|| OpenStep::MulticastTtl))?;
        let _ = data.set_multicast_loop_v4(c.multicast_loop);
        match &c.interface {
            Some(Interface::Addr(a)) => data
                .set_multicast_if_v4(a)
                .map_err(at(|| OpenStep::MulticastInterface(Interface::Addr(*a))))?,
            Some(Interface::Name(n)) => {
                let idx = ifindex(n).map_err(at(|| OpenStep::InterfaceIndex(n.clone())))?;
                let m = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: idx as libc::c_int,
                };
                setsockopt(&data, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m).map_err(at(
                    || OpenStep::MulticastInterface(Interface::Name(n.clone())),
                ))?;
            }
            None => {}
        }
    } else {
        data.set_broadcast(true)
            .map_err(at(|| OpenStep::Broadcast))?;
    }
    data.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))
        .map_err(at(|| OpenStep::BindData(local)))?;
    // Full buffers come back as EAGAIN (Sent::WouldBlock): the caller decides how to wait.
    data.set_nonblocking(true)
        .map_err(at(|| OpenStep::DataNonblocking))?;
    Ok((data, local))
}

fn open_control(c: &SocketConfig, local: Ipv4Addr) -> Result<UdpSocket, OpenError> {
    let control = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(at(|| OpenStep::CreateSocket))?;
    // Debian's rmem_max (208 KiB) holds a few hundred reports: a thousand clients reporting
    // at once would overflow it. With CAP_NET_ADMIN (root) the full size; else what is
    // allowed.
    set_buffer(
        &control,
        libc::SO_RCVBUFFORCE,
        libc::SO_RCVBUF,
        c.control_recv_buffer,
    );
    if let Some(Interface::Name(n)) = &c.interface {
        control
            .bind_device(Some(n.as_bytes()))
            .map_err(at(|| OpenStep::BindDevice(n.clone())))?;
    }
    let caddr = SocketAddrV4::new(local, c.control_port);
    control
        .bind(&SockAddr::from(caddr))
        .map_err(at(|| OpenStep::BindControl(caddr)))?;
    control
        .set_nonblocking(true)
        .map_err(at(|| OpenStep::ControlNonblocking))?;
    // Kernel receive timestamps, so that the rate control times reports by their arrival,
    // not by when the loop read them. Without them the read time stands in.
    let _ = setsockopt(
        &control,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        &1 as &libc::c_int,
    );
    Ok(control.into())
}

/// One control datagram as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddrV4,
    /// When the kernel received it (wall clock), where the kernel says.
    pub arrived: Option<std::time::SystemTime>,
}

/// Control messages room: one timestamp (with headroom for others the kernel may add).
const CMSG_ROOM: usize = 128;

/// The receive timestamp among the control messages of `msg`, if any.
fn receive_timestamp(msg: &libc::msghdr) -> Option<std::time::SystemTime> {
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return None;
    }
    // SAFETY: `msg` was filled by recvmsg: its control buffer holds `msg_controllen` bytes
    // of well-formed cmsg headers, which the CMSG_* macros walk without going past it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let h = &*c;
            let full =
                h.cmsg_len as usize >= libc::CMSG_LEN(size_of::<libc::timespec>() as u32) as usize;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS && full {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                let d = std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                return std::time::UNIX_EPOCH.checked_add(d);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

impl Net {
    /// Opens both sockets.
    pub fn open(c: &SocketConfig) -> Result<Net, OpenError> {
        let (data, local) = open_data(c)?;
        let control = open_control(c, local)?;
        Ok(Net {
            data: DataSocket {
                socket: data,
                dest: c.destination,
            },
            control,
            batcher: Batcher::new(c.gso),
            ack_errors: 0,
        })
    }

    /// The control socket, to wait on for status reports.
    pub fn control(&self) -> &UdpSocket {
        &self.control
    }

    /// The data socket, to wait on for room after [`Sent::WouldBlock`].
    pub fn data(&self) -> &Socket {
        &self.data.socket
    }

    /// Where data goes.
    pub fn dest(&self) -> SocketAddrV4 {
        self.data.dest
    }

    /// What happened since the last call that the user should hear about.
    pub fn take_notice(&mut self) -> Option<Notice> {
        self.batcher.notice.take()
    }

    /// Datagrams of `seg` bytes per send call.
    pub fn batch_limit(seg: usize) -> usize {
        (GSO_MAX_BYTES / seg).clamp(1, GSO_MAX_SEGMENTS.min(BATCH_MAX))
    }

    /// Sends `count` datagrams of `seg` bytes laid end to end in `buf`, at most
    /// [`Net::batch_limit`]. On would-block the datagrams past `sent` are still the caller's.
    pub fn send_batch(&mut self, buf: &[u8], seg: usize, count: usize) -> Result<Sent, SendError> {
        debug_assert!(count <= Net::batch_limit(seg));
        self.batcher
            .send(&mut self.data, buf, seg, count)
            .map_err(|err| SendError {
                to: self.data.dest,
                err,
                len: seg,
            })
    }

    /// Sends a result ack to a client (best effort: the client repeats its result).
    pub fn send_ack(&mut self, pkt: &[u8], to: SocketAddrV4) {
        if self.control.send_to(pkt, to).is_err() {
            self.ack_errors += 1;
        }
    }

    /// Receives one control datagram if one is waiting, with its kernel receive time.
    pub fn recv(&self, buf: &mut [u8]) -> Option<Received> {
        let mut name: libc::sockaddr_in = zeroed_sockaddr_in();
        let mut cmsg = [0u64; CMSG_ROOM / 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        loop {
            // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut name as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = CMSG_ROOM as _;
            // SAFETY: every pointer in `msg` points to a live buffer of the length given
            // beside it, for the duration of the call.
            let n = unsafe { libc::recvmsg(self.control.as_raw_fd(), &mut msg, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Nothing waiting (WouldBlock), or an ICMP error from an earlier ack (port
                // unreachable) and the like: nothing to read now.
                return None;
            }
            if name.sin_family != libc::AF_INET as libc::sa_family_t {
                continue;
            }
            let from = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                u16::from_be(name.sin_port),
            );
            return Some(Received {
                len: n as usize,
                from,
                arrived: receive_timestamp(&msg),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    /// A send system call as the scripted kernel saw it: how many datagrams it was offered.
    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Gso(usize),
        Mmsg(usize),
    }

    /// Answers: `Ok(None)` takes every datagram offered, `Ok(Some(n))` takes `n`, `Err(errno)`.
    struct ScriptedKernel {
        answers: VecDeque<Result<Option<usize>, i32>>,
        calls: Vec<Call>,
    }

    fn kernel(answers: &[Result<Option<usize>, i32>]) -> ScriptedKernel {
        ScriptedKernel {
            answers: answers.iter().copied().collect(),
            calls: Vec::new(),
        }
    }

    impl ScriptedKernel {
        fn answer(&mut self) -> Result<Option<usize>, i32> {
            self.answers
                .pop_front()
                .expect("a send the script did not expect")
        }
    }

    impl SendCalls for ScriptedKernel {
        fn send_gso(&mut self, buf: &[u8], seg: usize) -> io::Result<()> {
            self.calls.push(Call::Gso(buf.len() / seg));
            match self.answer() {
                Ok(None) => Ok(()),
                Ok(Some(_)) => panic!("a GSO send is all or nothing"),
                Err(code) => Err(os(code)),
            }
        }

        fn send_mmsg(&mut self, buf: &[u8], seg: usize) -> io::Result<usize> {
            let offered = (buf.len() / seg).min(BATCH_MAX);
            self.calls.push(Call::Mmsg(offered));
            match self.answer() {
                Ok(None) => Ok(offered),
                Ok(Some(n)) => Ok(n),
                Err(code) => Err(os(code)),
            }
        }
    }

    const SEG: usize = 100;
    const BUF: [u8; 10 * SEG] = [0; 10 * SEG];

    #[test]
    fn gso_refused_before_any_success_falls_back_to_sendmmsg_for_good() {
        let mut b = Batcher::new(true);
        let mut k = kernel(&[Err(libc::EINVAL), Ok(None), Ok(None)]);
        assert_eq!(b.send(&mut k, &BUF, SEG, 5).unwrap(), Sent::All);
        assert_eq!(b.send(&mut k, &BUF, SEG, 3).unwrap(), Sent::All);
        assert_eq!(k.calls, [Call::Gso(5), Call::Mmsg(5), Call::Mmsg(3)]);
        assert!(!b.gso);
        let Some(Notice::GsoRefused(e)) = b.notice.take() else {
            panic!("no notice of the fallback");
        };
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn gso_error_after_a_success_is_a_real_error() {
        let mut b = Batcher::new(true);
        let mut k = kernel(&[Ok(None), Err(libc::EINVAL)]);
        assert_eq!(b.send(&mut k, &BUF, SEG, 4).unwrap(), Sent::All);
        let e = b.send(&mut k, &BUF, SEG, 4).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(k.calls, [Call::Gso(4), Call::Gso(4)]);
        assert!(b.gso && b.notice.is_none());
    }

    #[test]
    fn a_single_datagram_goes_by_sendmmsg() {
        let mut b = Batcher::new(true);
        let mut k = kernel(&[Ok(None)]);
        assert_eq!(b.send(&mut k, &BUF, SEG, 1).unwrap(), Sent::All);
        assert_eq!(k.calls, [Call::Mmsg(1)]);
    }

    #[test]
    fn would_block_says_how_many_went_out_and_what_is_full() {
        let mut b = Batcher::new(false);
        let mut k = kernel(&[Ok(Some(2)), Err(libc::EAGAIN), Err(libc::ENOBUFS)]);
        assert_eq!(
            b.send(&mut k, &BUF, SEG, 5).unwrap(),
            Sent::WouldBlock {
                sent: 2,
                full: Full::SocketBuffer
            }
        );
        // The caller resends the rest once there is room.
        assert_eq!(
            b.send(&mut k, &BUF[2 * SEG..], SEG, 3).unwrap(),
            Sent::WouldBlock {
                sent: 0,
                full: Full::DeviceQueue
            }
        );
        assert_eq!(k.calls, [Call::Mmsg(5), Call::Mmsg(3), Call::Mmsg(3)]);
        assert_eq!(
            Full::DeviceQueue.error().raw_os_error(),
            Some(libc::ENOBUFS)
        );
    }

    #[test]
    fn a_full_kernel_is_no_gso_refusal() {
        let mut b = Batcher::new(true);
        let mut k = kernel(&[Err(libc::EAGAIN), Ok(None)]);
        assert_eq!(
            b.send(&mut k, &BUF, SEG, 6).unwrap(),
            Sent::WouldBlock {
                sent: 0,
                full: Full::SocketBuffer
            }
        );
        assert!(b.gso && b.notice.is_none());
        assert_eq!(b.send(&mut k, &BUF, SEG, 6).unwrap(), Sent::All);
        assert_eq!(k.calls, [Call::Gso(6), Call::Gso(6)]);
    }

    #[test]
    fn interrupted_sends_are_retried_and_partial_sends_continue() {
        let mut b = Batcher::new(false);
        let mut k = kernel(&[Err(libc::EINTR), Ok(Some(3)), Ok(None)]);
        assert_eq!(b.send(&mut k, &BUF, SEG, 7).unwrap(), Sent::All);
        assert_eq!(k.calls, [Call::Mmsg(7), Call::Mmsg(7), Call::Mmsg(4)]);
    }

    #[test]
    fn a_kernel_that_takes_nothing_is_an_error_not_a_loop() {
        let mut b = Batcher::new(false);
        let mut k = kernel(&[Ok(Some(0))]);
        let e = b.send(&mut k, &BUF, SEG, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn batch_limit_respects_gso_bytes_and_segments() {
        assert_eq!(Net::batch_limit(1444), 45);
        assert_eq!(Net::batch_limit(8932), 7);
        assert_eq!(Net::batch_limit(100), 64);
        assert_eq!(Net::batch_limit(70_000), 1);
    }

    fn loopback(port: u16, gso: bool) -> SocketConfig {
        SocketConfig {
            gso,
            send_buffer: 64 << 10,
            ..SocketConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), 0)
        }
    }

    fn receiver() -> (UdpSocket, u16) {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = r.local_addr().unwrap().port();
        (r, port)
    }

    #[test]
    fn open_applies_the_configuration() {
        let net = Net::open(&loopback(9, true)).unwrap();
        assert!(net.data().nonblocking().unwrap());
        assert!(net.data().broadcast().unwrap());
        // Linux doubles the size asked for (bookkeeping overhead).
        assert_eq!(net.data().send_buffer_size().unwrap(), 2 * (64 << 10));
        let group = SocketConfig {
            multicast_ttl: 4,
            ..SocketConfig::new(SocketAddrV4::new(Ipv4Addr::new(239, 1, 2, 3), 9), 0)
        };
        let net = Net::open(&group).unwrap();
        assert_eq!(net.data().multicast_ttl_v4().unwrap(), 4);
        assert!(net.data().multicast_loop_v4().unwrap());
        assert!(!net.data().broadcast().unwrap());
    }

    #[test]
    fn the_control_buffer_passes_rmem_max_when_privileged() {
        let Ok(text) = std::fs::read_to_string("/proc/sys/net/core/rmem_max") else {
            eprintln!("skipped: no /proc/sys/net/core/rmem_max to compare with");
            return;
        };
        let rmem_max: usize = text.trim().parse().unwrap();
        let asked = rmem_max + (1 << 20);
        // Whether this process may force a size (CAP_NET_ADMIN), asked of a scratch socket.
        let probe = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let may_force = setsockopt(&probe, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &1i32).is_ok();
        let c = SocketConfig {
            control_recv_buffer: asked,
            ..loopback(9, true)
        };
        let net = Net::open(&c).unwrap();
        let got = socket2::SockRef::from(net.control())
            .recv_buffer_size()
            .unwrap();
        if may_force {
            // Linux doubles the size asked for (bookkeeping overhead).
            assert_eq!(got, 2 * asked);
        } else {
            eprintln!("no CAP_NET_ADMIN: the buffer stays within rmem_max");
            assert!(got <= 2 * rmem_max, "{got}");
        }
    }

    #[test]
    fn a_taken_control_port_is_a_typed_error() {
        let taken = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let c = SocketConfig::new(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9), port);
        let e = Net::open(&c).err().expect("the port is taken");
        assert!(
            matches!(e.step, OpenStep::BindControl(a) if a.port() == port),
            "{e:?}"
        );
        assert_eq!(e.err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn batches_reach_a_loopback_receiver_with_and_without_gso() {
        for gso in [true, false] {
            let (r, port) = receiver();
            let mut net = Net::open(&loopback(port, gso)).unwrap();
            let seg = 1000;
            let buf: Vec<u8> = (0..10 * seg).map(|i| (i / seg) as u8).collect();
            assert_eq!(net.send_batch(&buf, seg, 10).unwrap(), Sent::All);
            let mut got = [0u8; 2000];
            for i in 0..10u8 {
                let (n, _) = r.recv_from(&mut got).unwrap();
                assert_eq!(n, seg, "gso {gso}");
                assert!(got[..n].iter().all(|&b| b == i), "gso {gso}, datagram {i}");
            }
            // GSO stays on unless the kernel refused it, and then the user hears of it.
            assert_eq!(net.take_notice().is_some(), gso && !net.batcher.gso);
            assert!(gso || !net.batcher.gso);
        }
    }

    #[test]
    fn control_datagrams_come_in_and_acks_go_out() {
        let mut net = Net::open(&loopback(9, true)).unwrap();
        let port = net.control().local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(net.recv(&mut buf), None);
        // Read a while after it arrived: the kernel's timestamp says when it did. The first
        // socket to ask for timestamps switches them on through deferred work, and a
        // datagram that arrives before it ran is stamped only when read (1 run in 3 of the
        // workspace's tests): a few tries.
        let mut waited = Duration::ZERO;
        let mut from = None;
        for _ in 0..5 {
            client
                .send_to(b"status", (Ipv4Addr::LOCALHOST, port))
                .unwrap();
            assert!(crate::sys::wait_readable(net.control(), Duration::from_secs(5)).unwrap());
            std::thread::sleep(Duration::from_millis(50));
            let read_at = std::time::SystemTime::now();
            let Received {
                len: n,
                from: f,
                arrived,
            } = net.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"status");
            from = Some(f);
            waited = read_at
                .duration_since(arrived.expect("a receive timestamp"))
                .unwrap_or(Duration::ZERO);
            if waited >= Duration::from_millis(40) {
                break;
            }
        }
        let from = from.unwrap();
        assert_eq!(SocketAddr::V4(from), client.local_addr().unwrap());
        assert!(
            waited >= Duration::from_millis(40),
            "arrived {waited:?} before the read"
        );
        net.send_ack(b"ack", from);
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ack");
        assert_eq!(net.ack_errors, 0);
    }
}
