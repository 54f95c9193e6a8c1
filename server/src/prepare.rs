//! `bb-server --prepare IMAGE`: code the whole image once and write its side file; and the
//! check a later run makes before it trusts one.

use std::path::Path;
use std::time::{Duration, Instant};

use bb_proto::wire::Geometry;

use crate::cli::{Coding, PrepareOptions, Source};
use crate::codec::{BlockCoder, Kind};
use crate::feeder::Feeder;
use crate::image::{self, Image, OpenPlan, Store};
use crate::proto_link::image_digest;
use crate::report::{end_progress_line, hex, human_bytes, human_duration, progress_line};
use crate::session::{EXIT_IMAGE, EXIT_INTERRUPTED, EXIT_OK};
use crate::sidefile::{MapEntry, Params, SideMap, Stamp};
use crate::sys;

/// Blocks re-read and compared, besides the first and the last, before a side file is used.
const SPOT_CHECKS: usize = 16;

/// The image's geometry for these coding options, or a message.
pub fn geometry(size: u64, coding: &Coding) -> Result<Geometry, String> {
    Geometry::new(size, coding.symbol_size, coding.block_symbols).map_err(|e| {
        format!("the image ({size} bytes) does not fit this geometry ({e}): raise --block-symbols")
    })
}

pub fn open_plan(coding: &Coding, quiet: bool) -> OpenPlan {
    OpenPlan {
        block_bytes: coding.symbol_size as usize * coding.block_symbols as usize,
        level: coding.level,
        symbol_size: coding.symbol_size,
        threads: coding.threads,
        quiet,
    }
}

/// The run's side-file parameters.
pub fn params(size: u64, coding: &Coding) -> Params {
    Params {
        image_bytes: size,
        symbol_size: coding.symbol_size,
        k: coding.block_symbols,
        level: coding.level,
    }
}

/// Stamp of the image file at `path`.
pub fn stamp(path: &Path) -> Result<Stamp, String> {
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Size and mtime tell a changed file from its side file; a block device's mtime does not
    // move when the disk is written, so a side file could not be trusted for it.
    if !m.is_file() {
        return Err(format!(
            "{} is not a regular file: side files are made and used for image files only \
             (a device's modification time does not change when it is written, so a side file \
             could not tell that it changed); serve the device without one (--no-map)",
            path.display()
        ));
    }
    Ok(Stamp::of(&m))
}

/// Runs `--prepare`; returns the exit code.
pub fn run(p: &PrepareOptions) -> i32 {
    sys::catch_signals();
    match prepare(p) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            say!("bb-server: {e}");
            if sys::interrupted() {
                EXIT_INTERRUPTED
            } else {
                EXIT_IMAGE
            }
        }
    }
}

fn prepare(p: &PrepareOptions) -> Result<(), String> {
    let before = stamp(&p.image)?;
    let img = image::open(
        &Source::Path(p.image.clone()),
        &open_plan(&p.coding, p.quiet),
    )?;
    let g = geometry(img.size, &p.coding)?;
    let map = code_all(&img, g, &p.coding, before, p.quiet)?;
    if stamp(&p.image)? != before {
        return Err(format!(
            "{} changed while it was being prepared; prepare it again when it is not written to",
            p.image.display()
        ));
    }
    map.write(&p.map)?;
    if !p.quiet {
        say!(
            "bb-server: wrote {} for {}: image digest {}",
            p.map.display(),
            img.name,
            hex(&map.digest)
        );
    }
    Ok(())
}

/// Codes every block of `img` and makes its side map; progress on stderr.
fn code_all(
    img: &Image,
    g: Geometry,
    coding: &Coding,
    stamp: Stamp,
    quiet: bool,
) -> Result<SideMap, String> {
    let mut f = Feeder::new(img, g, coding, None)?;
    let tty = !quiet && sys::stderr_is_tty();
    let start = Instant::now();
    let mut shown = start;
    let blocks = g.block_count();
    while !f.all_coded() {
        if sys::interrupted() {
            return Err("interrupted while preparing".into());
        }
        // The forward pass is pretend: everything taken is already coded.
        let known = f.known();
        f.pump(known, &mut |_, _| Ok(()))?;
        if f.known() == known {
            std::thread::sleep(Duration::from_micros(200));
        }
        let now = Instant::now();
        if !quiet
            && now.duration_since(shown) >= Duration::from_millis(if tty { 250 } else { 5000 })
        {
            shown = now;
            let done = f.known() as f64 / blocks as f64;
            let el = now.duration_since(start).as_secs_f64();
            let line = format!(
                "preparing: {:5.1}%  {:.0} MB/s  {} zero blocks, compressed to {:.2}  ETA {}",
                done * 100.0,
                f.stats.worked_bytes as f64 / el / 1e6,
                f.stats.zero_blocks,
                f.stats.ratio(),
                if done > 0.0 {
                    human_duration(el * (1.0 - done) / done)
                } else {
                    "?".into()
                }
            );
            progress_line(tty, &line);
        }
    }
    end_progress_line(tty);
    let entries: Vec<MapEntry> = (0..blocks)
        .map(|b| *f.entry(b).expect("every block coded"))
        .collect();
    if !quiet {
        let s = &f.stats;
        say!(
            "bb-server: {} blocks: {} zero, {} compressed, {} raw; {} of data coded to {} ({:.2}) in {}",
            blocks,
            s.zero_blocks,
            s.zstd_blocks,
            s.raw_blocks,
            human_bytes(s.data_bytes),
            human_bytes(s.coded_bytes),
            s.ratio(),
            human_duration(start.elapsed().as_secs_f64())
        );
    }
    Ok(SideMap {
        stamp,
        params: params(img.size, coding),
        digest: image_digest(&g, &entries),
        blocks: entries,
    })
}

