//! The target disk chosen by rule, from sysfs alone (the imaging initramfs has no udev):
//! - `auto`: the one internal (not USB), non-removable, writable whole disk at least as large
//!   as the image; none or several is refused with every candidate named (size and model);
//! - a list `/dev/nvme0n1,/dev/sda`: the first that exists;
//! - `/dev/disk/by-id/NAME`: the link itself when udev made it, else NAME rebuilt from sysfs
//!   as udev's 60-persistent-storage rules build it for this subset:
//!   `virtio-SERIAL` (vd*), `nvme-MODEL_SERIAL` and `nvme-WWID` (nvme*n*), `wwn-0xNAA`
//!   (any disk whose device/wwid is `naa.`). ATA's `ata-MODEL_SERIAL` needs the IDENTIFY
//!   data udev reads by ioctl and is not rebuilt: use a wwn- name or a /dev name there.
//!
//! No heap: names, models and the candidate list are fixed arrays.

use crate::fmt::Buf;
use crate::init::cmdline::{DEV_MAX, FixedStr};
use crate::init::sys::{exists, for_each_dirent};
use crate::os::{self, CPath};
use core::fmt::Write;

/// A device path such as `/dev/nvme0n1`.
pub type DevPath = FixedStr<DEV_MAX>;

/// Where the kernel lists whole disks.
pub const SYS_BLOCK: &[u8] = b"/sys/block";

/// Disks considered at most (more are counted and said so).
pub const MAX_DISKS: usize = 16;
const NAME_MAX: usize = 32;
const MODEL_MAX: usize = 48;
const BY_ID: &[u8] = b"/dev/disk/by-id/";

/// One whole disk of /sys/block.
#[derive(Clone, Copy, Debug)]
pub struct Disk {
    name: [u8; NAME_MAX],
    name_len: usize,
    pub size: u64,
    model: [u8; MODEL_MAX],
    model_len: usize,
    /// Removable, read-only or on USB: never chosen by `auto`.
    pub external_or_ro: bool,
}

impl Disk {
    const EMPTY: Disk = Disk {
        name: [0; NAME_MAX],
        name_len: 0,
        size: 0,
        model: [0; MODEL_MAX],
        model_len: 0,
        external_or_ro: false,
    };
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
    pub fn model(&self) -> &[u8] {
        &self.model[..self.model_len]
    }
    /// `/dev/NAME`.
    pub fn dev_path(&self) -> DevPath {
        let mut b = Buf::<DEV_MAX>::new();
        b.bytes(b"/dev/").bytes(self.name());
        DevPath::from_bytes(b.as_bytes()).unwrap_or(DevPath::new())
    }
}

/// The whole disks found in a sysfs block directory.
pub struct Disks {
    list: [Disk; MAX_DISKS],
    n: usize,
    /// Disks beyond MAX_DISKS, not listed.
    pub more: usize,
}

impl Disks {
    pub fn all(&self) -> &[Disk] {
        &self.list[..self.n]
    }
    /// The disks `auto` may choose from, whatever their size.
    pub fn internal(&self) -> impl Iterator<Item = &Disk> {
        self.all()
            .iter()
            .filter(|d| !d.external_or_ro && d.size > 0)
    }
}

/// Block devices that are never a machine's disk: loop, RAM and optical drives, compressed
/// swap, software RAID and device-mapper volumes, network block devices, floppies, eMMC boot
/// and RPMB areas.
pub fn is_disk_name(name: &[u8]) -> bool {
    const NOT: [&[u8]; 9] = [
        b"loop",
        b"ram",
        b"sr",
        b"zram",
        b"md",
        b"dm-",
        b"nbd",
        b"fd",
        b"mtdblock",
    ];
    !(name.is_empty()
        || name[0] == b'.'
        || name.len() >= NAME_MAX
        || NOT.iter().any(|p| name.starts_with(p))
        || (name.starts_with(b"mmcblk") && (contains(name, b"boot") || contains(name, b"rpmb"))))
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// `root/name/rel` into a path buffer.
fn path(root: &[u8], name: &[u8], rel: &[u8]) -> Buf<256> {
    let mut p = Buf::<256>::new();
    p.bytes(root).bytes(b"/").bytes(name);
    if !rel.is_empty() {
        p.bytes(b"/").bytes(rel);
    }
    p
}

/// A small sysfs attribute, surrounding whitespace removed (empty if absent).
fn attr<'b>(root: &[u8], name: &[u8], rel: &[u8], buf: &'b mut [u8; 128]) -> &'b [u8] {
    let p = path(root, name, rel);
    let n = os::read_file(p.as_bytes(), buf).unwrap_or(0);
    buf[..n].trim_ascii()
}

