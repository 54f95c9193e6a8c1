//! Load only the drivers this machine's hardware needs, like udev's coldplug: match every
//! device's `modalias` (under /sys/bus/*/devices/*) against the aliases of the modules in the
//! initramfs, load the matching modules with their dependencies, and rescan (a bus driver such
//! as virtio_pci creates the devices the next driver binds to) until nothing new matches.
//! Loading all 40 default modules costs 2.5 s of a 6.5 s boot under QEMU TCG; most machines
//! need 5 to 10 of them.
//!
//! Files written by initramfs/build.sh:
//! - `/lib/modules/bb-modules.alias`: `PATTERN MODULE` per line (fnmatch patterns from
//!   modules.alias, for the modules asked for);
//! - `/lib/modules/bb-modules.deps`: `MODULE PATH...` per line, the files to load for that
//!   module in order (dependencies first, the module last); a leading `*` on MODULE means
//!   "load always" (class drivers like sd_mod, whose devices appear asynchronously).
//!
//! Without these files, [`super::sys::load_modules`] loads the whole order list. No heap.

use super::sys::{self, Line, ModError};
use super::syscalls;
use crate::fmt::Buf;
use crate::os;
use core::ffi::CStr;

pub const ALIAS_FILE: &[u8] = b"/lib/modules/bb-modules.alias";
pub const DEPS_FILE: &[u8] = b"/lib/modules/bb-modules.deps";

const MAX_LOADED: usize = 256;

/// A set of byte strings, kept as FNV-1a hashes (at most [`MAX_LOADED`]; more are not kept).
pub struct HashSet {
    hashes: [u64; MAX_LOADED],
    len: usize,
}

impl HashSet {
    pub const fn new() -> HashSet {
        HashSet {
            hashes: [0; MAX_LOADED],
            len: 0,
        }
    }
    pub fn contains(&self, s: &[u8]) -> bool {
        self.hashes[..self.len].contains(&fnv(s))
    }
    pub fn insert(&mut self, s: &[u8]) {
        if self.len < MAX_LOADED {
            self.hashes[self.len] = fnv(s);
            self.len += 1;
        }
    }
}

/// What has been loaded so far: module paths and module names.
pub struct Loaded {
    paths: HashSet,
    names: HashSet,
    pub ok: u32,
    pub failed: u32,
}

pub fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in s {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Loaded {
    pub const fn new() -> Loaded {
        Loaded {
            paths: HashSet::new(),
            names: HashSet::new(),
            ok: 0,
            failed: 0,
        }
    }
}

/// True if `pattern` (shell glob) matches `s`. Both are copied to NUL-terminated buffers.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let mut p = [0u8; 256];
    let mut t = [0u8; 256];
    if pattern.len() >= p.len() || s.len() >= t.len() {
        return false;
    }
    p[..pattern.len()].copy_from_slice(pattern);
    t[..s.len()].copy_from_slice(s);
    match (
        CStr::from_bytes_until_nul(&p),
        CStr::from_bytes_until_nul(&t),
    ) {
        (Ok(p), Ok(t)) => syscalls::fnmatch(p, t),
        _ => false,
    }
}

/// The modules whose alias patterns match `modalias`: calls `f(module)` for each matching line.
pub fn matching_modules(aliases: &[u8], modalias: &[u8], mut f: impl FnMut(&[u8])) {
    for line in aliases.split(|&c| c == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let mut it = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
        let (Some(pat), Some(name)) = (it.next(), it.next()) else {
            continue;
        };
        if glob_match(pat, modalias) {
            f(name);
        }
    }
}

/// The deps line of module `name`: (always, paths-part). None if absent.
pub fn deps_of<'a>(deps: &'a [u8], name: &[u8]) -> Option<(bool, &'a [u8])> {
    for line in deps.split(|&c| c == b'\n') {
        let line = line.trim_ascii();
        let sp = match line.iter().position(|&c| c == b' ') {
            Some(i) => i,
            None => continue,
        };
        let (first, rest) = (&line[..sp], &line[sp + 1..]);
        let (always, n) = if first.first() == Some(&b'*') {
            (true, &first[1..])
        } else {
            (false, first)
        };
        if n == name {
            return Some((always, rest));
        }
    }
    None
}

fn insmod(path: &[u8], st: &mut Loaded) {
    if path.is_empty() || st.paths.contains(path) {
        return;
    }
    st.paths.insert(path);
    match sys::load_module(path) {
        Ok(()) => st.ok += 1,
        // CPU-feature module, not needed here
        Err(ModError::BadPath | ModError::Open(libc::ENODEV) | ModError::Load(libc::ENODEV)) => {
            st.failed += 1
        }
        Err(ModError::Open(e) | ModError::Load(e)) => {
            st.failed += 1;
            Line::new()
                .s("init: module ")
                .b(path)
                .s(" not loaded")
                .errno(e)
                .emit();
        }
    }
}

/// Loads module `name` (its dependencies first). Returns true if it was new.
fn load_name(deps: &[u8], name: &[u8], st: &mut Loaded) -> bool {
    if st.names.contains(name) {
        return false;
    }
    st.names.insert(name);
    if let Some((_, paths)) = deps_of(deps, name) {
        for p in paths.split(|&c| c == b' ') {
            insmod(p, st);
        }
    }
    true
}

