#!/usr/bin/env python3
"""relay.py: a userspace UDP impairment relay for the lab (netem is not in this kernel).

Receives datagrams on a port and forwards a copy of each to every --to address, each copy
impaired on its own: lost, duplicated, delayed (with jitter), reordered (held back longer
than the datagrams after it) or corrupted (1 to 3 bytes anywhere in the datagram changed,
so the receiver's CRC must catch it). Percentages are per datagram and per destination.

usage: relay.py [options] --to ADDR:PORT [--to ADDR:PORT ...]

  --listen PORT        port to receive on (all addresses) [7855]
  --to ADDR:PORT       a destination (repeatable)
  --loss PCT           drop [0]
  --dup PCT            send twice (the copy with its own delay) [0]
  --reorder PCT        hold back by --reorder-delay more than the rest [0]
  --reorder-delay MS   [5]
  --delay MS           base one-way delay [0]
  --jitter MS          uniform extra delay in [0, MS) [0]
  --corrupt PCT        change 1..3 bytes [0]
  --seed N             random seed [1]
  --idle SECONDS       exit this long after the last datagram (once one came) [10]
  --max-time SECONDS   exit after this long in any case [600]
  --stats FILE         write the counters as key=value lines at exit

Counters go to stderr at exit (also on SIGTERM/SIGINT). Exit status 0, or 2 for bad
arguments, 1 if nothing was ever received.
"""
import argparse
import heapq
import random
import select
import signal
import socket
import sys
import time


def pct(v):
    f = float(v.rstrip("%"))
    if not 0 <= f <= 100:
        raise argparse.ArgumentTypeError(f"{v}: a percentage 0..100")
    return f / 100.0


def dest(v):
    host, _, port = v.rpartition(":")
    try:
        socket.inet_aton(host)
        p = int(port)
        if not 0 < p < 65536:
            raise ValueError
    except (OSError, ValueError):
        raise argparse.ArgumentTypeError(f"{v}: expected IPv4ADDR:PORT")
    return (host, p)


def main():
    ap = argparse.ArgumentParser(description="UDP impairment relay for the lab")
    ap.add_argument("--listen", type=int, default=7855)
    ap.add_argument("--to", type=dest, action="append", required=True)
    ap.add_argument("--loss", type=pct, default=0.0)
    ap.add_argument("--dup", type=pct, default=0.0)
    ap.add_argument("--reorder", type=pct, default=0.0)
    ap.add_argument("--reorder-delay", type=float, default=5.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--jitter", type=float, default=0.0)
    ap.add_argument("--corrupt", type=pct, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--max-time", type=float, default=600.0)
    ap.add_argument("--stats")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("0.0.0.0", a.listen))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)

    c = dict(received=0, forwarded=0, lost=0, duplicated=0, reordered=0, corrupted=0,
             send_errors=0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    heap = []  # (due, seq, addr, bytes)
    seq = 0
    start = time.monotonic()
    last_rx = None

    def schedule(now, data, addr):
        nonlocal seq
        d = a.delay + (rng.random() * a.jitter if a.jitter > 0 else 0.0)
        if rng.random() < a.reorder:
            d += a.reorder_delay
            c["reordered"] += 1
        if rng.random() < a.corrupt:
            b = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(b))
                b[i] ^= rng.randint(1, 255)
            data = bytes(b)
            c["corrupted"] += 1
        seq += 1
        heapq.heappush(heap, (now + d / 1000.0, seq, addr, data))

    while not stop:
        now = time.monotonic()
        if now - start >= a.max_time:
            break
        if last_rx is not None and now - last_rx >= a.idle and not heap:
            break
        while heap and heap[0][0] <= now:
            _, _, addr, data = heapq.heappop(heap)
            try:
                tx.sendto(data, addr)
                c["forwarded"] += 1
            except OSError:
                c["send_errors"] += 1
        wait = 0.05
        if heap:
            wait = max(0.0, min(wait, heap[0][0] - now))
        try:
            r, _, _ = select.select([rx], [], [], wait)
        except InterruptedError:
            continue
        if not r:
            continue
        for _ in range(256):
            try:
                data, _ = rx.recvfrom(65536)
            except BlockingIOError:
                break
            now = time.monotonic()
            last_rx = now
            c["received"] += 1
            for addr in a.to:
                if rng.random() < a.loss:
                    c["lost"] += 1
                    continue
                schedule(now, data, addr)
                if rng.random() < a.dup:
                    c["duplicated"] += 1
                    schedule(now, data, addr)

    line = " ".join(f"{k}={v}" for k, v in c.items())
    print(f"relay: {line}", file=sys.stderr)
    if a.stats:
        with open(a.stats, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in c.items()))
    return 0 if c["received"] else 1


if __name__ == "__main__":
    sys.exit(main())