fn attr_u64(root: &[u8], name: &[u8], rel: &[u8]) -> Option<u64> {
    let mut b = [0u8; 128];
    let v = attr(root, name, rel, &mut b);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |a, &c| {
        a.checked_mul(10)?.checked_add((c - b'0') as u64)
    })
}

/// Whether the device behind `root/name` hangs off a USB bus (the link's target says so).
fn on_usb(root: &[u8], name: &[u8]) -> bool {
    let p = path(root, name, b"");
    let Some(c) = CPath::new(p.as_bytes()) else {
        return false;
    };
    let mut out = [0u8; 512];
    os::readlink(&c, &mut out).is_ok_and(|n| contains(&out[..n], b"/usb"))
}

/// Every whole disk under `root` (normally /sys/block), sorted by name.
pub fn scan(root: &[u8]) -> Disks {
    let mut d = Disks {
        list: [Disk::EMPTY; MAX_DISKS],
        n: 0,
        more: 0,
    };
    for_each_dirent(root, |name| {
        if !is_disk_name(name) {
            return;
        }
        if d.n == MAX_DISKS {
            d.more += 1;
            return;
        }
        let mut disk = Disk::EMPTY;
        disk.name[..name.len()].copy_from_slice(name);
        disk.name_len = name.len();
        // `size` counts 512-byte sectors whatever the logical block size.
        disk.size = attr_u64(root, name, b"size")
            .unwrap_or(0)
            .saturating_mul(512);
        disk.external_or_ro = attr_u64(root, name, b"removable") == Some(1)
            || attr_u64(root, name, b"ro") == Some(1)
            || on_usb(root, name);
        let mut b = [0u8; 128];
        let mut m = attr(root, name, b"device/model", &mut b);
        if m.is_empty() {
            m = attr(root, name, b"serial", &mut b);
        }
        let m = &m[..m.len().min(MODEL_MAX)];
        disk.model[..m.len()].copy_from_slice(m);
        disk.model_len = m.len();
        d.list[d.n] = disk;
        d.n += 1;
    });
    d.list[..d.n].sort_unstable_by(|a, b| a.name().cmp(b.name()));
    d
}

/// Why `auto` chose nothing; [`AutoError::explain`] names every candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoError {
    /// No internal writable disk is at least as large as the image.
    NoneFits,
    /// More than one is.
    Several(usize),
}

/// `auto`: the one internal, non-removable, writable disk of at least `image_size` bytes.
pub fn choose_auto(disks: &Disks, image_size: u64) -> Result<Disk, AutoError> {
    // Disks beyond the ones listed were never looked at: any of them may fit, so no choice
    // among the listed ones can be known to be the only one.
    if disks.more > 0 {
        return Err(AutoError::Several(disks.n + disks.more));
    }
    let mut fits = disks.internal().filter(|d| d.size >= image_size);
    match (fits.next(), fits.count()) {
        (Some(d), 0) => Ok(*d),
        (None, _) => Err(AutoError::NoneFits),
        (Some(_), more) => Err(AutoError::Several(more + 1)),
    }
}

/// `80 MiB` / `476 GiB`: sizes as an operator reads them off a label.
struct Size(u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const MIB: u64 = 1 << 20;
        if self.0 >= 10 << 30 {
            write!(f, "{} GiB", (self.0 + (1 << 29)) >> 30)
        } else {
            write!(f, "{} MiB", self.0.div_ceil(MIB))
        }
    }
}

/// `/dev/vda 80 MiB "QEMU HARDDISK"` for one disk.
fn describe<const N: usize>(out: &mut Buf<N>, d: &Disk) {
    let _ = write!(out, "/dev/");
    out.bytes(d.name());
    let _ = write!(out, " {}", Size(d.size));
    if !d.model().is_empty() {
        out.str(" \"").bytes(d.model()).str("\"");
    }
}

