#!/usr/bin/env python3
"""fusefail.py: a FUSE file system of one file, backed by a real file, that fails on cue.

The kernel here has no scsi_debug, nbd or device-mapper, so this is how the lab makes a
source that returns read errors and a target that goes away mid-write:

  fusefail.py [knobs] BACKING MOUNTPOINT      (stays in the foreground; unmount to end it)

MOUNTPOINT/disk then reads and writes BACKING (a file: truncating or writing past its end
resizes it), until:
  --eio-from OFFSET      reads that touch a byte at or past OFFSET fail with EIO ...
  --eio-after-reads N    ... once that byte was read N times (default 0: every read fails;
                         2: a reader's first two passes succeed, any later read of the same
                         bytes fails, like a sector that goes bad). Counted per 4 KiB page.
  --write-fail-after BYTES  writes fail once BYTES bytes were written (with --write-errno,
                         EIO by default; ENODEV is what a removed disk's driver returns)
  --vanish-after BYTES   the daemon kills itself (SIGKILL) in the write that reaches BYTES
                         bytes written: the file system is gone, every later I/O on a file
                         open on it fails with ENOTCONN, and a loop device over the file
                         returns EIO, like an unplugged disk
  --ready FILE           FILE is created once the file system answers (for scripts)

Every failure is logged on stderr with its offset. Reads and writes go straight to the
daemon (direct_io: the page cache never hides a read or delays a write). Needs root (or
fusermount), /dev/fuse and fusepy (Debian: python3-fusepy, module fusepy; PyPI: fusepy,
module fuse).
"""

import argparse
import errno
import os
import signal
import stat
import sys
import threading

try:
    import fusepy as fuse  # Debian's python3-fusepy
except ImportError:
    import fuse  # PyPI's fusepy

NAME = "/disk"
PAGE = 4096


def log(msg):
    print(f"fusefail: {msg}", file=sys.stderr, flush=True)


class FailingFile(fuse.Operations):
    def __init__(self, a):
        self.a = a
        self.fd = os.open(a.backing, os.O_RDWR)
        self.size = os.fstat(self.fd).st_size
        self.mutex = threading.Lock()
        self.page_reads = {}  # page index -> times read, at or past --eio-from
        self.written = 0
        self.read_total = 0

    def init(self, path):
        if self.a.ready:
            open(self.a.ready, "w").close()

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path != NAME:
            raise fuse.FuseOSError(errno.ENOENT)
        st = os.fstat(self.fd)
        return {
            "st_mode": stat.S_IFREG | 0o644,
            "st_nlink": 1,
            "st_size": self.size,
            "st_mtime": st.st_mtime,
            "st_ctime": st.st_ctime,
            "st_atime": st.st_atime,
        }

    def readdir(self, path, fh):
        return [".", "..", NAME[1:]]

    def open(self, path, flags):
        if path != NAME:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def destroy(self, path):
        log(f"unmounted: {self.read_total} bytes read, {self.written} written")

    def truncate(self, path, length, fh=None):
        os.ftruncate(self.fd, length)
        self.size = length

    def read(self, path, size, offset, fh):
        size = max(0, min(size, self.size - offset))
        end = offset + size
        a = self.a
        if a.eio_from is not None and end > a.eio_from and size > 0:
            # The pages whose first byte this read holds: each pass over the file counts
            # each page once, however the kernel splits it into reads.
            pages = range(-(-max(offset, a.eio_from) // PAGE), -(-end // PAGE))
            with self.mutex:
                worn = max((self.page_reads.get(p, 0) for p in pages), default=0)
                if worn >= a.eio_after_reads:
                    log(f"read of {size} bytes at byte {offset}: EIO (--eio-from {a.eio_from}, "
                        f"these bytes were read {worn} times before)")
                    raise fuse.FuseOSError(errno.EIO)
                for p in pages:
                    self.page_reads[p] = self.page_reads.get(p, 0) + 1
        self.read_total += size
        return os.pread(self.fd, size, offset)

    def write(self, path, data, offset, fh):
        a = self.a
        with self.mutex:
            if a.write_fail_after is not None and self.written + len(data) > a.write_fail_after:
                log(f"write of {len(data)} bytes at byte {offset}: {a.write_errno} "
                    f"({self.written} bytes written)")
                raise fuse.FuseOSError(getattr(errno, a.write_errno))
            if a.vanish_after is not None and self.written + len(data) >= a.vanish_after:
                log(f"write of {len(data)} bytes at byte {offset}: vanishing (SIGKILL) "
                    f"after {self.written} bytes written")
                os.kill(os.getpid(), signal.SIGKILL)
            self.written += len(data)
        n = os.pwrite(self.fd, data, offset)
        self.size = max(self.size, offset + n)
        return n

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(self.fd)
        return 0

    def release(self, path, fh):
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("backing")
    p.add_argument("mountpoint")
    p.add_argument("--eio-from", type=int)
    p.add_argument("--eio-after-reads", type=int, default=0)
    p.add_argument("--write-fail-after", type=int)
    p.add_argument("--write-errno", default="EIO", choices=["EIO", "ENODEV", "ENOSPC", "ENXIO"])
    p.add_argument("--vanish-after", type=int)
    p.add_argument("--ready")
    a = p.parse_args()
    log(f"{a.mountpoint}{NAME} over {a.backing}")
    fuse.FUSE(FailingFile(a), a.mountpoint, foreground=True, nothreads=True,
              direct_io=True, big_writes=True, allow_other=True, fsname="fusefail")


if __name__ == "__main__":
    main()
