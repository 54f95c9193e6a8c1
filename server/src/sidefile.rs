//! The side file `IMAGE.bbmap` written by `--prepare`: the image's size and mtime, the
//! geometry and compression level it was made for, every block's kind, coded length and
//! content hash, and the image digest. Later runs use it to know the digest before the first
//! packet; it is trusted only after it matched the image.
//!
//! Layout (little-endian): magic `BBMAP\r\n\x1a`, version u32, image size u64, mtime seconds
//! i64 and nanoseconds u32, symbol size u32, k u32, zstd level i32 (0: off), block count
//! u32, digest [32]; per block: kind u8 (0 zero, 1 raw, 2 zstd), coded length u32, content
//! hash [32]; then a CRC-32 of everything before it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::codec::{Coded, Kind};

const MAGIC: &[u8; 8] = b"BBMAP\r\n\x1a";
/// Version of this layout; a file of another version is refused.
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8 + 4 + 4 + 4 + 4 + 4 + 32;
const ENTRY: usize = 1 + 4 + 32;

/// One block as prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub kind: Kind,
    pub coded_len: u32,
    pub hash: [u8; 32],
}

impl MapEntry {
    pub fn of(c: &Coded) -> Self {
        Self {
            kind: c.kind,
            coded_len: c.bytes.len() as u32,
            hash: c.hash,
        }
    }

    /// True when `c` is this block coded again.
    pub fn matches(&self, c: &Coded) -> bool {
        *self == Self::of(c)
    }
}

/// The file an image was prepared from, as it was then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_s: i64,
    pub mtime_ns: u32,
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec() as u32,
        }
    }
}

/// What the run needs to match for a side file to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub image_bytes: u64,
    pub symbol_size: u32,
    pub k: u32,
    pub level: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideMap {
    pub stamp: Stamp,
    pub params: Params,
    pub digest: [u8; 32],
    pub blocks: Vec<MapEntry>,
}

/// `IMAGE.bbmap` next to the image.
pub fn default_path(image: &Path) -> PathBuf {
    let mut p = image.as_os_str().to_owned();
    p.push(".bbmap");
    PathBuf::from(p)
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let v: [u8; N] = self.b[self.at..self.at + N]
            .try_into()
            .expect("length checked");
        self.at += N;
        v
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}