impl AutoError {
    /// The refusal for the console: what was wanted, every candidate, the fix.
    pub fn explain<const N: usize>(&self, disks: &Disks, image_size: u64, out: &mut Buf<N>) {
        match self {
            AutoError::NoneFits => {
                let _ = write!(
                    out,
                    "bb.dev=auto: no internal, non-removable, writable disk holds the {} image",
                    Size(image_size)
                );
            }
            AutoError::Several(n) => {
                let _ = write!(
                    out,
                    "bb.dev=auto: {n} internal disks hold the {} image, refusing to guess",
                    Size(image_size)
                );
            }
        }
        out.str(" (candidates: ");
        let mut any = false;
        for d in disks.internal() {
            if any {
                out.str(", ");
            }
            describe(out, d);
            any = true;
        }
        if !any {
            out.str("none");
        }
        let mut skipped = false;
        for d in disks
            .all()
            .iter()
            .filter(|d| d.external_or_ro || d.size == 0)
        {
            out.str(if skipped { ", " } else { "; not considered: " });
            describe(out, d);
            skipped = true;
        }
        if disks.more > 0 {
            let _ = write!(out, "; {} more not listed", disks.more);
        }
        out.str("): name the disk with bb.dev=/dev/NAME, a list bb.dev=/dev/nvme0n1,/dev/sda or a /dev/disk/by-id/ name");
    }
}

/// udev's escaping of a serial or model for a by-id name: surrounding whitespace dropped,
/// inner runs of whitespace become one '_', characters outside `[A-Za-z0-9#+-.:=@_]` become '_'.
fn push_escaped<const N: usize>(out: &mut Buf<N>, v: &[u8]) {
    let mut space = false;
    for &c in v.trim_ascii() {
        if c.is_ascii_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.bytes(b"_");
            space = false;
        }
        let ok = c.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&c);
        out.bytes(&[if ok { c } else { b'_' }]);
    }
}

/// Calls `f` with each /dev/disk/by-id name (without the directory) udev would give `name`.
fn by_id_names(root: &[u8], name: &[u8], mut f: impl FnMut(&[u8])) {
    let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
    if name.starts_with(b"vd") {
        let serial = attr(root, name, b"serial", &mut a);
        if !serial.is_empty() {
            let mut n = Buf::<160>::new();
            n.bytes(b"virtio-");
            push_escaped(&mut n, serial);
            f(n.as_bytes());
        }
    }
    if name.starts_with(b"nvme") {
        let model = attr(root, name, b"device/model", &mut a);
        let serial = attr(root, name, b"device/serial", &mut b);
        if !model.is_empty() && !serial.is_empty() {
            let mut n = Buf::<160>::new();
            n.bytes(b"nvme-");
            push_escaped(&mut n, model);
            n.bytes(b"_");
            push_escaped(&mut n, serial);
            f(n.as_bytes());
        }
        let wwid = attr(root, name, b"wwid", &mut a);
        if !wwid.is_empty() {
            let mut n = Buf::<160>::new();
            n.bytes(b"nvme-");
            push_escaped(&mut n, wwid);
            f(n.as_bytes());
        }
    }
    let wwid = attr(root, name, b"device/wwid", &mut a);
    if let Some(naa) = wwid.strip_prefix(b"naa.") {
        let mut n = Buf::<160>::new();
        n.bytes(b"wwn-0x");
        for c in naa {
            n.bytes(&[c.to_ascii_lowercase()]);
        }
        f(n.as_bytes());
    }
}

/// A `/dev/disk/by-id/NAME` resolved to `/dev/DISK` through sysfs (see the module docs).
pub fn resolve_by_id(root: &[u8], want: &[u8]) -> Option<DevPath> {
    let id = want.strip_prefix(BY_ID)?;
    let disks = scan(root);
    disks.all().iter().find_map(|d| {
        let mut hit = false;
        by_id_names(root, d.name(), |n| hit |= n == id);
        hit.then(|| d.dev_path())
    })
}

/// One entry of a `bb.dev=`/`--dev` list resolved: the path when it exists (udev's by-id
/// links included), else a by-id name rebuilt from sysfs.
fn resolve_one(root: &[u8], p: &[u8]) -> Option<DevPath> {
    if exists(p) {
        return DevPath::from_bytes(p);
    }
    if p.starts_with(BY_ID) {
        return resolve_by_id(root, p);
    }
    None
}

