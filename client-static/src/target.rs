//! The target: where the image goes (a file, a block device or a stream), opened and
//! checked before any write, then written at offsets or in order, zero ranges made zero as
//! cheaply as the kind of target allows, and flushed.

use crate::args::Output;
use crate::disks;
use crate::fmt::{Buf, Lossy};
use crate::mounts;
use crate::os::{self, CPath, Errno, Fd, Kind};
use crate::run::{EXIT_TARGET, EXIT_USAGE, Finish, say};
use core::fmt::Write;

/// Zeros written where the target cannot make a range zero otherwise (streams, and block
/// devices without BLKZEROOUT).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// BLKZEROOUT ranges are aligned to this (a multiple of every logical block size up to the
/// page size); the unaligned head and tail are written as zeros.
const ZERO_OUT_ALIGN: u64 = 4096;

/// How a target at offsets makes a zero range zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zeroing {
    /// A regular file created empty: the range stays a hole, nothing to do.
    Hole,
    /// A block device: BLKZEROOUT, because its old contents must not survive.
    ZeroOut,
    /// A block device without BLKZEROOUT: zeros are written.
    WriteZeros,
    /// A block device the operator said reads as zeros already (--assume-zeroed).
    AssumeZeroed,
}

/// Where the image goes.
pub enum Sink {
    /// Written at offsets: a regular file (length set at the end) or a block device (size
    /// checked before any write).
    Seek {
        fd: Fd,
        block_dev_size: Option<u64>,
        zeroing: Zeroing,
    },
    /// Written strictly in order: stdout, a FIFO or a character device.
    Stream { fd: Fd, pos: u64 },
    /// `--dev auto` / `bb.dev=auto` before the image size is known: nothing is open yet and
    /// nothing may be written (the receiver writes only after binding, when it is chosen).
    Pending,
}

impl Sink {
    pub fn in_order(&self) -> bool {
        matches!(self, Sink::Stream { .. })
    }

    /// Writes `data` at byte `offset` of the image (a stream takes only the next bytes).
    pub fn write(&mut self, data: &[u8], offset: u64) -> Result<(), Errno> {
        match self {
            Sink::Seek { fd, .. } => os::pwrite_all(fd.0, data, offset),
            Sink::Pending => Err(libc::ENODEV),
            Sink::Stream { fd, pos } => {
                if *pos != offset {
                    return Err(libc::EINVAL);
                }
                let r = os::write_all(fd.0, data);
                *pos += data.len() as u64;
                r
            }
        }
    }

    /// Makes `len` bytes at byte `offset` of the image read as zeros: a hole in a regular
    /// file, BLKZEROOUT on a block device (nothing with --assume-zeroed), real zeros in order
    /// on a stream.
    pub fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Errno> {
        match self {
            Sink::Seek {
                zeroing: Zeroing::Hole | Zeroing::AssumeZeroed,
                ..
            } => Ok(()),
            Sink::Seek {
                fd,
                zeroing: Zeroing::WriteZeros,
                ..
            } => pwrite_zeros(fd.0, offset, len),
            Sink::Seek {
                fd,
                zeroing: zeroing @ Zeroing::ZeroOut,
                ..
            } => match zero_out(fd.0, offset, len) {
                Err(e) if zero_out_unsupported(e) => {
                    say(format_args!(
                        "bb-client: warning: the target disk does not support BLKZEROOUT ({}): writing zeros for the image's zero ranges instead (slower; --assume-zeroed or bb.assume-zeroed skips this on a blank disk)",
                        os::strerror(e)
                    ));
                    *zeroing = Zeroing::WriteZeros;
                    pwrite_zeros(fd.0, offset, len)
                }
                r => r,
            },
            Sink::Pending => Err(libc::ENODEV),
            Sink::Stream { fd, pos } => {
                if *pos != offset {
                    return Err(libc::EINVAL);
                }
                let mut left = len;
                while left > 0 {
                    let n = left.min(ZEROS.len() as u64);
                    os::write_all(fd.0, &ZEROS[..n as usize])?;
                    *pos += n;
                    left -= n;
                }
                Ok(())
            }
        }
    }

    /// Called once bound to a session, before the first write: a regular file is emptied
    /// (its zero ranges become holes); other targets are written in place.
    pub fn begin(&self) -> Result<(), Errno> {
        match self {
            Sink::Seek {
                fd,
                block_dev_size: None,
                ..
            } => os::ftruncate(fd.0, 0),
            _ => Ok(()),
        }
    }

