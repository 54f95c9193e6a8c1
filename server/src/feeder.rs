//! The image's blocks for the session: coded on the worker threads ahead of the forward
//! pass, told to the sender in block order, and kept (or coded again) for sending.

use std::sync::Arc;
use std::time::Instant;

use bb_proto::wire::Geometry;

use crate::cli::Coding;
use crate::codec::{BlockCoder, Coded, Kind};
use crate::image::{CodedCache, Image, Store, read_and_code, read_failed};
use crate::pool::{Job, Pool, Work};
use crate::sidefile::{MapEntry, SideMap};

/// Blocks kept for repairs besides those prepared ahead.
const REPAIR_SLOTS: usize = 8;

/// How the blocks coded so far came out.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CodingStats {
    pub zero_blocks: u64,
    pub raw_blocks: u64,
    pub zstd_blocks: u64,
    /// Image bytes of the non-zero blocks.
    pub data_bytes: u64,
    /// Their coded bytes (before padding).
    pub coded_bytes: u64,
    /// Image bytes the workers read and coded (zero blocks included).
    pub worked_bytes: u64,
    /// Seconds the workers spent, summed over them.
    pub busy_s: f64,
    /// Seconds from the first block queued until the last was taken (paced by the sender
    /// in a session, whose forward pass the workers stay a few blocks ahead of).
    pub wall_s: f64,
    pub threads: usize,
}

impl CodingStats {
    fn add(&mut self, e: &MapEntry, len: usize) {
        match e.kind {
            Kind::Zero => self.zero_blocks += 1,
            Kind::Raw => self.raw_blocks += 1,
            Kind::Zstd => self.zstd_blocks += 1,
        }
        if e.kind != Kind::Zero {
            self.data_bytes += len as u64;
            self.coded_bytes += e.coded_len as u64;
        }
    }

    /// Coded bytes per image byte of the non-zero blocks.
    pub fn ratio(&self) -> f64 {
        if self.data_bytes == 0 {
            1.0
        } else {
            self.coded_bytes as f64 / self.data_bytes as f64
        }
    }

    /// MB/s of image one worker codes.
    pub fn per_core_mb_s(&self) -> f64 {
        if self.busy_s > 0.0 {
            self.worked_bytes as f64 / self.busy_s / 1e6
        } else {
            0.0
        }
    }

    /// MB/s of image all workers coded together.
    pub fn all_cores_mb_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.worked_bytes as f64 / self.wall_s / 1e6
        } else {
            0.0
        }
    }
}

pub struct Feeder {
    geometry: Geometry,
    /// The image's name, for messages.
    image_name: String,
    pool: Option<Pool>,
    /// Next block to queue on the pool.
    next_submit: u32,
    /// Next block to take from the pool.
    next_take: u32,
    /// Blocks taken from the pool before the forward pass needs them, at most.
    ahead: u32,
    /// What each block is, once known (all at once from a side file or spool).
    entries: Vec<MapEntry>,
    /// True when `entries` came from a side file: pool results are checked against it.
    from_map: bool,
    cache: CodedCache,
    /// Codes blocks again on a cache miss.
    coder: BlockCoder,
    pub stats: CodingStats,
    /// When the first block was queued on the workers.
    start: Option<Instant>,
}

impl Feeder {
    /// Starts coding `image` (workers for a seekable image; a spooled one is coded already).
    /// `map` is a side file already checked against the image.
    pub fn new(
        image: &Image,
        geometry: Geometry,
        coding: &Coding,
        map: Option<SideMap>,
    ) -> Result<Self, String> {
        let threads = coding.threads.max(1);
        let ahead = 2 * threads as u32 + 4;
        let coder =
            BlockCoder::new(coding.level, coding.symbol_size).map_err(|e| format!("zstd: {e}"))?;
        let pool = match &image.store {
            Store::Seekable { file, holes } => {
                let file = file
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", image.name))?;
                let holes = holes.clone();
                let work: Arc<Work> = Arc::new(move |c: &mut BlockCoder, job: Job| match job {
                    Job::Read(b) => read_and_code(&file, holes.as_ref(), &geometry, c, b),
                    Job::Bytes(_, d) => Ok(c.code(d)),
                });
                let (level, ss) = (coding.level, coding.symbol_size);
                Some(
                    Pool::new(threads, ahead as usize, || BlockCoder::new(level, ss), work)
                        .map_err(|e| format!("cannot start the compression threads: {e}"))?,
                )
            }
            Store::Spooled(_) => None,
        };
        let mut stats = CodingStats {
            threads: pool.as_ref().map_or(0, Pool::threads),
            ..CodingStats::default()
        };
        let (entries, from_map) = match (&image.store, map) {
            (_, Some(m)) => (m.blocks, true),
            (Store::Spooled(sp), None) => (
                sp.blocks
                    .iter()
                    .map(|e| MapEntry {
                        kind: e.kind,
                        coded_len: e.len,
                        hash: e.hash,
                    })
                    .collect(),
                false,
            ),
            (Store::Seekable { .. }, None) => (Vec::new(), false),
        };
        if pool.is_none() {
            for (b, e) in entries.iter().enumerate() {
                stats.add(e, geometry.block_len(b as u32));
            }
        }
        Ok(Self {
            geometry,
            image_name: image.name.clone(),
            pool,
            next_submit: 0,
            next_take: 0,
            ahead,
            entries,
            from_map,
            cache: CodedCache::new(coding.symbol_size, ahead as usize + REPAIR_SLOTS),
            coder,
            stats,
            start: None,
        })
    }