/// A device list `a,b,c` (or one device): the first entry that exists.
pub fn resolve_list(root: &[u8], spec: &[u8]) -> Option<DevPath> {
    spec.split(|&c| c == b',')
        .filter(|p| !p.is_empty())
        .find_map(|p| resolve_one(root, p))
}

/// Whether `spec` is the `auto` rule.
pub fn is_auto(spec: &[u8]) -> bool {
    spec == b"auto"
}

/// Whether `spec` needs resolving (a list or a by-id name) rather than being a plain path.
pub fn is_rule(spec: &[u8]) -> bool {
    is_auto(spec) || spec.contains(&b',') || spec.starts_with(BY_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// A fake /sys/block in a temporary directory.
    struct FakeSys(PathBuf);

    impl FakeSys {
        fn new(tag: &str) -> FakeSys {
            let p = std::env::temp_dir().join(format!("bb-disks-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            FakeSys(p)
        }
        fn disk(&self, name: &str, mib: u64, attrs: &[(&str, &str)]) -> &Self {
            let d = self.0.join(name);
            fs::create_dir_all(d.join("device")).unwrap();
            fs::write(d.join("size"), format!("{}\n", mib * 2048)).unwrap();
            fs::write(d.join("removable"), "0\n").unwrap();
            fs::write(d.join("ro"), "0\n").unwrap();
            for (k, v) in attrs {
                fs::write(d.join(k), v).unwrap();
            }
            self
        }
        fn root(&self) -> &[u8] {
            self.0.as_os_str().as_encoded_bytes()
        }
    }

    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn explain(e: AutoError, d: &Disks, size: u64) -> String {
        let mut b = Buf::<1024>::new();
        e.explain(d, size, &mut b);
        b.as_str().to_string()
    }

    #[test]
    fn names_that_are_never_disks() {
        for n in [
            "loop0",
            "ram1",
            "sr0",
            "zram0",
            "md127",
            "dm-0",
            "nbd3",
            "mmcblk0boot0",
            "mmcblk0rpmb",
        ] {
            assert!(!is_disk_name(n.as_bytes()), "{n}");
        }
        for n in ["sda", "vda", "nvme0n1", "mmcblk0", "xvda"] {
            assert!(is_disk_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn auto_refuses_when_disks_beyond_the_listed_ones_were_not_looked_at() {
        let s = FakeSys::new("many");
        s.disk("vda", 80, &[]);
        for i in 0..MAX_DISKS {
            // Small disks named after vda: listed first, so vda is one of those left out.
            s.disk(&format!("sd{}", (b'a' + i as u8) as char), 8, &[]);
        }
        let d = scan(s.root());
        assert!(d.more > 0, "more disks than the list holds");
        assert!(matches!(
            choose_auto(&d, 64 << 20),
            Err(AutoError::Several(_))
        ));
    }

    #[test]
    fn auto_takes_the_one_internal_disk_that_fits() {
        let s = FakeSys::new("one");
        s.disk("vda", 80, &[("serial", "disk1\n")])
            .disk(
                "sdb",
                16000,
                &[("removable", "1\n"), ("device/model", "USB Stick   \n")],
            )
            .disk("sr0", 700, &[])
            .disk("loop0", 100, &[])
            .disk("nvme0n1", 32, &[("device/model", "Small NVMe\n")])
            .disk("vdb", 200, &[("ro", "1\n")]);
        let d = scan(s.root());
        let names: Vec<&[u8]> = d.all().iter().map(|d| d.name()).collect();
        assert_eq!(names, [&b"nvme0n1"[..], b"sdb", b"vda", b"vdb"]);
        let c = choose_auto(&d, 64 << 20).unwrap();
        assert_eq!(c.dev_path().as_bytes(), b"/dev/vda");
        assert_eq!(c.model(), b"disk1");
        // Smaller than every internal disk: both fit, refused.
        assert_eq!(choose_auto(&d, 1 << 20).unwrap_err(), AutoError::Several(2));
        // Larger than all: none, and the message names each disk with size and model.
        let e = choose_auto(&d, 1 << 30).unwrap_err();
        assert_eq!(e, AutoError::NoneFits);
        let m = explain(e, &d, 1 << 30);
        assert!(m.contains("holds the 1024 MiB image"), "{m}");
        assert!(m.contains("/dev/nvme0n1 32 MiB \"Small NVMe\""), "{m}");
        assert!(m.contains("/dev/vda 80 MiB \"disk1\""), "{m}");
        assert!(
            m.contains("not considered: /dev/sdb 16 GiB \"USB Stick\", /dev/vdb 200 MiB"),
            "{m}"
        );
        assert!(m.contains("bb.dev=/dev/NAME"), "{m}");
    }

    #[test]
    fn two_disks_that_fit_are_refused_by_name() {
        let s = FakeSys::new("two");
        s.disk("vda", 80, &[])
            .disk("nvme0n1", 20480, &[("device/model", "QEMU NVMe Ctrl\n")]);
        let d = scan(s.root());
        let e = choose_auto(&d, 64 << 20).unwrap_err();
        assert_eq!(e, AutoError::Several(2));
        let m = explain(e, &d, 64 << 20);
        assert!(
            m.starts_with("bb.dev=auto: 2 internal disks hold the 64 MiB image, refusing to guess"),
            "{m}"
        );
        assert!(
            m.contains("/dev/nvme0n1 20 GiB \"QEMU NVMe Ctrl\", /dev/vda 80 MiB"),
            "{m}"
        );
        let empty = FakeSys::new("none");
        let d = scan(empty.root());
        let m = explain(choose_auto(&d, 1).unwrap_err(), &d, 1);
        assert!(m.contains("(candidates: none"), "{m}");
    }

    #[test]
    fn by_id_names_as_udev_builds_them() {
        let s = FakeSys::new("byid");
        s.disk("vda", 80, &[("serial", "bb disk 1\n")])
            .disk(
                "nvme0n1",
                80,
                &[
                    ("device/model", "QEMU NVMe Ctrl                          \n"),
                    ("device/serial", "bbnvme1             \n"),
                    (
                        "wwid",
                        "nvme.1b36-62626e766d6531-51454d55204e564d65204374726c-00000001\n",
                    ),
                ],
            )
            .disk("sda", 80, &[("device/wwid", "naa.5000C500A1B2C3D4\n")]);
        let r = |id: &str| resolve_by_id(s.root(), format!("/dev/disk/by-id/{id}").as_bytes());
        let p = |d: Option<DevPath>| d.map(|d| String::from_utf8(d.as_bytes().to_vec()).unwrap());
        assert_eq!(p(r("virtio-bb_disk_1")).as_deref(), Some("/dev/vda"));
        assert_eq!(
            p(r("nvme-QEMU_NVMe_Ctrl_bbnvme1")).as_deref(),
            Some("/dev/nvme0n1")
        );
        assert_eq!(
            p(r(
                "nvme-nvme.1b36-62626e766d6531-51454d55204e564d65204374726c-00000001"
            ))
            .as_deref(),
            Some("/dev/nvme0n1")
        );
        assert_eq!(p(r("wwn-0x5000c500a1b2c3d4")).as_deref(), Some("/dev/sda"));
        assert_eq!(p(r("virtio-other")), None);
        assert_eq!(p(r("ata-SOMETHING_123")), None);
    }

    #[test]
    fn a_list_takes_the_first_that_exists() {
        let s = FakeSys::new("list");
        s.disk("vda", 80, &[("serial", "s1\n")]);
        let dir = std::env::temp_dir().join(format!("bb-disks-dev-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let present = dir.join("present");
        fs::write(&present, b"").unwrap();
        let spec = format!(
            "{},{},/dev/disk/by-id/virtio-s1",
            Path::new("/nonexistent/nvme0n1").display(),
            present.display()
        );
        let got = resolve_list(s.root(), spec.as_bytes()).unwrap();
        assert_eq!(got.as_bytes(), present.as_os_str().as_encoded_bytes());
        let got = resolve_list(s.root(), b"/nonexistent/a,/dev/disk/by-id/virtio-s1").unwrap();
        assert_eq!(got.as_bytes(), b"/dev/vda");
        assert!(resolve_list(s.root(), b"/nonexistent/a,/nonexistent/b").is_none());
        fs::remove_dir_all(&dir).unwrap();
        assert!(is_rule(b"auto") && is_rule(b"/dev/a,/dev/b") && is_rule(b"/dev/disk/by-id/x"));
        assert!(!is_rule(b"/dev/sda"));
    }
}
