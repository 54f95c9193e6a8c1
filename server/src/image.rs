//! The image: a file, a block device, or a stream or compressed file spooled as coded
//! blocks to an unlinked temporary file; and a small cache of coded blocks.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bb_proto::wire::Geometry;

use crate::cli::Source;
use crate::codec::{BlockCoder, Coded, Kind, pad_to_symbols};
use crate::input::{Format, MAGIC_LEN, decoder, read_head, unread};
use crate::report::human_bytes;
use crate::spool::{CodedSpool, SpoolPlan, spool_coded};
use crate::sys;
use crate::zeros::HoleMap;

/// Where an image's blocks come from.
#[derive(Debug)]
pub enum Store {
    /// A regular file or block device, read (and coded) block by block; `holes` tells which
    /// blocks of a sparse file lie wholly in holes.
    Seekable { file: File, holes: Option<HoleMap> },
    /// A pipe or a compressed image file, already coded.
    Spooled(CodedSpool),
}

/// An open image of known size.
#[derive(Debug)]
pub struct Image {
    pub store: Store,
    pub size: u64,
    /// What it is, for messages: "disk.img", "stdin (spooled)", "disk.img.zst (zstd,
    /// spooled)".
    pub name: String,
}

/// What `open` needs to know to read and code blocks.
pub struct OpenPlan {
    pub block_bytes: usize,
    pub level: Option<i32>,
    pub symbol_size: u32,
    pub threads: usize,
    pub quiet: bool,
}

/// The directory for spool files: $TMPDIR, else /var/tmp (usually on disk, unlike /tmp).
pub fn spool_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/var/tmp"),
    }
}

/// Opens the image named on the command line. Errors are messages for exit code 3.
pub fn open(source: &Source, plan: &OpenPlan) -> Result<Image, String> {
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
    let seekable = ft.is_file() || ft.is_block_device();
    let mut head = vec![0u8; MAGIC_LEN];
    let format = if seekable {
        let n = file
            .read_at(&mut head, 0)
            .map_err(|e| format!("{name}: {e}"))?;
        Format::detect(&head[..n])
    } else {
        let mut f = &file;
        head = read_head(&mut f).map_err(|e| format!("reading {name} failed: {e}"))?;
        Format::detect(&head)
    };
    if seekable && format == Format::Plain {
        let size = if ft.is_file() {
            meta.len()
        } else {
            sys::block_device_size(&file)
                .map_err(|e| format!("{name}: cannot read the device size: {e}"))?
        };
        if size == 0 {
            return Err(format!("the image {name} is empty: nothing to send"));
        }
        let holes = if ft.is_file() {
            HoleMap::of_file(&file, size, plan.block_bytes as u64)
                .map_err(|e| format!("{name}: finding holes failed: {e}"))?
        } else {
            None
        };
        return Ok(Image {
            store: Store::Seekable { file, holes },
            size,
            name,
        });
    }
    // A pipe, a socket, a character device or a compressed file: spool it, coded.
    let dir = spool_dir();
    let show = !plan.quiet;
    let why = if seekable {
        format!("is {}-compressed", format.name())
    } else {
        "cannot seek".to_string()
    };
    if show {
        say!(
            "bb-server: {name} {why}; spooling it as compressed blocks (zero blocks not stored) to an \
             unlinked temporary file in {} first (set TMPDIR to change)",
            dir.display()
        );
    }
    let reader: Box<dyn Read + '_> = if seekable {
        Box::new(&file)
    } else {
        Box::new(unread(head, &file))
    };
    let mut reader = decoder(format, reader).map_err(|e| format!("{name}: {e}"))?;
    let sp = spool_coded(
        &mut reader,
        &SpoolPlan {
            dir: &dir,
            block_bytes: plan.block_bytes,
            level: plan.level,
            symbol_size: plan.symbol_size,
            threads: plan.threads,
            show,
        },
    )?;
    drop(reader);
    let size = sp.image_bytes;
    if size == 0 {
        return Err(format!("the image {name} is empty: nothing to send"));
    }
    if show {
        say!(
            "bb-server: spooled {} ({size} bytes) as {} of coded blocks",
            human_bytes(size),
            human_bytes(sp.stored_bytes)
        );
    }
    let label = if format == Format::Plain {
        format!("{name} (spooled)")
    } else {
        format!("{name} ({}, spooled)", format.name())
    };
    Ok(Image {
        store: Store::Spooled(sp),
        size,
        name: label,
    })
}

impl Image {
    /// Block `b` coded (read and compressed again, or from the spool): what a cache miss
    /// costs. The same block always codes to the same bytes.
    pub fn coded_block(
        &self,
        geometry: &Geometry,
        coder: &mut BlockCoder,
        b: u32,
    ) -> io::Result<Coded> {
        self.coded_block_as(geometry, coder, b, None)
    }

