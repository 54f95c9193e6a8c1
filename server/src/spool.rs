//! Inputs that cannot be read twice at will (pipes, compressed image files) are spooled as
//! CODED blocks to an unlinked temporary file: zero blocks are not stored at all, the rest
//! compressed, so the spool needs about the compressed size of the image.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{BlockCoder, Coded, Kind};
use crate::image::unlinked_temp;
use crate::pool::{Job, Pool, Work};
use crate::report::{end_progress_line, human_bytes, progress_line};
use crate::sys;

/// Where one block's coded bytes are in the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolEntry {
    pub kind: Kind,
    pub hash: [u8; 32],
    pub offset: u64,
    pub len: u32,
}

/// A spooled image: the coded blocks and where each is.
#[derive(Debug)]
pub struct CodedSpool {
    pub file: File,
    /// Bytes of the (decoded) image.
    pub image_bytes: u64,
    /// Bytes stored in the spool file.
    pub stored_bytes: u64,
    pub blocks: Vec<SpoolEntry>,
}

impl CodedSpool {
    /// Block `b` as it was coded.
    pub fn coded(&self, b: u32) -> io::Result<Coded> {
        let e = self
            .blocks
            .get(b as usize)
            .ok_or_else(|| io::Error::other(format!("block {b} is past the spooled image")))?;
        let mut bytes = vec![0u8; e.len as usize];
        self.file.read_exact_at(&mut bytes, e.offset)?;
        Ok(Coded {
            kind: e.kind,
            hash: e.hash,
            bytes,
        })
    }
}

/// How spooling is done.
pub struct SpoolPlan<'a> {
    pub dir: &'a Path,
    pub block_bytes: usize,
    /// zstd level; None: blocks are stored raw (zero blocks still skipped).
    pub level: Option<i32>,
    pub symbol_size: u32,
    pub threads: usize,
    /// Progress on stderr.
    pub show: bool,
}

