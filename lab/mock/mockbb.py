#!/usr/bin/env python3
"""A stand-in for bb-server / bb-client with the same command line, to check the lab's test
scenarios before the real programs exist. NOT broadband's protocol: a plain carousel of
4 KiB chunks, no coding, no rate adaptation. Run as `mockbb.py server ...` / `client ...`
(or through the bb-server / bb-client wrappers beside it).
"""
import argparse, hashlib, os, random, socket, stat, struct, sys, time

HDR = struct.Struct("!4sQQII32s")  # magic, session, size, index, nchunks, sha256
CHUNK = 4096


def rate_bps(s):
    m = {"k": 1e3, "m": 1e6, "g": 1e9}
    s = s.lower()
    return float(s[:-1]) * m[s[-1]] if s[-1] in m else float(s)


def server(argv):
    p = argparse.ArgumentParser(prog="bb-server")
    p.add_argument("address"); p.add_argument("image", nargs="?", default="-")
    p.add_argument("--port", type=int, default=7855); p.add_argument("--control-port", type=int, default=7854)
    p.add_argument("--rate", default="100M"); p.add_argument("--clients", type=int, default=0)
    p.add_argument("--min-clients", type=int, default=0); p.add_argument("--wait", type=float, default=0)
    p.add_argument("--linger", type=float, default=0); p.add_argument("--ttl", type=int, default=1)
    p.add_argument("--interface")
    a = p.parse_args(argv)
    data = sys.stdin.buffer.read() if a.image == "-" else open(a.image, "rb").read()
    sha = hashlib.sha256(data).digest()
    n = (len(data) + CHUNK - 1) // CHUNK
    sess = random.getrandbits(64)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, a.ttl)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("", a.control_port)); c.setblocking(False)
    bps = min(rate_bps(a.rate), 300e6) / 8
    ok, failed = set(), set()
    t0 = time.monotonic(); sent = 0; i = 0; last = 0
    print(f"mock bb-server: {len(data)} bytes, {n} chunks, session {sess:x}", file=sys.stderr)
    while not (a.clients and len(ok) >= a.clients):
        pkt = HDR.pack(b"MOCK", sess, len(data), i, n, sha) + data[i * CHUNK:(i + 1) * CHUNK]
        try:
            s.sendto(pkt, (a.address, a.port)); sent += len(pkt)
        except OSError:
            time.sleep(0.001)
        i = (i + 1) % max(n, 1)
        d = t0 + sent / bps - time.monotonic()
        if d > 0.001:
            time.sleep(d)
        while True:
            try:
                m, src = c.recvfrom(2048)
            except BlockingIOError:
                break
            if len(m) == 17 and m[:4] == b"MOKD" and struct.unpack("!Q", m[4:12])[0] == sess:
                st = m[12]
                (ok if st == 0 else failed).add(src[0])
            # anything else: ignored (garbage)
        if time.monotonic() - last > 1:
            last = time.monotonic()
            print(f"progress: sent {sent} bytes, verified {len(ok)}, failed {len(failed)}", file=sys.stderr)
    for ip in sorted(ok): print(f"  {ip} OK", file=sys.stderr)
    for ip in sorted(failed): print(f"  {ip} FAILED", file=sys.stderr)
    return 1 if failed else 0


def client(argv):
    p = argparse.ArgumentParser(prog="bb-client")
    p.add_argument("server"); p.add_argument("output", nargs="?", default="-")
    p.add_argument("--group"); p.add_argument("--interface")
    p.add_argument("--port", type=int, default=7855); p.add_argument("--control-port", type=int, default=7854)
    p.add_argument("-q", action="store_true"); p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args(argv)
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    r.bind(("", a.port))
    if a.group:
        r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(a.group), socket.inet_aton("0.0.0.0")))
    r.settimeout(a.timeout)
    fd = None; mem = None; have = None; left = 0; sess = None
    while True:
        try:
            m, src = r.recvfrom(65536)
        except socket.timeout:
            print("bb-client: no server heard", file=sys.stderr); return 2
        if src[0] != a.server or len(m) < HDR.size or m[:4] != b"MOCK":
            continue
        magic, s, size, idx, n, sha = HDR.unpack_from(m)
        if sess is None:
            sess = s
            if a.output == "-":
                mem = bytearray(size)
            else:
                fd = os.open(a.output, os.O_WRONLY | os.O_CREAT, 0o644)
                if stat.S_ISBLK(os.fstat(fd).st_mode):
                    cap = os.lseek(fd, 0, os.SEEK_END)
                    if cap < size:
                        print(f"bb-client: target too small: {cap} < {size}", file=sys.stderr)
                        done(a, src[0], sess, 1); return 3
                else:
                    os.ftruncate(fd, size)
            have = bytearray(n); left = n
        if s != sess or idx >= n or have[idx]:
            continue
        payload = m[HDR.size:]
        if mem is not None: mem[idx * CHUNK: idx * CHUNK + len(payload)] = payload
        else: os.pwrite(fd, payload, idx * CHUNK)
        have[idx] = 1; left -= 1
        if left == 0:
            break
    if mem is not None:
        out = bytes(mem); sys.stdout.buffer.write(out); sys.stdout.flush()
    else:
        os.fsync(fd); os.close(fd)
        out = open(a.output, "rb").read(size)
    good = hashlib.sha256(out).digest() == sha
    done(a, src[0], sess, 0 if good else 1)
    print(f"bb-client: {size} bytes, {'verified' if good else 'VERIFY FAILED'}", file=sys.stderr)
    return 0 if good else 4


def done(a, srv, sess, st):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5):
        c.sendto(b"MOKD" + struct.pack("!QB", sess, st) + b"\0\0\0\0", (srv, a.control_port))
        time.sleep(0.05)


if __name__ == "__main__":
    role = sys.argv[1]
    sys.exit(server(sys.argv[2:]) if role == "server" else client(sys.argv[2:]))
