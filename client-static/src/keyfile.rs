//! The pre-shared key from a file: `--key-file FILE`, and the key baked into the imaging
//! initramfs (`make netboot KEY_FILE=...`). 32 raw bytes or 64 hex digits (whitespace
//! allowed), as `bb-server --gen-key` writes it.

use bb_proto::wire::auth::PresharedKey;
use core::fmt::Write;

use crate::fmt::Lossy;
use crate::os;
use crate::run::{EXIT_USAGE, Finish};

/// Where the imaging initramfs keeps the key baked into it at build time.
pub const INITRAMFS_KEY_PATH: &[u8] = b"/etc/broadband/key";

/// Largest key file read: a hex key with generous whitespace; longer files are not keys.
const MAX_KEY_FILE: usize = 1024;

/// Reads and parses the key file at `path`; the error names the file and the format.
pub fn load(path: &[u8]) -> Result<PresharedKey, Finish> {
    let mut buf = [0u8; MAX_KEY_FILE + 1];
    let n = os::read_file(path, &mut buf).map_err(|e| {
        Finish::fail(EXIT_USAGE, |l| {
            let _ = write!(
                l,
                "cannot read key file {}: {} (make one with bb-server --gen-key FILE and copy it here)",
                Lossy(path),
                os::strerror(e)
            );
        })
    })?;
    if n > MAX_KEY_FILE {
        return Err(Finish::fail(EXIT_USAGE, |l| {
            let _ = write!(
                l,
                "key file {}: more than {MAX_KEY_FILE} bytes; expected 64 hex digits (32 bytes, whitespace allowed) or exactly 32 raw bytes (bb-server --gen-key FILE writes one)",
                Lossy(path)
            );
        }));
    }
    PresharedKey::parse(&buf[..n]).map_err(|e| {
        Finish::fail(EXIT_USAGE, |l| {
            let _ = write!(
                l,
                "key file {}: {e} (bb-server --gen-key FILE writes one)",
                Lossy(path)
            );
        })
    })
}

/// Whether a file exists at `path` (the baked key is optional).
pub fn exists(path: &[u8]) -> bool {
    os::CPath::new(path).is_some_and(|p| os::stat(&p).is_ok())
}