/// Reads `block_bytes` from `r` into `buf` (fewer only at the end); the count.
fn read_block(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !sys::interrupted() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Spools `reader` (already decoded) into an unlinked file in `plan.dir`, coding blocks on
/// `plan.threads` cores. Errors are messages for the operator.
pub fn spool_coded(reader: &mut dyn Read, plan: &SpoolPlan) -> Result<CodedSpool, String> {
    let dir = plan.dir;
    let out = unlinked_temp(dir).map_err(|e| {
        format!(
            "cannot create a spool file in {}: {e} (set TMPDIR)",
            dir.display()
        )
    })?;
    let work: Arc<Work> = Arc::new(|c: &mut BlockCoder, job: Job| match job {
        Job::Bytes(_, d) => Ok(c.code(d)),
        Job::Read(b) => Err(io::Error::other(format!("block {b}: nothing to read"))),
    });
    let (level, ss) = (plan.level, plan.symbol_size);
    let pool = Pool::new(
        plan.threads,
        2 * plan.threads + 2,
        || BlockCoder::new(level, ss),
        work,
    )
    .map_err(|e| format!("cannot start the compression threads: {e}"))?;
    let mut sp = CodedSpool {
        file: out,
        image_bytes: 0,
        stored_bytes: 0,
        blocks: Vec::new(),
    };
    let tty = plan.show && sys::stderr_is_tty();
    let start = Instant::now();
    let mut shown = start;
    let mut ended = false;
    let mut next = 0u32;
    loop {
        if sys::interrupted() {
            return Err(format!(
                "interrupted while spooling, after {}",
                human_bytes(sp.image_bytes)
            ));
        }
        if !ended {
            let mut buf = vec![0u8; plan.block_bytes];
            let n = read_block(reader, &mut buf).map_err(|e| {
                format!(
                    "reading the image stream failed after {}: {e}",
                    human_bytes(sp.image_bytes)
                )
            })?;
            if n == 0 {
                ended = true;
            } else {
                buf.truncate(n);
                sp.image_bytes += n as u64;
                ended = n < plan.block_bytes;
                if next == u32::MAX {
                    return Err("the image stream has too many blocks".into());
                }
                // Results are stored while the queue is full, so submitting never deadlocks.
                let mut job = Job::Bytes(next, buf);
                loop {
                    match pool.try_submit(job) {
                        Ok(()) => break,
                        Err(j) => {
                            job = j;
                            let r = pool.next();
                            store(&mut sp, r, dir)?;
                        }
                    }
                }
                next += 1;
            }
        }
        while let Some(r) = pool.try_next() {
            store(&mut sp, Some(r), dir)?;
        }
        if ended {
            while let Some(r) = pool.next() {
                store(&mut sp, Some(r), dir)?;
            }
            break;
        }
        let now = Instant::now();
        if plan.show
            && now.duration_since(shown) >= Duration::from_millis(if tty { 250 } else { 5000 })
        {
            shown = now;
            let mbs = sp.image_bytes as f64 / now.duration_since(start).as_secs_f64() / 1e6;
            let line = format!(
                "spooling: {} read, {} stored ({mbs:.0} MB/s)",
                human_bytes(sp.image_bytes),
                human_bytes(sp.stored_bytes)
            );
            progress_line(tty, &line);
        }
    }
    end_progress_line(tty);
    Ok(sp)
}

/// Appends one coded block to the spool.
fn store(
    sp: &mut CodedSpool,
    r: Option<(u32, io::Result<Coded>)>,
    dir: &Path,
) -> Result<(), String> {
    let Some((b, r)) = r else {
        return Ok(());
    };
    let c = r.map_err(|e| format!("coding block {b} failed: {e}"))?;
    debug_assert_eq!(b as usize, sp.blocks.len());
    let entry = SpoolEntry {
        kind: c.kind,
        hash: c.hash,
        offset: sp.stored_bytes,
        len: c.bytes.len() as u32,
    };
    if !c.bytes.is_empty() {
        sp.file.write_all(&c.bytes).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
                " (no space left: set TMPDIR to a larger filesystem, or pass the image as a file)"
            } else {
                ""
            };
            format!(
                "writing the spool file in {} failed after {}: {e}{hint}",
                dir.display(),
                human_bytes(sp.stored_bytes)
            )
        })?;
        sp.stored_bytes += c.bytes.len() as u64;
    }
    sp.blocks.push(entry);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::content_hash;
    use crate::input::{Format, decoder, read_head, unread};

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bb-server-test-{tag}-{}-{:x}",
            std::process::id(),
            sys::random_u64().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// 40 blocks of 64 KiB and a short tail: zeros, text and noise.
    fn image() -> Vec<u8> {
        let bb = 65536;
        let mut v = Vec::new();
        let mut x = 99u64;
        for b in 0..40 {
            match b % 4 {
                0 | 1 => v.extend(std::iter::repeat_n(0u8, bb)),
                2 => v.extend(format!("block {b} text ").bytes().cycle().take(bb)),
                _ => v.extend((0..bb).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })),
            }
        }
        v.extend_from_slice(b"tail");
        v
    }

    #[test]
    fn a_compressed_stream_is_spooled_as_coded_blocks_without_zeros() {
        let data = image();
        let dir = tempdir("coded-spool");
        let z = zstd::bulk::compress(&data, 1).unwrap();
        let mut r = io::Cursor::new(z);
        let head = read_head(&mut r).unwrap();
        let f = Format::detect(&head);
        assert_eq!(f, Format::Zstd);
        let mut dec = decoder(f, unread(head, r)).unwrap();
        let plan = SpoolPlan {
            dir: &dir,
            block_bytes: 65536,
            level: Some(3),
            symbol_size: 1024,
            threads: 2,
            show: false,
        };
        let sp = spool_coded(&mut dec, &plan).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no name");
        assert_eq!(sp.image_bytes, data.len() as u64);
        assert_eq!(sp.blocks.len(), 41);
        // Half is zero and a quarter text: well under half the image is stored.
        assert!(
            sp.stored_bytes < data.len() as u64 * 3 / 10,
            "{}",
            sp.stored_bytes
        );
        for (b, chunk) in data.chunks(65536).enumerate() {
            let c = sp.coded(b as u32).unwrap();
            let want = match b % 4 {
                _ if b == 40 => Kind::Raw,
                0 | 1 => Kind::Zero,
                2 => Kind::Zstd,
                _ => Kind::Raw,
            };
            assert_eq!(c.kind, want, "block {b}");
            let back = match c.kind {
                Kind::Zero => vec![0u8; chunk.len()],
                Kind::Raw => c.bytes.clone(),
                Kind::Zstd => zstd::bulk::decompress(&c.bytes, 65536).unwrap(),
            };
            assert_eq!(back, chunk, "block {b}");
            if c.kind != Kind::Zero {
                assert_eq!(c.hash, content_hash(chunk));
            }
        }
        drop(sp);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn a_missing_spool_directory_is_a_clear_error() {
        let plan = SpoolPlan {
            dir: Path::new("/nonexistent/bb-spool"),
            block_bytes: 4096,
            level: None,
            symbol_size: 64,
            threads: 1,
            show: false,
        };
        let e = spool_coded(&mut io::Cursor::new(vec![1u8; 10]), &plan).unwrap_err();
        assert!(e.contains("TMPDIR"), "{e}");
    }
}