/// Checks a side file against the image before it is used: its stamp and settings, then
/// blocks re-read and coded (all of them for a spooled image, whose blocks are known).
pub fn check_map(
    map: &SideMap,
    img: &Image,
    g: &Geometry,
    coding: &Coding,
    stamp: &Stamp,
    image_arg: &str,
) -> Result<(), String> {
    map.check(stamp, &params(img.size, coding), image_arg)?;
    let fix = format!("run 'bb-server --prepare {image_arg}' again, or pass --no-map");
    if map.blocks.len() != g.block_count() as usize {
        return Err(format!(
            "the side file has the wrong number of blocks: {fix}"
        ));
    }
    let differs = |b: u32| format!("block {b} of the image does not match the side file: {fix}");
    match &img.store {
        Store::Spooled(sp) => {
            for (b, (m, s)) in map.blocks.iter().zip(&sp.blocks).enumerate() {
                if (m.kind, m.coded_len, m.hash) != (s.kind, s.len, s.hash) {
                    return Err(differs(b as u32));
                }
            }
        }
        Store::Seekable { .. } => {
            let mut coder = BlockCoder::new(coding.level, coding.symbol_size)
                .map_err(|e| format!("zstd: {e}"))?;
            let seed = sys::random_u64().unwrap_or(1);
            for b in map.spot_blocks(SPOT_CHECKS, seed) {
                let c = img
                    .coded_block(g, &mut coder, b)
                    .map_err(|e| image::read_failed(&img.name, g, b, &e))?;
                let m = &map.blocks[b as usize];
                let same = if m.kind == Kind::Zero {
                    c.kind == Kind::Zero
                } else {
                    m.matches(&c)
                };
                if !same {
                    return Err(differs(b));
                }
            }
        }
    }
    if image_digest(g, &map.blocks) != map.digest {
        return Err(format!(
            "the side file's digest does not match its blocks: {fix}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_are_for_regular_files_only() {
        // A device's mtime does not move when it is written: no side file can be trusted.
        let e = stamp(Path::new("/dev/null")).unwrap_err();
        assert!(
            e.contains("not a regular file") && e.contains("--no-map"),
            "{e}"
        );
    }
    use std::os::unix::fs::FileExt;

    fn coding() -> Coding {
        Coding {
            level: Some(3),
            threads: 2,
            symbol_size: 256,
            block_symbols: 32,
        }
    }

    #[test]
    fn prepared_map_round_trips_and_a_changed_image_is_refused() {
        let dir = std::env::temp_dir().join(format!(
            "bb-server-prepare-{}-{:x}",
            std::process::id(),
            sys::random_u64().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("g.img");
        // 40 blocks of 8 KiB: every other one text, the rest zero; block 7 noise.
        let mut data = vec![0u8; 40 * 8192];
        for b in (1..40).step_by(2) {
            let t = format!("file {b} contents ");
            for (i, x) in data[b * 8192..(b + 1) * 8192].iter_mut().enumerate() {
                *x = t.as_bytes()[i % t.len()];
            }
        }
        let mut x = 3u64;
        for v in &mut data[7 * 8192..8 * 8192] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = x as u8;
        }
        std::fs::write(&p, &data).unwrap();
        let opts = PrepareOptions {
            image: p.clone(),
            map: crate::sidefile::default_path(&p),
            coding: coding(),
            quiet: true,
        };
        assert_eq!(run(&opts), EXIT_OK);
        let map = SideMap::read(&opts.map).unwrap().unwrap();
        assert_eq!(map.blocks.len(), 40);
        assert_eq!(
            map.blocks.iter().filter(|e| e.kind == Kind::Zero).count(),
            20
        );
        assert_eq!(map.blocks[7].kind, Kind::Raw);
        assert_eq!(map.blocks[9].kind, Kind::Zstd);

        let c = coding();
        let check = |map: &SideMap| {
            let img = image::open(&Source::Path(p.clone()), &open_plan(&c, true)).unwrap();
            let g = geometry(img.size, &c).unwrap();
            check_map(map, &img, &g, &c, &stamp(&p).unwrap(), "g.img")
        };
        check(&map).unwrap();
        // Another level: refused by its settings.
        let mut other = map.clone();
        other.params.level = Some(9);
        assert!(check(&other).unwrap_err().contains("--prepare g.img"));
        // A forged block hash with the same stamp: caught by the spot check (block 0 and
        // the last are always checked).
        let mut forged = map.clone();
        forged.blocks[39].hash[0] ^= 1;
        assert!(check(&forged).unwrap_err().contains("block 39"));
        // The image written to (same size): the mtime differs.
        std::thread::sleep(Duration::from_millis(20));
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"changed", 100).unwrap();
        drop(f);
        assert!(check(&map).unwrap_err().contains("modified"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