    /// [`Image::coded_block`] for a block whose kind is known from its first coding: a raw
    /// block is read and hashed, not compressed again.
    pub fn coded_block_as(
        &self,
        geometry: &Geometry,
        coder: &mut BlockCoder,
        b: u32,
        known: Option<Kind>,
    ) -> io::Result<Coded> {
        match &self.store {
            Store::Spooled(sp) => sp.coded(b),
            Store::Seekable { file, holes } => {
                read_and_code_as(file, holes.as_ref(), geometry, coder, b, known)
            }
        }
    }
}

/// The message for a failed read of block `b` of the image `name`: the block, its byte
/// offset and the cause, with what to do when the source device itself failed.
pub fn read_failed(name: &str, geometry: &Geometry, b: u32, e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::EIO) => {
            " (the source disk reported an error: check it with dmesg or smartctl, or serve \
             a copy of the image from a sound disk)"
        }
        Some(libc::ENODEV | libc::ENXIO | libc::ENOTCONN | libc::ESTALE) => {
            " (the source went away: a disk removed, or a network or FUSE file system that \
             ended; serve a local copy)"
        }
        _ => "",
    };
    format!(
        "reading block {b} of {name} (byte {}) failed: {e}{hint}",
        geometry.block_offset(b)
    )
}

/// Reads block `b` of a seekable image and codes it; a block in a hole is not read.
pub fn read_and_code(
    file: &File,
    holes: Option<&HoleMap>,
    geometry: &Geometry,
    coder: &mut BlockCoder,
    b: u32,
) -> io::Result<Coded> {
    read_and_code_as(file, holes, geometry, coder, b, None)
}

/// [`read_and_code`], sending a block `known` to be raw without compressing it again.
fn read_and_code_as(
    file: &File,
    holes: Option<&HoleMap>,
    geometry: &Geometry,
    coder: &mut BlockCoder,
    b: u32,
    known: Option<Kind>,
) -> io::Result<Coded> {
    if holes.is_some_and(|h| h.is_hole(b)) {
        return Ok(Coded::zero());
    }
    let len = geometry.block_len(b);
    let mut data = vec![0u8; len];
    file.read_exact_at(&mut data, geometry.block_offset(b))
        .map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    err.kind(),
                    format!("the image shrank while sending (block {b} is past its end)"),
                )
            } else {
                err
            }
        })?;
    Ok(
        if known == Some(Kind::Raw) && !crate::zeros::is_zero(&data) {
            coder.raw(data)
        } else {
            coder.code(data)
        },
    )
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

/// Coded blocks kept for sending: those the workers prepared ahead of the forward pass,
/// and a few recent ones for repairs. Each is padded to whole symbols.
pub struct CodedCache {
    symbol_size: u32,
    capacity: usize,
    entries: Vec<Entry>,
    tick: u64,
}

struct Entry {
    block: u32,
    used: u64,
    data: Vec<u8>,
}

impl CodedCache {
    pub fn new(symbol_size: u32, capacity: usize) -> Self {
        Self {
            symbol_size,
            capacity: capacity.max(1),
            entries: Vec::new(),
            tick: 0,
        }
    }

    /// Keeps block `block`'s coded bytes (padded here), evicting the least recently used.
    /// Takes them rather than a copy: copying each block into memory of its own cost the
    /// sending thread 1-2 ms a block while the memory was new (the first blocks, which the
    /// first packets waited for).
    pub fn insert(&mut self, block: u32, coded: Vec<u8>) {
        self.tick += 1;
        let i = match self.entries.iter().position(|e| e.block == block) {
            Some(i) => i,
            None if self.entries.len() < self.capacity => {
                self.entries.push(Entry {
                    block,
                    used: 0,
                    data: Vec::new(),
                });
                self.entries.len() - 1
            }
            None => self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
                .unwrap_or(0),
        };
        let e = &mut self.entries[i];
        e.block = block;
        e.used = self.tick;
        e.data = pad_to_symbols(coded, self.symbol_size);
    }

