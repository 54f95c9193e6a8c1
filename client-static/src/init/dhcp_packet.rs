//! DHCPv4 packets (RFC 2131): building our DISCOVER and REQUEST, parsing a server's reply.
//! Pure functions on fixed buffers (no IO), unit-tested on the host and fuzzed (fuzz/): a
//! reply is untrusted bytes from anyone on the segment.
pub const OP_REQUEST: u8 = 1;
pub const OP_REPLY: u8 = 2;
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Size of a built request (a BOOTP minimum of 300 bytes, which old servers want).
pub const PKT_LEN: usize = 300;
/// Largest reply we accept (and advertise as option 57).
pub const MAX_REPLY: usize = 1500;

/// What a server offered or acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub msg_type: u8,
    pub yiaddr: [u8; 4],
    pub server_id: Option<[u8; 4]>,
    pub netmask: Option<[u8; 4]>,
    pub router: Option<[u8; 4]>,
    pub broadcast: Option<[u8; 4]>,
    pub lease_secs: Option<u32>,
    /// `siaddr`: the next server (TFTP), a fallback for bb.server in tooling.
    pub siaddr: [u8; 4],
}

/// Builds a DISCOVER (`requested`/`server_id` None) or a REQUEST (both Some) into `buf`;
/// returns its length.
pub fn build(
    buf: &mut [u8; PKT_LEN],
    msg_type: u8,
    xid: u32,
    secs: u16,
    mac: [u8; 6],
    requested: Option<[u8; 4]>,
    server_id: Option<[u8; 4]>,
) -> usize {
    buf.fill(0);
    buf[0] = OP_REQUEST;
    buf[1] = 1; // htype ethernet
    buf[2] = 6; // hlen
    buf[4..8].copy_from_slice(&xid.to_be_bytes());
    buf[8..10].copy_from_slice(&secs.to_be_bytes());
    buf[10..12].copy_from_slice(&0x8000u16.to_be_bytes()); // broadcast flag
    buf[28..34].copy_from_slice(&mac);
    buf[236..240].copy_from_slice(&COOKIE);
    let mut i = 240;
    let mut opt = |code: u8, data: &[u8], i: &mut usize| {
        buf[*i] = code;
        buf[*i + 1] = data.len() as u8;
        buf[*i + 2..*i + 2 + data.len()].copy_from_slice(data);
        *i += 2 + data.len();
    };
    opt(53, &[msg_type], &mut i);
    let mut cid = [0u8; 7];
    cid[0] = 1;
    cid[1..].copy_from_slice(&mac);
    opt(61, &cid, &mut i);
    opt(57, &(MAX_REPLY as u16).to_be_bytes(), &mut i);
    if let Some(r) = requested {
        opt(50, &r, &mut i);
    }
    if let Some(s) = server_id {
        opt(54, &s, &mut i);
    }
    // subnet mask, router, broadcast address, lease time, server id
    opt(55, &[1, 3, 28, 51, 54], &mut i);
    opt(60, b"broadband", &mut i);
    buf[i] = 255;
    PKT_LEN
}

