//! The image: a file, a block device, or a stream spooled to an unlinked temporary file;
//! and a small cache of loaded blocks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bb_proto::wire::Geometry;

use crate::cli::Source;
use crate::report::human_bytes;
use crate::sys;

/// An open image of known size.
#[derive(Debug)]
pub struct Image {
    pub file: File,
    pub size: u64,
    /// What it is, for messages: "disk.img", "stdin (spooled)".
    pub name: String,
}

/// The directory for spool files: $TMPDIR, else /var/tmp (usually on disk, unlike /tmp).
pub fn spool_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/var/tmp"),
    }
}

/// Opens the image named on the command line. Errors are messages for exit code 3.
pub fn open(source: &Source, quiet: bool) -> Result<Image, String> {
    let (file, name) = match source {
        Source::Stdin => {
            let fd = io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| format!("stdin: {e}"))?;
            (File::from(fd), "stdin".to_string())
        }
        Source::Path(p) => {
            let f = File::open(p).map_err(|e| format!("cannot open image {}: {e}", p.display()))?;
            (f, p.display().to_string())
        }
    };
    let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(format!("{name} is a directory, not an image"));
    }
    let (file, size, name) = if ft.is_file() {
        (file, meta.len(), name)
    } else if ft.is_block_device() {
        let size = sys::block_device_size(&file)
            .map_err(|e| format!("{name}: cannot read the device size: {e}"))?;
        (file, size, name)
    } else {
        // A pipe, a socket or a character device: cannot seek, so spool it.
        let dir = spool_dir();
        let show = !quiet;
        if show {
            say!(
                "bb-server: {name} cannot seek; spooling it to an unlinked temporary file in {} first \
                 (needs as much free space as the image; set TMPDIR to change)",
                dir.display()
            );
        }
        let mut reader = file;
        let (f, size) = spool(&mut reader, &dir, show)?;
        if show {
            say!("bb-server: spooled {} ({size} bytes)", human_bytes(size));
        }
        (f, size, format!("{name} (spooled)"))
    };
    if size == 0 {
        return Err(format!("the image {name} is empty: nothing to send"));
    }
    Ok(Image { file, size, name })
}

/// A temporary file in `dir` that has no name: O_TMPFILE, or created and unlinked at
/// once. It disappears when closed, whatever way the process ends.
pub fn unlinked_temp(dir: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(f) => return Ok(f),
        Err(e)
            if e.raw_os_error() == Some(libc::EISDIR)
                || e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            return Err(e);
        }
        Err(_) => {}
    }
    let tag = sys::random_u64().unwrap_or(0);
    let p = dir.join(format!(
        ".bb-server-spool.{}.{tag:016x}",
        std::process::id()
    ));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)?;
    std::fs::remove_file(&p)?;
    Ok(f)
}

/// Copies `reader` to an unlinked temporary file in `dir`; returns it and the size.
pub fn spool(reader: &mut impl Read, dir: &Path, show: bool) -> Result<(File, u64), String> {
    let mut out = unlinked_temp(dir).map_err(|e| {
        format!(
            "cannot create a spool file in {}: {e} (set TMPDIR)",
            dir.display()
        )
    })?;
    let tty = show && sys::stderr_is_tty();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let start = Instant::now();
    let mut shown = start;
    loop {
        if sys::interrupted() {
            return Err(format!(
                "interrupted while spooling, after {}",
                human_bytes(size)
            ));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "reading the image stream failed after {}: {e}",
                    human_bytes(size)
                ));
            }
        };
        out.write_all(&buf[..n]).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
                " (no space left: set TMPDIR to a larger filesystem, or pass the image as a file)"
            } else {
                ""
            };
            format!(
                "writing the spool file in {} failed after {}: {e}{hint}",
                dir.display(),
                human_bytes(size)
            )
        })?;
        size += n as u64;
        let now = Instant::now();
        if show && now.duration_since(shown) >= Duration::from_millis(if tty { 250 } else { 5000 })
        {
            shown = now;
            let mbs = size as f64 / now.duration_since(start).as_secs_f64() / 1e6;
            if tty {
                say_raw!(
                    "\r\x1b[Kbb-server: spooling: {} ({mbs:.0} MB/s)",
                    human_bytes(size)
                );
            } else {
                say!("bb-server: spooling: {} ({mbs:.0} MB/s)", human_bytes(size));
            }
        }
    }
    if tty {
        say_raw!("\r\x1b[K");
    }
    Ok((out, size))
}

