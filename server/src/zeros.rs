//! Finding zero blocks: holes of sparse files (SEEK_DATA/SEEK_HOLE, no reads) and a fast
//! all-zero check of the bytes that were read.

use std::fs::File;
use std::io;

use crate::sys;

/// True when every byte of `buf` is zero. Words are OR-ed 64 bytes at a time (the compiler
/// vectorises the fold) and the scan stops at the first non-zero 4 KiB page.
pub fn is_zero(buf: &[u8]) -> bool {
    const PAGE: usize = 4096;
    let mut pages = buf.chunks_exact(PAGE);
    for page in &mut pages {
        let mut acc = 0u64;
        for w in page.chunks_exact(8) {
            acc |= u64::from_ne_bytes(w.try_into().expect("8 bytes"));
        }
        if acc != 0 {
            return false;
        }
    }
    pages.remainder().iter().all(|&b| b == 0)
}

/// Which blocks of a regular file may hold data, from its data extents (SEEK_DATA and
/// SEEK_HOLE): a block that lies wholly in a hole is zero and need not be read.
#[derive(Clone, Debug)]
pub struct HoleMap {
    /// One bit per block: set when some extent touches the block.
    has_data: Vec<u64>,
}

impl HoleMap {
    /// The map of `file` (of `size` bytes) in blocks of `block_bytes`; None when the
    /// filesystem does not report holes (then every block is read and checked).
    pub fn of_file(file: &File, size: u64, block_bytes: u64) -> io::Result<Option<Self>> {
        let blocks = size.div_ceil(block_bytes) as usize;
        let mut has_data = vec![0u64; blocks.div_ceil(64)];
        let mut at = 0u64;
        while at < size {
            let start = match sys::seek_data(file, at) {
                Ok(Some(s)) if s < size => s,
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(None),
                Err(e) => return Err(e),
            };
            let end = match sys::seek_hole(file, start) {
                Ok(Some(h)) => h.min(size),
                Ok(None) => size,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(None),
                Err(e) => return Err(e),
            };
            if end <= start {
                // The file changed under us: treat the rest as data.
                mark(&mut has_data, start / block_bytes, blocks as u64);
                break;
            }
            mark(
                &mut has_data,
                start / block_bytes,
                (end - 1) / block_bytes + 1,
            );
            at = end;
        }
        Ok(Some(Self { has_data }))
    }

    /// True when block `b` lies wholly in holes.
    pub fn is_hole(&self, b: u32) -> bool {
        let i = b as usize;
        self.has_data
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) == 0)
    }
}

/// Sets the bits of blocks `from..to`.
fn mark(bits: &mut [u64], from: u64, to: u64) {
    let to = to.min(bits.len() as u64 * 64);
    for b in from..to {
        bits[(b / 64) as usize] |= 1 << (b % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zero_check_sees_one_set_bit_anywhere() {
        for len in [0usize, 1, 7, 4095, 4096, 4097, 720_896, 720_900] {
            let mut v = vec![0u8; len];
            assert!(is_zero(&v), "{len}");
            for at in [0, len / 3, len.saturating_sub(1)] {
                if at < len {
                    v[at] = 0x10;
                    assert!(!is_zero(&v), "{len} {at}");
                    v[at] = 0;
                }
            }
        }
    }

    #[test]
    fn holes_of_a_sparse_file_are_found_without_reading() {
        let p = std::env::temp_dir().join(format!(
            "bb-server-holes-{}-{:x}",
            std::process::id(),
            sys::random_u64().unwrap()
        ));
        let bs = 1u64 << 20; // filesystems allocate in 4 KiB units at most this coarse
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap();
        f.set_len(64 * bs).unwrap();
        // Data in blocks 3, 10..=11 (spanning the boundary) and the last one.
        f.write_all_at(b"x", 3 * bs + 100).unwrap();
        f.write_all_at(&[1u8; 8192], 11 * bs - 4096).unwrap();
        f.write_all_at(b"end", 64 * bs - 3).unwrap();
        f.sync_all().unwrap();
        let Some(map) = HoleMap::of_file(&f, 64 * bs, bs).unwrap() else {
            eprintln!("this filesystem does not report holes; nothing to check");
            std::fs::remove_file(&p).unwrap();
            return;
        };
        let data: Vec<u32> = (0..64).filter(|&b| !map.is_hole(b)).collect();
        assert_eq!(data, vec![3, 10, 11, 63]);
        // A file without holes: nothing is a hole.
        f.write_all_at(&vec![2u8; (64 * bs) as usize], 0).unwrap();
        let full = HoleMap::of_file(&f, 64 * bs, bs).unwrap().unwrap();
        assert!((0..64).all(|b| !full.is_hole(b)));
        std::fs::remove_file(&p).unwrap();
    }
}