/// Parses a server reply; None unless it is a well-formed BOOTREPLY for our `xid` and `mac`
/// with a DHCP message type.
pub fn parse(p: &[u8], xid: u32, mac: [u8; 6]) -> Option<Lease> {
    if p.len() < 240 || p[0] != OP_REPLY || p[1] != 1 || p[2] != 6 {
        return None;
    }
    if p[4..8] != xid.to_be_bytes() || p[28..34] != mac || p[236..240] != COOKIE {
        return None;
    }
    let mut l = Lease {
        msg_type: 0,
        yiaddr: [p[16], p[17], p[18], p[19]],
        server_id: None,
        netmask: None,
        router: None,
        broadcast: None,
        lease_secs: None,
        siaddr: [p[20], p[21], p[22], p[23]],
    };
    let mut i = 240;
    while i < p.len() {
        let code = p[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        if i + 1 >= p.len() {
            return None;
        }
        let len = p[i + 1] as usize;
        let d = p.get(i + 2..i + 2 + len)?;
        let ip4 = || {
            if len >= 4 {
                Some([d[0], d[1], d[2], d[3]])
            } else {
                None
            }
        };
        match code {
            53 if len == 1 => l.msg_type = d[0],
            54 => l.server_id = ip4(),
            1 => l.netmask = ip4(),
            3 => l.router = ip4(),
            28 => l.broadcast = ip4(),
            51 if len == 4 => l.lease_secs = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]])),
            _ => {}
        }
        i += 2 + len;
    }
    if l.msg_type == 0 {
        return None;
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x99, 1, 2];

    fn reply(msg: u8, xid: u32, mac: [u8; 6], opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&[10, 99, 0, 150]);
        p[20..24].copy_from_slice(&[10, 99, 0, 1]);
        p[28..34].copy_from_slice(&mac);
        p[236..240].copy_from_slice(&COOKIE);
        p.extend_from_slice(&[53, 1, msg]);
        p.extend_from_slice(opts);
        p.push(255);
        p
    }

    #[test]
    fn discover_layout() {
        let mut b = [0u8; PKT_LEN];
        let n = build(&mut b, DISCOVER, 0x01020304, 3, MAC, None, None);
        assert_eq!(n, 300);
        assert_eq!(&b[..4], &[1, 1, 6, 0]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[8..10], &[0, 3]);
        assert_eq!(&b[10..12], &[0x80, 0]);
        assert_eq!(&b[28..34], &MAC);
        assert_eq!(&b[236..240], &COOKIE);
        assert_eq!(&b[240..243], &[53, 1, DISCOVER]);
        assert_eq!(&b[243..252], &[61, 7, 1, 0x52, 0x54, 0, 0x99, 1, 2]);
        // no requested address / server id in a DISCOVER
        let opts = &b[240..];
        assert!(!opts.windows(2).any(|w| w == [50, 4]));
        assert!(b[240..].contains(&255));
    }

    #[test]
    fn request_has_address_and_server() {
        let mut b = [0u8; PKT_LEN];
        build(
            &mut b,
            REQUEST,
            7,
            0,
            MAC,
            Some([10, 99, 0, 150]),
            Some([10, 99, 0, 1]),
        );
        assert_eq!(&b[240..243], &[53, 1, REQUEST]);
        let o = &b[240..];
        assert!(o.windows(6).any(|w| w == [50, 4, 10, 99, 0, 150]));
        assert!(o.windows(6).any(|w| w == [54, 4, 10, 99, 0, 1]));
    }

    #[test]
    fn parse_offer_and_ack() {
        let p = reply(
            OFFER,
            9,
            MAC,
            &[
                54, 4, 10, 99, 0, 1, 1, 4, 255, 255, 255, 0, 3, 4, 10, 99, 0, 254, 0, 0, 51, 4, 0,
                0, 14, 16, 28, 4, 10, 99, 0, 255,
            ],
        );
        let l = parse(&p, 9, MAC).unwrap();
        assert_eq!(l.msg_type, OFFER);
        assert_eq!(l.yiaddr, [10, 99, 0, 150]);
        assert_eq!(l.server_id, Some([10, 99, 0, 1]));
        assert_eq!(l.netmask, Some([255, 255, 255, 0]));
        assert_eq!(l.router, Some([10, 99, 0, 254]));
        assert_eq!(l.broadcast, Some([10, 99, 0, 255]));
        assert_eq!(l.lease_secs, Some(3600));
        assert_eq!(l.siaddr, [10, 99, 0, 1]);
        let a = reply(ACK, 9, MAC, &[]);
        assert_eq!(parse(&a, 9, MAC).unwrap().msg_type, ACK);
    }

    #[test]
    fn parse_rejects_foreign_and_malformed() {
        let p = reply(OFFER, 9, MAC, &[]);
        assert!(parse(&p, 10, MAC).is_none(), "other xid");
        assert!(parse(&p, 9, [1, 2, 3, 4, 5, 6]).is_none(), "other mac");
        assert!(parse(&p[..200], 9, MAC).is_none(), "short");
        let mut q = p.clone();
        q[0] = 1;
        assert!(parse(&q, 9, MAC).is_none(), "a request, not a reply");
        let mut q = p.clone();
        q[236] = 0;
        assert!(parse(&q, 9, MAC).is_none(), "no cookie");
        // option running past the end
        let mut q = p.clone();
        q.pop();
        q.extend_from_slice(&[3, 40, 1, 2]);
        assert!(parse(&q, 9, MAC).is_none());
        // no message type: plain BOOTP, not for us
        let mut q = p.clone();
        q[240] = 0;
        q[241] = 0;
        q[242] = 0;
        assert!(parse(&q, 9, MAC).is_none());
        // short option values are ignored, not trusted
        let q = reply(OFFER, 9, MAC, &[1, 2, 255, 255]);
        assert_eq!(parse(&q, 9, MAC).unwrap().netmask, None);
    }
}