    /// Makes what was written durable; a regular file gets the image's length first.
    pub fn flush(&self, image_size: u64) -> Result<(), Errno> {
        match self {
            Sink::Seek {
                fd,
                block_dev_size: None,
                ..
            } => os::ftruncate(fd.0, image_size).and_then(|_| os::fdatasync(fd.0)),
            Sink::Seek { fd, .. } => os::fsync(fd.0),
            Sink::Pending => Err(libc::ENODEV),
            // Pipes and character devices may not support syncing at all.
            Sink::Stream { fd, .. } => match os::fdatasync(fd.0) {
                Err(libc::EINVAL) | Err(libc::EROFS) | Err(libc::ENOTSUP) => Ok(()),
                r => r,
            },
        }
    }
}

/// The errors of BLKZEROOUT that mean "this device or kernel cannot", not "this failed".
fn zero_out_unsupported(e: Errno) -> bool {
    matches!(
        e,
        libc::EOPNOTSUPP | libc::ENOTTY | libc::EINVAL | libc::ENOSYS
    )
}

/// BLKZEROOUT over the aligned middle of the range, zeros written over its unaligned ends.
fn zero_out(fd: libc::c_int, offset: u64, len: u64) -> Result<(), Errno> {
    let end = offset + len;
    let first = offset.next_multiple_of(ZERO_OUT_ALIGN).min(end);
    let last = (end / ZERO_OUT_ALIGN * ZERO_OUT_ALIGN).max(first);
    if last > first {
        os::block_zero_out(fd, first, last - first)?;
    }
    pwrite_zeros(fd, offset, first - offset)?;
    pwrite_zeros(fd, last, end - last)
}