/// One pass over /sys/bus/*/devices/*/modalias. Returns true if a new module was loaded.
fn scan(aliases: &[u8], deps: &[u8], st: &mut Loaded) -> bool {
    let mut changed = false;
    sys::for_each_dirent(b"/sys/bus", |bus| {
        if bus.is_empty() || bus[0] == b'.' {
            return;
        }
        let mut dpath = Buf::<128>::new();
        dpath.bytes(b"/sys/bus/").bytes(bus).bytes(b"/devices");
        if dpath.truncated() {
            return;
        }
        sys::for_each_dirent(dpath.as_bytes(), |dev| {
            if dev.is_empty() || dev[0] == b'.' {
                return;
            }
            let mut mpath = Buf::<256>::new();
            mpath
                .bytes(dpath.as_bytes())
                .bytes(b"/")
                .bytes(dev)
                .bytes(b"/modalias");
            if mpath.truncated() {
                return;
            }
            let mut ma = [0u8; 256];
            let Ok(len) = os::read_file(mpath.as_bytes(), &mut ma) else {
                return;
            };
            let alias = ma[..len].trim_ascii();
            if alias.is_empty() {
                return;
            }
            matching_modules(aliases, alias, |name| {
                if load_name(deps, name, st) {
                    changed = true;
                }
            });
        });
    });
    changed
}

/// Loads the "always" modules, then the modules matching the hardware, rescanning until
/// nothing new matches twice in a row. Returns None when the initramfs has no alias/deps
/// files (the caller then loads the whole list), else (loaded, skipped).
pub fn load_for_hardware() -> Option<(u32, u32)> {
    // 80 KiB on the stack, once (the main thread's stack is 8 MiB).
    let mut aliases = [0u8; 65536];
    let mut deps = [0u8; 16384];
    let na = os::read_file(ALIAS_FILE, &mut aliases).ok()?;
    let nd = os::read_file(DEPS_FILE, &mut deps).ok()?;
    if na == aliases.len() || nd == deps.len() {
        Line::new()
            .s("init: module lists too long, loading all modules")
            .emit();
        return None;
    }
    let (aliases, deps) = (&aliases[..na], &deps[..nd]);
    let mut st = Loaded::new();
    for line in deps.split(|&c| c == b'\n') {
        let line = line.trim_ascii();
        if line.first() == Some(&b'*') {
            let end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
            load_name(deps, &line[1..end], &mut st);
        }
    }
    let mut idle = 0;
    for _ in 0..50 {
        if scan(aliases, deps, &mut st) {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= 2 {
            break;
        }
        syscalls::sleep_ms(50);
    }
    Some((st.ok, st.failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIASES: &[u8] = b"# PATTERN MODULE\npci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nvirtio:d00000001v* virtio_net\nvirtio:d00000002v* virtio_blk\npci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n";
    const DEPS: &[u8] = b"virtio_pci /m/virtio_ring.ko /m/virtio.ko /m/virtio_pci.ko\nvirtio_net /m/virtio_ring.ko /m/virtio.ko /m/failover.ko /m/virtio_net.ko\n*sd_mod /m/scsi_mod.ko /m/sd_mod.ko\n";

    fn matches(alias: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        matching_modules(ALIASES, alias, |n| v.push(n.to_vec()));
        v
    }

    #[test]
    fn alias_matching() {
        assert_eq!(
            matches(b"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            vec![b"virtio_pci".to_vec()]
        );
        assert_eq!(
            matches(b"virtio:d00000001v00001AF4"),
            vec![b"virtio_net".to_vec()]
        );
        assert_eq!(
            matches(b"virtio:d00000002v00001AF4"),
            vec![b"virtio_blk".to_vec()]
        );
        assert_eq!(
            matches(b"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"),
            vec![b"e1000".to_vec()]
        );
        assert!(matches(b"pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00").is_empty());
        assert!(matches(b"").is_empty());
    }

    #[test]
    fn deps_lookup() {
        assert_eq!(
            deps_of(DEPS, b"virtio_pci"),
            Some((
                false,
                &b"/m/virtio_ring.ko /m/virtio.ko /m/virtio_pci.ko"[..]
            ))
        );
        assert_eq!(
            deps_of(DEPS, b"sd_mod"),
            Some((true, &b"/m/scsi_mod.ko /m/sd_mod.ko"[..]))
        );
        assert_eq!(deps_of(DEPS, b"virtio"), None);
        assert_eq!(deps_of(DEPS, b"nvme"), None);
    }

    #[test]
    fn loaded_set() {
        let mut st = Loaded::new();
        assert!(!st.names.contains(b"x"));
        st.names.insert(b"x");
        assert!(st.names.contains(b"x"));
        st.paths.insert(b"/m/a.ko");
        assert!(st.paths.contains(b"/m/a.ko"));
        assert!(!st.paths.contains(b"/m/b.ko"));
        assert!(glob_match(b"a*c", b"abbc"));
        assert!(!glob_match(b"a*c", b"abbd"));
    }
}
