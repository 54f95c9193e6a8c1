#!/usr/bin/env python3
"""Throw garbage datagrams at broadband's ports during a transfer.

  garbage.py [--data ADDR:PORT]... [--control ADDR:PORT]... [--sniff PORT] [--group G]
             [--pps N] [--duration S] [--seed N]

Sends, alternately to every --data and --control target, a mix of:
  random     random bytes, random length 0..1500 (including 0, 1, 2, ... bytes)
  truncated  a sniffed real packet cut at a random length
  magic      a sniffed packet's first 4/8/16/24 bytes (magic, version, session...) then random
  flipped    a sniffed packet with 1-8 random bits flipped
  fields     a sniffed packet with random bytes overwritten in its first 64 bytes
  foreign    a sniffed packet with bytes 4..24 (version/session region) randomised
  huge-len   a sniffed header followed by 0xff bytes (every length/offset field maxed)
  replay     a sniffed packet unchanged, sent to the control port (wrong direction)
Real packets are sniffed by binding the data port (--sniff) in this namespace: this node is
just another machine on the LAN and hears the broadcast/multicast. Before the first packet
is heard only random garbage is sent. Prints counts on exit (SIGTERM/SIGINT or --duration).

--spoof: every other datagram is sent through a raw socket with a forged source, so that it
gets past a receiver's source-address filter and reaches its parser: to --data targets from
the sniffed server address and port, to --control targets from --spoof-client ADDR:PORT
(a real client's address). Needs root (CAP_NET_RAW).
"""
import argparse
import random
import signal
import socket
import struct
import sys
import time


def addr(s):
    h, p = s.rsplit(":", 1)
    return (h, int(p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=addr, action="append", default=[])
    ap.add_argument("--control", type=addr, action="append", default=[])
    ap.add_argument("--sniff", type=int, default=0)
    ap.add_argument("--group")
    ap.add_argument("--pps", type=float, default=2000)
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--spoof", action="store_true")
    ap.add_argument("--spoof-client", type=addr, default=None)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    out.setblocking(False)

    raw = None
    if a.spoof:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        raw.setblocking(False)
    server_src = [None]

    def spoofed(payload, src, dst):
        ulen = 8 + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, rng.randrange(1, 65536), 0, 64, 17, 0,
                         socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
        udp = struct.pack("!HHHH", src[1], dst[1], ulen, 0)  # checksum 0: none (IPv4)
        return ip + udp + payload

    sniff = None
    if a.sniff:
        sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sniff.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sniff.bind(("", a.sniff))
        if a.group:
            mreq = struct.pack("4s4s", socket.inet_aton(a.group), socket.inet_aton("0.0.0.0"))
            sniff.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sniff.setblocking(False)

    captured = []  # ring of real packets
    counts = {}
    sniffed = 0
    errors = 0
    stop = [False]

    def on_sig(*_):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_sig)
    signal.signal(signal.SIGINT, on_sig)

    def rnd(n):
        return rng.randbytes(n)

    def make(kind, pkt):
        if kind == "random":
            n = rng.choice([0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64]) if rng.random() < 0.3 \
                else rng.randrange(0, 1501)
            return rnd(n)
        if kind == "truncated":
            return pkt[: rng.randrange(0, len(pkt))] if pkt else b""
        if kind == "magic":
            h = pkt[: rng.choice([4, 8, 16, 24])]
            return h + rnd(rng.randrange(0, 1400))
        if kind == "flipped":
            b = bytearray(pkt)
            for _ in range(rng.randrange(1, 9)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
            return bytes(b)
        if kind == "fields":
            b = bytearray(pkt)
            for _ in range(rng.randrange(1, 6)):
                i = rng.randrange(min(64, len(b)))
                b[i] = rng.randrange(256)
            return bytes(b)
        if kind == "foreign":
            b = bytearray(pkt)
            b[4:24] = rnd(min(20, max(0, len(b) - 4)))
            return bytes(b)
        if kind == "huge-len":
            return pkt[: rng.choice([4, 8, 12, 16])] + b"\xff" * rng.randrange(4, 64)
        if kind == "replay":
            return pkt
        raise ValueError(kind)

    kinds = ["random", "truncated", "magic", "flipped", "fields", "foreign", "huge-len", "replay"]
    targets = [("data", t) for t in a.data] + [("control", t) for t in a.control]
    if not targets:
        print("garbage: no targets", file=sys.stderr)
        return 2
    out.bind(("", 0))
    my_port = out.getsockname()[1]
    interval = 1.0 / a.pps
    t0 = time.monotonic()
    i = 0
    while not stop[0] and time.monotonic() - t0 < a.duration:
        if sniff:
            for _ in range(64):
                try:
                    d, _src = sniff.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if _src[1] == my_port:
                    continue  # our own broadcast garbage looping back
                sniffed += 1
                server_src[0] = _src
                if len(d) >= 8:
                    if len(captured) < 256:
                        captured.append(d)
                    else:
                        captured[rng.randrange(256)] = d
        role, target = targets[i % len(targets)]
        if captured:
            kind = rng.choice(kinds)
            if role == "data" and kind == "replay":
                kind = "flipped"
            pkt = rng.choice(captured)
        else:
            kind, pkt = "random", b""
        src = None
        if raw and i % 2 == 1:
            src = server_src[0] if role == "data" else a.spoof_client
        try:
            payload = make(kind, pkt)
            if src and len(payload) <= 1400:
                raw.sendto(spoofed(payload, src, target), (target[0], 0))
                kind = "spoofed-" + kind
            else:
                out.sendto(payload, target)
            counts[kind] = counts.get(kind, 0) + 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            errors += 1
        i += 1
        nxt = t0 + i * interval
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
    total = sum(counts.values())
    detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"garbage: sent={total} sniffed={sniffed} errors={errors} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
