//! A small DHCPv4 client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK, over a UDP socket on port
//! 68 bound to the interface (SO_BINDTODEVICE) with SO_BROADCAST, the broadcast flag set so
//! that replies come to 255.255.255.255 while we have no address. Fixed buffers, bounded retries.
//! The packets themselves are built and parsed in [`super::dhcp_packet`].

use super::dhcp_packet::{
    ACK, DISCOVER, Lease, MAX_REPLY, NAK, OFFER, PKT_LEN, REQUEST, build, parse,
};
use super::sys::Line;
use super::syscalls;
use crate::os::{self, Errno, Fd, now_ms};

/// A UDP socket on 0.0.0.0:68 bound to one interface, allowed to broadcast.
fn open_socket(ifname: &[u8]) -> Result<Fd, Errno> {
    let s = os::udp_socket()?;
    let n = ifname.iter().position(|&c| c == 0).unwrap_or(ifname.len());
    let _ = os::set_reuseaddr(s.0);
    syscalls::set_broadcast(s.0)?;
    syscalls::bind_to_device(s.0, &ifname[..n])?;
    os::bind(s.0, [0; 4], 68)?;
    Ok(s)
}

fn send_bcast(s: &Fd, p: &[u8]) -> Result<(), Errno> {
    os::send_to(s.0, p, &os::sockaddr([255; 4], 67))
}

/// Waits for a reply of type `want` (or NAK) until `deadline_ms`.
fn recv_reply(
    s: &Fd,
    buf: &mut [u8; MAX_REPLY],
    xid: u32,
    mac: [u8; 6],
    want: u8,
    deadline_ms: u64,
) -> Option<Lease> {
    loop {
        let now = now_ms();
        if now >= deadline_ms {
            return None;
        }
        let wait = (deadline_ms - now).min(i32::MAX as u64) as i32;
        if os::poll_readable(s.0, wait) != Ok(true) {
            continue;
        }
        let n = match syscalls::recv(s.0, buf) {
            Ok(n) if n > 0 => n,
            _ => continue,
        };
        if let Some(l) = parse(&buf[..n], xid, mac)
            && (l.msg_type == want || l.msg_type == NAK)
        {
            return Some(l);
        }
    }
}

/// Gets a lease on `ifname` (already up). Retries DISCOVER with growing timeouts
/// (1, 2, 4, 4, ... s) until `timeout_ms` has passed. Returns the ACKed lease.
pub fn obtain(ifname: &[u8], mac: [u8; 6], timeout_ms: u64) -> Result<Lease, &'static str> {
    let sock = open_socket(ifname).map_err(|_| "cannot open the DHCP socket (UDP port 68)")?;
    let start = now_ms();
    let deadline = start + timeout_ms;
    // A transaction id from the clock and the MAC: distinct per machine, no RNG needed.
    let mut xid = (now_ms() as u32).wrapping_mul(2654435761)
        ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let mut pkt = [0u8; PKT_LEN];
    let mut rbuf = [0u8; MAX_REPLY];
    let mut wait = 1000u64;
    let mut attempt = 0u32;
    while now_ms() < deadline {
        attempt += 1;
        xid = xid.wrapping_add(attempt);
        let secs = ((now_ms() - start) / 1000).min(u16::MAX as u64) as u16;
        let n = build(&mut pkt, DISCOVER, xid, secs, mac, None, None);
        if let Err(e) = send_bcast(&sock, &pkt[..n]) {
            Line::new().s("dhcp: send failed").errno(e).emit();
        }
        let step_deadline = (now_ms() + wait).min(deadline);
        wait = (wait * 2).min(4000);
        let offer = match recv_reply(&sock, &mut rbuf, xid, mac, OFFER, step_deadline) {
            Some(o) if o.msg_type == OFFER && o.yiaddr != [0; 4] => o,
            _ => continue,
        };
        let sid = offer.server_id.unwrap_or(offer.siaddr);
        // REQUEST the offered address, up to 3 times.
        for _ in 0..3 {
            let secs = ((now_ms() - start) / 1000).min(u16::MAX as u64) as u16;
            let n = build(
                &mut pkt,
                REQUEST,
                xid,
                secs,
                mac,
                Some(offer.yiaddr),
                Some(sid),
            );
            let _ = send_bcast(&sock, &pkt[..n]);
            let d = (now_ms() + 2000).min(deadline);
            match recv_reply(&sock, &mut rbuf, xid, mac, ACK, d) {
                Some(a) if a.msg_type == ACK && a.yiaddr != [0; 4] => return Ok(a),
                Some(_) => break, // NAK: start over with a DISCOVER
                None => {
                    if now_ms() >= deadline {
                        break;
                    }
                }
            }
        }
    }
    Err("no DHCP lease (is a DHCP server on this segment? or pass ip=CLIENT::GATEWAY:NETMASK)")
}
