#!/usr/bin/env python3
"""UDP probe for the lab harness: sequence-numbered sender and receiver.

  probe.py send ADDR PORT COUNT [--pps N] [--size B] [--ttl T] [--gso N]
  probe.py recv PORT [--group G] [--idle S] [--wait S] [--count N] [--ready FILE]

recv prints one line: "received=R unique=U first=F last=L missing=M" where missing counts the
sequence numbers in [0, count) (or [first, last]) that never arrived. It stops when --count
distinct numbers arrived, after --idle seconds without a packet once the first arrived, or
after --wait seconds without any packet at all.
"""
import argparse
import socket
import struct
import sys
import time

MAGIC = b"LABP"


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, a.ttl)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    pad = b"\0" * max(0, a.size - 12)
    interval = 1.0 / a.pps if a.pps > 0 else 0.0
    if a.gso > 1:
        # UDP GSO: one sendto carries a.gso datagrams of a.size bytes (like bb-server)
        s.setsockopt(17, 103, a.size)  # SOL_UDP, UDP_SEGMENT
    step = max(1, a.gso)
    t0 = time.monotonic()
    for i in range(0, a.count, step):
        if interval:
            target = t0 + i * interval
            d = target - time.monotonic()
            if d > 0.002:
                time.sleep(d)
        buf = b"".join(MAGIC + struct.pack("!Q", j) + pad for j in range(i, min(i + step, a.count)))
        while True:
            try:
                s.sendto(buf, (a.addr, a.port))
                break
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as e:
                if e.errno == 105:  # ENOBUFS
                    time.sleep(0.001)
                    continue
                raise
    dt = time.monotonic() - t0
    print(f"sent={a.count} secs={dt:.2f}")


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("", a.port))
    if a.group:
        mreq = struct.pack("4s4s", socket.inet_aton(a.group), socket.inet_aton("0.0.0.0"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    if a.ready:
        open(a.ready, "w").write("ready\n")
    seen = set()
    received = 0
    s.settimeout(a.wait)
    while True:
        try:
            data, _ = s.recvfrom(65536)
        except socket.timeout:
            break
        if len(data) < 12 or data[:4] != MAGIC:
            continue
        received += 1
        seen.add(struct.unpack("!Q", data[4:12])[0])
        s.settimeout(a.idle)
        if a.count and len(seen) >= a.count:
            break
    if seen:
        first, last = min(seen), max(seen)
    else:
        first, last = -1, -1
    span = a.count if a.count else (last - first + 1 if seen else 0)
    lo = 0 if a.count else first
    missing = sum(1 for i in range(lo, lo + span) if i not in seen)
    print(f"received={received} unique={len(seen)} first={first} last={last} missing={missing}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("send")
    ps.add_argument("addr")
    ps.add_argument("port", type=int)
    ps.add_argument("count", type=int)
    ps.add_argument("--pps", type=float, default=5000)
    ps.add_argument("--size", type=int, default=1000)
    ps.add_argument("--ttl", type=int, default=1)
    ps.add_argument("--gso", type=int, default=0, help="datagrams per sendto (UDP_SEGMENT)")
    pr = sub.add_parser("recv")
    pr.add_argument("port", type=int)
    pr.add_argument("--group")
    pr.add_argument("--idle", type=float, default=1.0)
    pr.add_argument("--wait", type=float, default=10.0)
    pr.add_argument("--count", type=int, default=0)
    pr.add_argument("--ready")
    a = p.parse_args()
    (send if a.cmd == "send" else recv)(a)


if __name__ == "__main__":
    sys.exit(main())