    /// Blocks whose kind is known (given to the sender, or to be given by `give_known`).
    pub fn known(&self) -> u32 {
        self.entries.len() as u32
    }

    /// What block `b` is, once known.
    pub fn entry(&self, b: u32) -> Option<&MapEntry> {
        self.entries.get(b as usize)
    }

    /// All blocks known at the start (side file, spool), in order.
    pub fn known_at_start(&self) -> &[MapEntry] {
        if self.pool.is_some() && !self.from_map {
            &[]
        } else {
            &self.entries
        }
    }

    /// Keeps the workers busy and takes their results in order while the forward pass
    /// (at `forward_done`) is less than `ahead` blocks behind. Each block first known here
    /// is passed to `give`, in order. Never waits.
    pub fn pump(
        &mut self,
        forward_done: u32,
        give: &mut dyn FnMut(u32, &MapEntry) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let blocks = self.geometry.block_count();
        let start = *self.start.get_or_insert_with(Instant::now);
        while self.next_submit < blocks {
            match pool.try_submit(Job::Read(self.next_submit)) {
                Ok(()) => self.next_submit += 1,
                Err(_) => break,
            }
        }
        while self.next_take < blocks && self.next_take < forward_done.saturating_add(self.ahead) {
            let Some((b, r)) = pool.try_next() else {
                break;
            };
            let len = self.geometry.block_len(b);
            let c = r.map_err(|e| read_failed(&self.image_name, &self.geometry, b, &e))?;
            let e = MapEntry::of(&c);
            if self.from_map {
                self.check(b, &c)?;
            } else {
                give(b, &e)?;
                self.entries.push(e);
            }
            self.stats.add(&e, len);
            self.stats.worked_bytes += len as u64;
            if c.kind != Kind::Zero {
                self.cache.insert(b, c.bytes);
            }
            self.next_take += 1;
            if self.next_take == blocks {
                self.stats.wall_s = start.elapsed().as_secs_f64();
            }
            // Blocks may be submitted again now that one was taken.
            while self.next_submit < blocks && pool.try_submit(Job::Read(self.next_submit)).is_ok()
            {
                self.next_submit += 1;
            }
        }
        self.stats.busy_s = pool.busy_s();
        Ok(())
    }

    /// True once every block was coded and taken (or known from the start).
    pub fn all_coded(&self) -> bool {
        self.pool.is_none() || self.next_take == self.geometry.block_count()
    }

    /// A re-coded block must be what the sender was told.
    fn check(&self, b: u32, c: &Coded) -> Result<(), String> {
        match self.entries.get(b as usize) {
            Some(e) if e.matches(c) => Ok(()),
            Some(_) if self.from_map => Err(format!(
                "block {b} of the image differs from its side file: the image changed after \
                 --prepare; run --prepare again"
            )),
            Some(_) => Err(format!(
                "block {b} of the image changed while it was being sent"
            )),
            None => Err(format!("block {b} was not coded yet (internal error)")),
        }
    }

