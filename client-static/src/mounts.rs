//! Is a block device (or one of its partitions) mounted? Parses /proc/self/mounts (and
//! /proc/swaps) text, without a heap.

/// Decodes the octal escapes of a mounts field (`\040` for a space) into `out`; returns the
/// length, or None when it does not fit.
pub fn unescape(field: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    while i < field.len() {
        let c = if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
        {
            let v = (field[i + 1] - b'0') as u32 * 64
                + (field[i + 2] - b'0') as u32 * 8
                + (field[i + 3] - b'0') as u32;
            i += 4;
            v as u8
        } else {
            i += 1;
            field[i - 1]
        };
        *out.get_mut(n)? = c;
        n += 1;
    }
    Some(n)
}

/// True when `name` is `dev` itself or a partition of it: `dev` followed by digits
/// (/dev/sda1) or by 'p' and digits (/dev/nvme0n1p2, /dev/mmcblk0p1, /dev/loop0p1).
pub fn is_dev_or_partition(dev: &[u8], name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(dev) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // A name ending in a digit takes a 'p' before the partition number.
    let digits = if dev.last().is_some_and(|c| c.is_ascii_digit()) {
        rest.strip_prefix(b"p")
    } else {
        Some(rest)
    };
    digits.is_some_and(|d| !d.is_empty() && d.iter().all(|c| c.is_ascii_digit()))
}

/// Looks through mounts-format text (`source mountpoint fstype options 0 0` lines) for a
/// source that is `dev` or one of its partitions, or for which `same_device(source)` holds
/// (e.g. same st_rdev: a /dev/disk/by-id link, a /dev/mapper name). Returns the mount point
/// (still escaped) of the first match. For /proc/swaps text pass `swaps = true`: the first
/// field is the device, there is no mount point, and the header line is skipped.
pub fn find_mounted<'t>(
    text: &'t [u8],
    dev: &[u8],
    swaps: bool,
    mut same_device: impl FnMut(&[u8]) -> bool,
) -> Option<&'t [u8]> {
    let mut src = [0u8; 512];
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        if swaps && i == 0 {
            continue;
        }
        let mut fields = line
            .split(|&c| c == b' ' || c == b'\t')
            .filter(|f| !f.is_empty());
        let Some(source) = fields.next() else {
            continue;
        };
        let Some(n) = unescape(source, &mut src) else {
            continue;
        };
        let source = &src[..n];
        if !source.starts_with(b"/") {
            continue;
        }
        if is_dev_or_partition(dev, source) || same_device(source) {
            return Some(if swaps {
                b"[swap]"
            } else {
                fields.next().unwrap_or(b"?")
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &[u8] = b"sysfs /sys sysfs rw,nosuid 0 0\n\
proc /proc proc rw 0 0\n\
/dev/sdb2 /mnt/with\\040space ext4 rw 0 0\n\
/dev/nvme0n1p3 / ext4 rw,relatime 0 0\n\
/dev/mapper/vg-root /srv xfs rw 0 0\n\
tmpfs /run tmpfs rw 0 0\n";

    #[test]
    fn partitions() {
        assert!(is_dev_or_partition(b"/dev/sda", b"/dev/sda"));
        assert!(is_dev_or_partition(b"/dev/sda", b"/dev/sda1"));
        assert!(is_dev_or_partition(b"/dev/sda", b"/dev/sda15"));
        assert!(!is_dev_or_partition(b"/dev/sda", b"/dev/sdaa"));
        assert!(!is_dev_or_partition(b"/dev/sda", b"/dev/sdb1"));
        assert!(!is_dev_or_partition(b"/dev/sda", b"/dev/sd"));
        assert!(is_dev_or_partition(b"/dev/nvme0n1", b"/dev/nvme0n1p1"));
        assert!(!is_dev_or_partition(b"/dev/nvme0n1", b"/dev/nvme0n12"));
        assert!(is_dev_or_partition(b"/dev/loop0", b"/dev/loop0p1"));
        assert!(!is_dev_or_partition(b"/dev/loop0", b"/dev/loop0p"));
        assert!(!is_dev_or_partition(b"/dev/sda", b"/dev/sdap1"));
    }

    #[test]
    fn finds_device_and_partitions() {
        let none = |_: &[u8]| false;
        assert_eq!(
            find_mounted(MOUNTS, b"/dev/sdb", false, none),
            Some(&b"/mnt/with\\040space"[..])
        );
        assert_eq!(
            find_mounted(MOUNTS, b"/dev/sdb2", false, none),
            Some(&b"/mnt/with\\040space"[..])
        );
        assert_eq!(
            find_mounted(MOUNTS, b"/dev/nvme0n1", false, none),
            Some(&b"/"[..])
        );
        assert_eq!(find_mounted(MOUNTS, b"/dev/sda", false, none), None);
        assert_eq!(find_mounted(MOUNTS, b"/dev/sdb1", false, none), None);
        assert_eq!(find_mounted(MOUNTS, b"/dev/nvme0n", false, none), None);
        // Matching by device number (the caller's stat): a mapper name.
        assert_eq!(
            find_mounted(MOUNTS, b"/dev/dm-0", false, |s| s == b"/dev/mapper/vg-root"),
            Some(&b"/srv"[..])
        );
        // Non-path sources are never passed to the device check.
        assert_eq!(
            find_mounted(MOUNTS, b"/dev/x", false, |s| !s.starts_with(b"/")),
            None
        );
    }

    #[test]
    fn escapes() {
        let m = b"/dev/disk/by-label/my\\040disk /a ext4 rw 0 0\n";
        assert!(find_mounted(m, b"/dev/disk/by-label/my disk", false, |_| false).is_some());
        let mut out = [0u8; 4];
        assert_eq!(unescape(b"a\\134b", &mut out), Some(3));
        assert_eq!(&out[..3], b"a\\b");
        assert_eq!(unescape(b"abcde", &mut out), None);
        assert_eq!(unescape(b"a\\0", &mut out), Some(3));
    }

    #[test]
    fn swaps() {
        let s = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdc2                               partition\t1048572\t\t0\t\t-2\n";
        assert_eq!(
            find_mounted(s, b"/dev/sdc", true, |_| false),
            Some(&b"[swap]"[..])
        );
        assert_eq!(find_mounted(s, b"/dev/sdd", true, |_| false), None);
        assert_eq!(
            find_mounted(b"/dev/sdc1 x\n", b"/dev/sdc", true, |_| false),
            None
        );
    }
}