fn pwrite_zeros(fd: libc::c_int, offset: u64, len: u64) -> Result<(), Errno> {
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64);
        os::pwrite_all(fd, &ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Opens the target; `assume_zeroed`: a block device already reads as zeros.
pub fn open_target(out: Output<'_>, assume_zeroed: bool) -> Result<Sink, Finish> {
    let p = match out {
        Output::Stdout => {
            if os::isatty(1) {
                return Err(Finish::fail(EXIT_USAGE, |l| {
                    l.str("stdout is a terminal: give an OUTPUT file or device, or redirect stdout (bb-client SERVER > image)");
                }));
            }
            return Ok(Sink::Stream { fd: Fd(1), pos: 0 });
        }
        Output::Path(p) => p,
        Output::Auto => return Ok(Sink::Pending),
        Output::Devices(spec) => {
            return match disks::resolve_list(disks::SYS_BLOCK, spec) {
                Some(dev) => open_target(Output::Path(dev.as_bytes()), assume_zeroed),
                None => Err(Finish::fail(EXIT_TARGET, |l| {
                    let _ = write!(
                        l,
                        "none of the disks {} exists (a /dev/disk/by-id/ name is rebuilt from sysfs only for virtio-, nvme- and wwn- names): check the names with ls /dev /dev/disk/by-id",
                        Lossy(spec)
                    );
                })),
            };
        }
    };
    let Some(path) = CPath::new(p) else {
        return Err(Finish::fail(EXIT_TARGET, |l| {
            l.str("OUTPUT path is too long or contains a NUL byte");
        }));
    };
    let target_err = |what: &str, e: Errno| {
        Finish::fail(EXIT_TARGET, |l| {
            let _ = write!(l, "cannot {what} {}: {}", Lossy(p), os::strerror(e));
        })
    };
    match os::stat(&path) {
        Ok(st) if st.kind == Kind::Block => {
            let canon = path.canonical().unwrap_or(path);
            if let Some(mp) = mounted(&canon, st.rdev) {
                return Err(Finish::fail(EXIT_TARGET, |l| {
                    let _ = write!(
                        l,
                        "target {} is in use: it or one of its partitions is mounted on {} (unmount it, or choose another disk)",
                        Lossy(canon.as_bytes()),
                        Lossy(mp.as_bytes())
                    );
                }));
            }
            // O_EXCL on a block device: the kernel refuses it while mounted or claimed.
            let fd = os::open(&canon, libc::O_WRONLY | libc::O_EXCL, 0)
                .map_err(|e| target_err("open", e))?;
            let size = os::block_size(fd.0).map_err(|e| target_err("get the size of", e))?;
            Ok(Sink::Seek {
                fd,
                block_dev_size: Some(size),
                zeroing: if assume_zeroed {
                    Zeroing::AssumeZeroed
                } else {
                    Zeroing::ZeroOut
                },
            })
        }
        Ok(st) if st.kind == Kind::Char || st.kind == Kind::Fifo => {
            let fd = os::open(&path, libc::O_WRONLY, 0).map_err(|e| target_err("open", e))?;
            Ok(Sink::Stream { fd, pos: 0 })
        }
        Ok(st) if st.kind != Kind::Regular => Err(Finish::fail(EXIT_TARGET, |l| {
            let _ = write!(
                l,
                "{} is not a regular file, a block device or a pipe",
                Lossy(p)
            );
        })),
        _ => {
            // Not truncated yet: a client that never binds to a session (wrong key, another
            // image than --digest, no server) leaves an existing file as it was.
            let fd = os::open(&path, libc::O_WRONLY | libc::O_CREAT, 0o644)
                .map_err(|e| target_err("create", e))?;
            // Truncated empty at the bind (Sink::begin): zero ranges are holes until the
            // length is set.
            Ok(Sink::Seek {
                fd,
                block_dev_size: None,
                zeroing: Zeroing::Hole,
            })
        }
    }
}

/// The mount point (or "[swap]") using `dev` or one of its partitions, if any.
fn mounted(dev: &CPath, rdev: u64) -> Option<Buf<256>> {
    let mut text = [0u8; 65536];
    let same = |src: &[u8]| {
        CPath::new(src)
            .and_then(|c| os::stat(&c).ok())
            .is_some_and(|s| s.kind == Kind::Block && s.rdev == rdev)
    };
    for (file, swaps) in [
        (&b"/proc/self/mounts"[..], false),
        (&b"/proc/swaps"[..], true),
    ] {
        let Ok(n) = os::read_file(file, &mut text) else {
            continue;
        };
        if let Some(mp) = mounts::find_mounted(&text[..n], dev.as_bytes(), swaps, same) {
            let mut out = Buf::<256>::new();
            let mut un = [0u8; 256];
            let k = mounts::unescape(mp, &mut un).unwrap_or(0);
            out.bytes(&un[..k]);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::FromRawFd;
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bb-client-target-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed | 1)
            .collect()
    }

    #[test]
    fn a_regular_file_keeps_zero_ranges_as_holes() {
        let path = tmp("holes.img");
        // A file that held data before: the target is truncated, so nothing old survives.
        std::fs::write(&path, vec![0xa5; 3 << 20]).unwrap();
        let p = path.to_str().unwrap().as_bytes();
        let Ok(mut sink) = open_target(Output::Path(p), false) else {
            panic!("open_target failed");
        };
        // Opening alone keeps the old contents (no session yet); the bind empties it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
        sink.begin().unwrap();
        let (head, tail) = (pattern(64 << 10, 1), pattern(100_000, 2));
        let zeros_at = head.len() as u64;
        let zeros_len = 8 << 20;
        let tail_at = zeros_at + zeros_len;
        let size = tail_at + tail.len() as u64;
        // Out of order, as blocks arrive: the tail first.
        sink.write(&tail, tail_at).unwrap();
        sink.write(&head, 0).unwrap();
        let blocks_with_data = std::fs::metadata(&path).unwrap().blocks();
        sink.write_zeros(zeros_at, zeros_len).unwrap();
        sink.flush(size).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), size);
        assert_eq!(meta.blocks(), blocks_with_data, "the zero range took space");
        assert!(meta.blocks() * 512 < zeros_len);
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[..head.len()], &head[..]);
        assert!(
            back[zeros_at as usize..tail_at as usize]
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(&back[tail_at as usize..], &tail[..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_stream_gets_real_zeros_in_order() {
        let mut fds = [0; 2];
        // SAFETY: test-only; pipe writes two descriptors into the live array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fds[0] is the pipe's read end, owned by the File from here on.
        let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let collect = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        let mut sink = Sink::Stream {
            fd: Fd(fds[1]),
            pos: 0,
        };
        let (a, b) = (pattern(1000, 3), pattern(5000, 4));
        let zeros_len = 200_000 + 7;
        sink.write(&a, 0).unwrap();
        // Only the next bytes of the stream can be written.
        assert_eq!(sink.write_zeros(a.len() as u64 + 1, 10), Err(libc::EINVAL));
        sink.write_zeros(a.len() as u64, zeros_len).unwrap();
        assert_eq!(sink.write(&b, 0), Err(libc::EINVAL));
        sink.write(&b, a.len() as u64 + zeros_len).unwrap();
        drop(sink);
        let all = collect.join().unwrap();
        assert_eq!(all.len(), a.len() + zeros_len as usize + b.len());
        assert_eq!(&all[..a.len()], &a[..]);
        let zeros_end = a.len() + zeros_len as usize;
        assert!(all[a.len()..zeros_end].iter().all(|&x| x == 0));
        assert_eq!(&all[zeros_end..], &b[..]);
    }

    #[test]
    fn zeroing_without_blkzeroout_overwrites_old_contents() {
        // A regular file has no BLKZEROOUT (ENOTTY): the device path falls back to writing
        // zeros, so old bytes never survive in a zero range.
        let path = tmp("fallback.img");
        std::fs::write(&path, vec![0xa5; 1 << 20]).unwrap();
        let p = CPath::new(path.to_str().unwrap().as_bytes()).unwrap();
        let fd = os::open(&p, libc::O_WRONLY, 0).unwrap();
        let mut sink = Sink::Seek {
            fd,
            block_dev_size: Some(1 << 20),
            zeroing: Zeroing::ZeroOut,
        };
        sink.write_zeros(1000, 300_000).unwrap();
        assert!(matches!(
            sink,
            Sink::Seek {
                zeroing: Zeroing::WriteZeros,
                ..
            }
        ));
        sink.write_zeros(500_000, 70_001).unwrap();
        let back = std::fs::read(&path).unwrap();
        let zero = |r: core::ops::Range<usize>| back[r].iter().all(|&b| b == 0);
        let old = |r: core::ops::Range<usize>| back[r].iter().all(|&b| b == 0xa5);
        assert!(old(0..1000) && zero(1000..301_000) && old(301_000..500_000));
        assert!(zero(500_000..570_001) && old(570_001..1 << 20));
        // --assume-zeroed: nothing is written.
        let mut sink = Sink::Seek {
            fd: os::open(&p, libc::O_WRONLY, 0).unwrap(),
            block_dev_size: Some(1 << 20),
            zeroing: Zeroing::AssumeZeroed,
        };
        sink.write_zeros(0, 1 << 20).unwrap();
        assert!(
            std::fs::read(&path).unwrap()[..1000]
                .iter()
                .all(|&b| b == 0xa5)
        );
        std::fs::remove_file(&path).unwrap();
    }
}

/// Needs root: `BB_TEST_BLOCK_DEV=/dev/loopN cargo test -p bb-client -- --ignored zero_out`
/// (the device's contents are destroyed).
#[cfg(test)]
mod block_device_tests {
    use super::*;

    #[test]
    #[ignore = "needs root and a scratch block device in BB_TEST_BLOCK_DEV"]
    fn blkzeroout_erases_old_contents_with_unaligned_ends() {
        let dev = std::env::var("BB_TEST_BLOCK_DEV").expect("BB_TEST_BLOCK_DEV=/dev/loopN");
        let size = 4 << 20;
        std::fs::write(&dev, vec![0xa5u8; size]).unwrap();
        let Ok(mut sink) = open_target(Output::Path(dev.as_bytes()), false) else {
            panic!("open_target {dev} failed");
        };
        assert!(matches!(
            sink,
            Sink::Seek {
                zeroing: Zeroing::ZeroOut,
                ..
            }
        ));
        sink.write_zeros(1000, 2_000_000).unwrap();
        assert!(matches!(
            sink,
            Sink::Seek {
                zeroing: Zeroing::ZeroOut,
                ..
            }
        ));
        sink.flush(size as u64).unwrap();
        drop(sink);
        let back = std::fs::read(&dev).unwrap();
        assert!(back[..1000].iter().all(|&b| b == 0xa5));
        assert!(back[1000..2_001_000].iter().all(|&b| b == 0));
        assert!(back[2_001_000..].iter().all(|&b| b == 0xa5));
    }
}