    /// Block `block`'s padded coded bytes, if kept.
    pub fn get(&mut self, block: u32) -> Option<&[u8]> {
        self.tick += 1;
        let e = self.entries.iter_mut().find(|e| e.block == block)?;
        e.used = self.tick;
        Some(&e.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Kind;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bb-server-test-{tag}-{}-{:x}",
            std::process::id(),
            sys::random_u64().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn plan(block_bytes: usize) -> OpenPlan {
        OpenPlan {
            block_bytes,
            level: Some(3),
            symbol_size: 64,
            threads: 2,
            quiet: true,
        }
    }

    /// The image bytes back from its coded blocks.
    fn decode_all(img: &Image, g: &Geometry) -> Vec<u8> {
        let mut coder = BlockCoder::new(Some(3), g.symbol_size).unwrap();
        let mut out = Vec::new();
        for b in 0..g.block_count() {
            let c = img.coded_block(g, &mut coder, b).unwrap();
            let len = g.block_len(b);
            match c.kind {
                Kind::Zero => out.extend(std::iter::repeat_n(0u8, len)),
                Kind::Raw => out.extend_from_slice(&c.bytes),
                Kind::Zstd => out.extend(zstd::bulk::decompress(&c.bytes, len).unwrap()),
            }
        }
        out
    }

    #[test]
    fn a_pipe_is_spooled_to_a_file_that_leaves_no_trace() {
        let dir = tempdir("spool");
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "(head -c 1000000 /dev/urandom; head -c 2000000 /dev/zero) | tee /dev/stderr",
            ])
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
        let sp = spool_coded(
            &mut stdout,
            &SpoolPlan {
                dir: &dir,
                block_bytes: 64 * 512,
                level: Some(3),
                symbol_size: 64,
                threads: 2,
                show: false,
            },
        )
        .unwrap();
        let want = t.join().unwrap();
        child.wait().unwrap();
        assert_eq!(sp.image_bytes, 3_000_000);
        assert!(sp.stored_bytes < 1_100_000, "zeros are not stored");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the spool file has no name"
        );
        let img = Image {
            size: sp.image_bytes,
            store: Store::Spooled(sp),
            name: "pipe".into(),
        };
        let g = Geometry::new(img.size, 64, 512).unwrap();
        assert_eq!(decode_all(&img, &g), want);
        drop(img);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn sizes_of_files_and_empty_images() {
        let dir = tempdir("size");
        let p = dir.join("img");
        std::fs::write(&p, vec![7u8; 12345]).unwrap();
        let img = open(&Source::Path(p.clone()), &plan(4096)).unwrap();
        assert_eq!(img.size, 12345);
        assert!(matches!(img.store, Store::Seekable { .. }));
        std::fs::write(&p, b"").unwrap();
        assert!(
            open(&Source::Path(p.clone()), &plan(4096))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            open(&Source::Path(dir.join("missing")), &plan(4096))
                .unwrap_err()
                .contains("cannot open")
        );
        assert!(
            open(&Source::Path(dir.clone()), &plan(4096))
                .unwrap_err()
                .contains("directory")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_compressed_image_file_is_recognised_by_content_and_spooled() {
        let dir = tempdir("zimg");
        let mut data = vec![0u8; 200_000];
        for (i, b) in data[50_000..90_000].iter_mut().enumerate() {
            *b = (i % 13) as u8 + 1;
        }
        // Named like a plain image: the magic bytes decide.
        let p = dir.join("disk.img");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &data).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        let img = open(&Source::Path(p), &plan(64 * 64)).unwrap();
        assert_eq!(img.size, 200_000);
        assert!(img.name.contains("gzip"), "{}", img.name);
        let Store::Spooled(sp) = &img.store else {
            panic!("a compressed file is spooled")
        };
        assert!(sp.stored_bytes < 10_000, "{}", sp.stored_bytes);
        let g = Geometry::new(img.size, 64, 64).unwrap();
        assert_eq!(decode_all(&img, &g), data);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cache_pads_and_evicts_the_least_recently_used() {
        let mut c = CodedCache::new(64, 2);
        c.insert(1, vec![5u8; 100]);
        c.insert(3, vec![6u8; 10]);
        let one = c.get(1).unwrap();
        assert_eq!(one.len(), 128);
        assert!(one[..100].iter().all(|&b| b == 5) && one[100..].iter().all(|&b| b == 0));
        c.insert(0, vec![7u8; 64]); // evicts 3, the least recently used
        assert!(c.get(3).is_none());
        assert_eq!(c.get(0).unwrap(), &[7u8; 64][..]);
        assert!(c.get(1).is_some());
    }

    #[test]
    fn a_failed_read_says_what_to_do_when_the_source_disk_failed_or_went_away() {
        let g = Geometry::new(10 << 20, 1024, 1024).unwrap();
        let e = std::io::Error::from_raw_os_error(libc::EIO);
        let m = read_failed("/dev/sdb", &g, 2, &e);
        assert!(
            m.starts_with("reading block 2 of /dev/sdb (byte 2097152) failed: "),
            "{m}"
        );
        assert!(m.contains("the source disk reported an error"), "{m}");
        let e = std::io::Error::from_raw_os_error(libc::ENOTCONN);
        assert!(read_failed("x", &g, 0, &e).contains("the source went away"));
        let e = std::io::Error::from_raw_os_error(libc::EBADF);
        assert!(read_failed("x", &g, 0, &e).ends_with("(os error 9)"));
    }
}