/// Loaded blocks: the forward pass's current block plus a few for repairs.
pub struct BlockCache {
    geometry: Geometry,
    entries: Vec<Entry>,
    tick: u64,
    /// Blocks read from the image.
    pub loads: u64,
}

struct Entry {
    block: u32,
    used: u64,
    data: Vec<u8>,
}

impl BlockCache {
    pub fn new(geometry: Geometry, capacity: usize) -> Self {
        let entries = (0..capacity.max(1))
            .map(|_| Entry {
                block: u32::MAX,
                used: 0,
                data: Vec::new(),
            })
            .collect();
        Self {
            geometry,
            entries,
            tick: 0,
            loads: 0,
        }
    }

    /// Block `block` as `block_k * symbol_size` bytes (image bytes, then zeros).
    pub fn get(&mut self, file: &File, block: u32) -> io::Result<&[u8]> {
        self.tick += 1;
        let i = match self.entries.iter().position(|e| e.block == block) {
            Some(i) => i,
            None => {
                let i = self
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let g = self.geometry;
                let len = g.block_len(block);
                let full = g.block_k(block) as usize * g.symbol_size as usize;
                let e = &mut self.entries[i];
                e.block = u32::MAX;
                e.data.resize(full, 0);
                file.read_exact_at(&mut e.data[..len], g.block_offset(block))
                    .map_err(|err| {
                        if err.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::new(
                                err.kind(),
                                format!(
                                    "the image shrank while sending (block {block} is past its end)"
                                ),
                            )
                        } else {
                            err
                        }
                    })?;
                e.data[len..].fill(0);
                e.block = block;
                self.loads += 1;
                i
            }
        };
        self.entries[i].used = self.tick;
        Ok(&self.entries[i].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bb-server-test-{tag}-{}-{:x}",
            std::process::id(),
            sys::random_u64().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_pipe_is_spooled_to_a_file_that_leaves_no_trace() {
        let dir = tempdir("spool");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "head -c 3000000 /dev/urandom | tee /dev/stderr"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let mut v = vec![];
            stderr.read_to_end(&mut v).unwrap();
            v
        });
        let (mut f, size) = spool(&mut stdout, &dir, false).unwrap();
        let want = t.join().unwrap();
        child.wait().unwrap();
        assert_eq!(size, 3_000_000);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the spool file has no name"
        );
        let mut got = vec![];
        f.rewind().unwrap();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
        drop(f);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn sizes_of_files_and_empty_images() {
        let dir = tempdir("size");
        let p = dir.join("img");
        std::fs::write(&p, vec![7u8; 12345]).unwrap();
        let img = open(&Source::Path(p.clone()), true).unwrap();
        assert_eq!(img.size, 12345);
        std::fs::write(&p, b"").unwrap();
        assert!(
            open(&Source::Path(p.clone()), true)
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            open(&Source::Path(dir.join("missing")), true)
                .unwrap_err()
                .contains("cannot open")
        );
        assert!(
            open(&Source::Path(dir.clone()), true)
                .unwrap_err()
                .contains("directory")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blocks_are_padded_with_zeros() {
        let dir = tempdir("cache");
        let p = dir.join("img");
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8 | 1).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let g = Geometry::new(1000, 64, 4).unwrap(); // blocks of 256 bytes, the last of 232
        let mut c = BlockCache::new(g, 2);
        assert_eq!(c.get(&f, 1).unwrap(), &data[256..512]);
        let last = c.get(&f, 3).unwrap().to_vec();
        assert_eq!(last.len(), 256);
        assert_eq!(&last[..232], &data[768..]);
        assert!(last[232..].iter().all(|&b| b == 0));
        c.get(&f, 1).unwrap();
        assert_eq!(c.loads, 2);
        c.get(&f, 0).unwrap(); // evicts 3, the least recently used
        c.get(&f, 1).unwrap();
        assert_eq!(c.loads, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