    /// Block `b`'s coded bytes padded to whole symbols: kept, or read and coded again.
    pub fn coded(&mut self, image: &Image, b: u32) -> Result<&[u8], String> {
        if self.cache.get(b).is_none() {
            let known = self.entries.get(b as usize).map(|e| e.kind);
            let c = image
                .coded_block_as(&self.geometry, &mut self.coder, b, known)
                .map_err(|e| read_failed(&image.name, &self.geometry, b, &e))?;
            self.check(b, &c)?;
            self.cache.insert(b, c.bytes);
        }
        Ok(self.cache.get(b).expect("just inserted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Source;
    use crate::image::{OpenPlan, open};
    use crate::proto_link::content_hash;

    /// 30 blocks of 16 KiB: zero, text or noise by block.
    fn image_file() -> (std::path::PathBuf, Vec<u8>) {
        let bb = 16 * 1024;
        let mut v = Vec::new();
        let mut x = 7u64;
        for b in 0..30 {
            match b % 3 {
                0 => v.extend(std::iter::repeat_n(0u8, bb)),
                1 => v.extend(format!("{b} words ").bytes().cycle().take(bb)),
                _ => v.extend((0..bb).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })),
            }
        }
        v.truncate(v.len() - 100);
        let p = std::env::temp_dir().join(format!(
            "bb-server-feeder-{}-{:x}",
            std::process::id(),
            crate::sys::random_u64().unwrap()
        ));
        std::fs::write(&p, &v).unwrap();
        (p, v)
    }

    fn coding() -> Coding {
        Coding {
            level: Some(3),
            threads: 2,
            symbol_size: 256,
            block_symbols: 64,
        }
    }

    #[test]
    fn blocks_are_given_in_order_and_sent_from_cache_or_coded_again() {
        let (p, data) = image_file();
        let c = coding();
        let img = open(
            &Source::Path(p.clone()),
            &OpenPlan {
                block_bytes: 16 * 1024,
                level: c.level,
                symbol_size: c.symbol_size,
                threads: c.threads,
                quiet: true,
            },
        )
        .unwrap();
        let g = Geometry::new(img.size, c.symbol_size, c.block_symbols).unwrap();
        let mut f = Feeder::new(&img, g, &c, None).unwrap();
        assert!(f.known_at_start().is_empty());
        let mut given = Vec::new();
        let mut forward = 0;
        let t = Instant::now();
        while !f.all_coded() {
            f.pump(forward, &mut |b, e| {
                given.push((b, *e));
                Ok(())
            })
            .unwrap();
            // The forward pass follows the blocks given, never ahead of them.
            forward = given.len() as u32;
            assert!(t.elapsed().as_secs() < 60);
        }
        assert_eq!(given.len(), 30);
        for (i, (b, e)) in given.iter().enumerate() {
            assert_eq!(*b, i as u32);
            let chunk = &data[i * 16384..(data.len()).min((i + 1) * 16384)];
            let want = [Kind::Zero, Kind::Zstd, Kind::Raw][i % 3];
            assert_eq!(e.kind, want, "block {i}");
            if want != Kind::Zero {
                assert_eq!(e.hash, content_hash(chunk));
            }
        }
        assert_eq!(f.stats.zero_blocks, 10);
        assert!(f.stats.ratio() < 0.6 && f.stats.per_core_mb_s() > 0.0);
        // Every block is served, from the cache or coded again, padded to symbols.
        for b in (0..30).rev() {
            let e = *f.entry(b).unwrap();
            if e.kind == Kind::Zero {
                continue;
            }
            let bytes = f.coded(&img, b).unwrap();
            assert_eq!(bytes.len(), (e.coded_len as usize).div_ceil(256) * 256);
        }
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_read_error_names_the_image_the_block_and_its_byte() {
        let (p, _) = image_file();
        let c = coding();
        let g = Geometry::new(30 * 16384 - 100, c.symbol_size, c.block_symbols).unwrap();
        // A handle that cannot read: every read of the source fails (EBADF here; EIO from a
        // failing disk takes the same path).
        let bad = Image {
            store: Store::Seekable {
                file: std::fs::OpenOptions::new().write(true).open(&p).unwrap(),
                holes: None,
            },
            size: g.image_size,
            name: "bad.img".into(),
        };
        let mut f = Feeder::new(&bad, g, &c, None).unwrap();
        let t = Instant::now();
        let e = loop {
            match f.pump(0, &mut |_, _| Ok(())) {
                Err(e) => break e,
                Ok(()) => {
                    assert!(t.elapsed().as_secs() < 60, "no read error within 60 s");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        assert!(
            e.starts_with("reading block 0 of bad.img (byte 0) failed: "),
            "{e}"
        );
        let e = f.coded(&bad, 3).unwrap_err();
        let want = format!("reading block 3 of bad.img (byte {}) failed: ", 3 * 16384);
        assert!(e.starts_with(&want), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
