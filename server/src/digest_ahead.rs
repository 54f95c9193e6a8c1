//! The image digest read ahead of the forward pass, and the watch on the image file.
//!
//! A restarted server must announce its image digest before clients of the earlier session
//! can prove it serves the same image and keep what they wrote. The forward pass learns the
//! digest only when it has coded every block; one sequential pass that only hashes (no
//! compression, holes not read) learns it at disk speed, on its own thread, while sending
//! starts at once. The blocks the forward pass codes must then add up to the same digest
//! (the sender checks), so an image that changes between the two reads stops the server.
//!
//! A regular file's size and modification time are watched too: a file written while it
//! is served stops the server at once, instead of sending blocks no client could verify.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Instant;

use bb_proto::digest::{DigestAccumulator, ZeroHashes};
use bb_proto::wire::Geometry;

use crate::image::read_failed;
use crate::sidefile::Stamp;
use crate::zeros::HoleMap;

/// The digest being read on a worker thread.
pub struct DigestAhead {
    rx: Receiver<Result<([u8; 32], f64), String>>,
}

impl DigestAhead {
    /// Starts hashing every block of `file` (blocks wholly in `holes` are zero, not read).
    pub fn start(
        file: &File,
        holes: Option<HoleMap>,
        geometry: Geometry,
        name: &str,
    ) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let name = name.to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("bb-digest".into())
            .spawn(move || {
                let start = Instant::now();
                let r = digest_of(&file, holes.as_ref(), &geometry, &name)
                    .map(|d| (d, start.elapsed().as_secs_f64()));
                let _ = tx.send(r);
            })?;
        Ok(Self { rx })
    }

    /// The digest and the seconds it took, once read; an error names the block that could
    /// not be read.
    pub fn poll(&self) -> Option<Result<([u8; 32], f64), String>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                Some(Err("the digest thread ended without a result".into()))
            }
        }
    }
}

/// The image digest of `file` as the sender computes it from the blocks it is given.
pub fn digest_of(
    file: &File,
    holes: Option<&HoleMap>,
    g: &Geometry,
    name: &str,
) -> Result<[u8; 32], String> {
    let mut acc = DigestAccumulator::new();
    let mut zeros = ZeroHashes::new();
    let mut buf = vec![0u8; g.block_bytes() as usize];
    for b in 0..g.block_count() {
        let hash = if holes.is_some_and(|h| h.is_hole(b)) {
            zeros.of(g, b)
        } else {
            let data = &mut buf[..g.block_len(b)];
            file.read_exact_at(data, g.block_offset(b))
                .map_err(|e| read_failed(name, g, b, &e))?;
            bb_proto::digest::content_hash(data)
        };
        acc.add(b, &hash);
    }
    Ok(acc.finish(g))
}

/// A regular image file's size and modification time as the session started.
pub struct ImageWatch {
    path: std::path::PathBuf,
    stamp: Stamp,
}

impl ImageWatch {
    /// None for what is not a regular file (a device's mtime does not move when written).
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        m.is_file().then(|| Self {
            path: path.to_path_buf(),
            stamp: Stamp::of(&m),
        })
    }

    /// An error naming the change when the file was written, truncated or removed since.
    pub fn check(&self) -> Result<(), String> {
        let now = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
        match now {
            Ok(s) if s == self.stamp => Ok(()),
            Ok(s) if s.size != self.stamp.size => Err(format!(
                "the image {} changed size while it was served ({} -> {} bytes): stopping \
                 rather than send data no client could verify; serve a copy or a snapshot \
                 that nothing writes",
                self.path.display(),
                self.stamp.size,
                s.size
            )),
            Ok(_) => Err(format!(
                "the image {} was modified while it was served (its modification time \
                 moved): stopping rather than send data no client could verify; serve a \
                 copy or a snapshot that nothing writes (a file system on it still mounted, \
                 perhaps in another mount namespace, e.g. by `ip netns exec`, writes it)",
                self.path.display()
            )),
            Err(e) => Err(format!(
                "the image {} cannot be checked any more ({e}): stopping",
                self.path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto_link::image_digest;
    use crate::sidefile::MapEntry;

    #[test]
    fn the_digest_read_ahead_is_the_senders_and_a_modified_file_is_noticed() {
        let dir = std::env::temp_dir().join(format!("bb-digest-ahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("img");
        let g = Geometry::new(300_000, 1024, 64).unwrap();
        let mut img: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        img[65_536..131_072].fill(0);
        std::fs::write(&path, &img).unwrap();
        let entries: Vec<MapEntry> = (0..g.block_count())
            .map(|b| {
                let off = g.block_offset(b) as usize;
                let data = &img[off..off + g.block_len(b)];
                let zero = data.iter().all(|&x| x == 0);
                MapEntry {
                    kind: if zero {
                        crate::codec::Kind::Zero
                    } else {
                        crate::codec::Kind::Raw
                    },
                    coded_len: if zero { 0 } else { data.len() as u32 },
                    hash: crate::proto_link::content_hash(data),
                }
            })
            .collect();
        let f = File::open(&path).unwrap();
        let ahead = DigestAhead::start(&f, None, g, "img").unwrap();
        let got = loop {
            if let Some(r) = ahead.poll() {
                break r.unwrap().0;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(got, image_digest(&g, &entries));
        let watch = ImageWatch::of(&path).unwrap();
        assert!(watch.check().is_ok());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all_at(b"x", 10).unwrap();
        drop(w);
        let e = watch.check().unwrap_err();
        assert!(e.contains("was modified while it was served"), "{e}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        assert!(watch.check().unwrap_err().contains("changed size"));
        // A source that cannot be read (here: shorter than the session's image) names the
        // block and the cause.
        let f = File::open(&path).unwrap();
        let e = digest_of(&f, None, &g, "img").unwrap_err();
        assert!(
            e.starts_with("reading block 0 of img (byte 0) failed"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
