//! The target: where the image goes (a file, a block device or a stream), opened and
//! checked before any write, then written at offsets or in order and flushed.

use crate::args::Output;
use crate::fmt::{Buf, Lossy};
use crate::mounts;
use crate::os::{self, CPath, Errno, Fd, Kind};
use crate::run::{EXIT_TARGET, EXIT_USAGE, Finish};
use core::fmt::Write;

/// Where the image goes.
pub enum Sink {
    /// Written at offsets: a regular file (length set at the end) or a block device (size
    /// checked before any write).
    Seek { fd: Fd, block_dev_size: Option<u64> },
    /// Written strictly in order: stdout, a FIFO or a character device.
    Stream { fd: Fd, pos: u64 },
}

impl Sink {
    pub fn in_order(&self) -> bool {
        matches!(self, Sink::Stream { .. })
    }

    /// Writes `data` at byte `offset` of the image (a stream takes only the next bytes).
    pub fn write(&mut self, data: &[u8], offset: u64) -> Result<(), Errno> {
        match self {
            Sink::Seek { fd, .. } => os::pwrite_all(fd.0, data, offset),
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

    /// Writes `len` zero bytes at `offset`, from a fixed buffer of zeros.
    pub fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Errno> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64) as usize;
            self.write(&ZEROS[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Makes what was written durable; a regular file gets the image's length first.
    pub fn flush(&self, image_size: u64) -> Result<(), Errno> {
        match self {
            Sink::Seek {
                fd,
                block_dev_size: None,
            } => os::ftruncate(fd.0, image_size).and_then(|_| os::fdatasync(fd.0)),
            Sink::Seek { fd, .. } => os::fsync(fd.0),
            // Pipes and character devices may not support syncing at all.
            Sink::Stream { fd, .. } => match os::fdatasync(fd.0) {
                Err(libc::EINVAL) | Err(libc::EROFS) | Err(libc::ENOTSUP) => Ok(()),
                r => r,
            },
        }
    }
}

pub fn open_target(out: Output<'_>) -> Result<Sink, Finish> {
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
            let fd = os::open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)
                .map_err(|e| target_err("create", e))?;
            Ok(Sink::Seek {
                fd,
                block_dev_size: None,
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