impl SideMap {
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let mut v = Vec::with_capacity(HEADER + self.blocks.len() * ENTRY + 4);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&VERSION.to_le_bytes());
        v.extend_from_slice(&p.image_bytes.to_le_bytes());
        v.extend_from_slice(&self.stamp.mtime_s.to_le_bytes());
        v.extend_from_slice(&self.stamp.mtime_ns.to_le_bytes());
        v.extend_from_slice(&p.symbol_size.to_le_bytes());
        v.extend_from_slice(&p.k.to_le_bytes());
        v.extend_from_slice(&p.level.unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        v.extend_from_slice(&self.digest);
        for e in &self.blocks {
            v.push(e.kind.code());
            v.extend_from_slice(&e.coded_len.to_le_bytes());
            v.extend_from_slice(&e.hash);
        }
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    /// Parses a side file; errors say what is wrong with it.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER + 4 || &b[..8] != MAGIC {
            return Err("not a broadband side file".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let mut c = Cursor { b, at: 8 };
        let version = c.u32();
        if version != VERSION {
            return Err(format!(
                "side file version {version}, this bb-server reads version {VERSION}"
            ));
        }
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err("the side file is damaged (checksum mismatch)".into());
        }
        let size = u64::from_le_bytes(c.take());
        let mtime_s = i64::from_le_bytes(c.take());
        let mtime_ns = c.u32();
        let symbol_size = c.u32();
        let k = c.u32();
        let level = i32::from_le_bytes(c.take());
        let count = c.u32() as usize;
        let digest = c.take::<32>();
        if body.len() != HEADER + count * ENTRY {
            return Err("the side file is truncated".into());
        }
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            let [kind] = c.take::<1>();
            let kind = Kind::from_code(kind)
                .ok_or_else(|| format!("the side file has a bad kind for block {i}"))?;
            blocks.push(MapEntry {
                kind,
                coded_len: c.u32(),
                hash: c.take(),
            });
        }
        Ok(Self {
            stamp: Stamp {
                size,
                mtime_s,
                mtime_ns,
            },
            params: Params {
                image_bytes: size,
                symbol_size,
                k,
                level: (level != 0).then_some(level),
            },
            digest,
            blocks,
        })
    }

    /// Writes the side file next to its final name, then renames it into place, so a
    /// reader never sees half a file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_bytes())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot write the side file {}: {e}", path.display())
            })
    }

    /// The side file at `path`, None when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(b) => Self::from_bytes(&b)
                .map(Some)
                .map_err(|e| format!("side file {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the side file {}: {e}", path.display())),
        }
    }

    /// Refuses a side file made for another image, another state of it, or other settings.
    /// The message names the fix.
    pub fn check(&self, stamp: &Stamp, params: &Params, image: &str) -> Result<(), String> {
        let fix = format!("run 'bb-server --prepare {image}' again, or pass --no-map");
        if self.stamp.size != stamp.size {
            return Err(format!(
                "the side file was made for {} bytes, the image has {}: {fix}",
                self.stamp.size, stamp.size
            ));
        }
        if (self.stamp.mtime_s, self.stamp.mtime_ns) != (stamp.mtime_s, stamp.mtime_ns) {
            return Err(format!(
                "the image was modified after the side file was made: {fix}"
            ));
        }
        let level = |l: Option<i32>| l.map_or("off".to_string(), |l| l.to_string());
        if self.params != *params {
            return Err(format!(
                "the side file was made with --symbol-size {} --block-symbols {} --compress {}, \
                 this run uses {} {} {}: {fix} with these options",
                self.params.symbol_size,
                self.params.k,
                level(self.params.level),
                params.symbol_size,
                params.k,
                level(params.level)
            ));
        }
        Ok(())
    }

    /// Blocks to spot-check against the image: the first, the last and `n` spread by a
    /// seed, so each run checks different ones.
    pub fn spot_blocks(&self, n: usize, seed: u64) -> Vec<u32> {
        let count = self.blocks.len() as u64;
        if count == 0 {
            return Vec::new();
        }
        let mut v = vec![0, (count - 1) as u32];
        let mut x = seed | 1;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x % count) as u32);
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SideMap {
        SideMap {
            stamp: Stamp {
                size: 3_000_000,
                mtime_s: 1_790_000_000,
                mtime_ns: 123_456_789,
            },
            params: Params {
                image_bytes: 3_000_000,
                symbol_size: 1408,
                k: 512,
                level: Some(3),
            },
            digest: [0xab; 32],
            blocks: (0..5u8)
                .map(|i| MapEntry {
                    kind: [Kind::Zero, Kind::Raw, Kind::Zstd][i as usize % 3],
                    coded_len: i as u32 * 1000,
                    hash: [i; 32],
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_through_a_file() {
        let m = sample();
        let p = std::env::temp_dir().join(format!(
            "bb-server-map-{}-{:x}.bbmap",
            std::process::id(),
            crate::sys::random_u64().unwrap()
        ));
        assert_eq!(SideMap::read(&p).unwrap(), None);
        m.write(&p).unwrap();
        assert_eq!(SideMap::read(&p).unwrap(), Some(m.clone()));
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            default_path(Path::new("/srv/golden.img")),
            PathBuf::from("/srv/golden.img.bbmap")
        );
    }

    #[test]
    fn damaged_and_foreign_files_are_refused() {
        let b = sample().to_bytes();
        let mut bad = b.clone();
        bad[HEADER + 3] ^= 1;
        assert!(SideMap::from_bytes(&bad).unwrap_err().contains("damaged"));
        assert!(
            SideMap::from_bytes(&b[..b.len() - 10])
                .unwrap_err()
                .contains("damaged")
        );
        let mut v2 = b.clone();
        v2[8] = 2;
        assert!(SideMap::from_bytes(&v2).unwrap_err().contains("version 2"));
        assert!(
            SideMap::from_bytes(b"hello world")
                .unwrap_err()
                .contains("not a")
        );
    }

    #[test]
    fn a_changed_image_or_other_settings_are_refused_naming_the_fix() {
        let m = sample();
        let (st, pa) = (m.stamp, m.params);
        assert!(m.check(&st, &pa, "g.img").is_ok());
        let grown = Stamp {
            size: st.size + 1,
            ..st
        };
        let e = m.check(&grown, &pa, "g.img").unwrap_err();
        assert!(e.contains("bytes") && e.contains("--prepare g.img"), "{e}");
        let touched = Stamp {
            mtime_ns: st.mtime_ns + 1,
            ..st
        };
        assert!(
            m.check(&touched, &pa, "g.img")
                .unwrap_err()
                .contains("modified")
        );
        let off = Params { level: None, ..pa };
        let e = m.check(&st, &off, "g.img").unwrap_err();
        assert!(e.contains("--compress 3") && e.contains("off"), "{e}");
        let spots = m.spot_blocks(10, 7);
        assert!(spots.contains(&0) && spots.contains(&4) && spots.len() <= 5);
    }
}
