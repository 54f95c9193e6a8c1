//! The pre-shared key: `--key-file FILE` (32 raw bytes or 64 hex digits) and
//! `--gen-key FILE` (a new random key, written as hex, mode 0600, never over a file).

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bb_proto::wire::auth::{KEY_LEN, PresharedKey};

/// Longest file read as a key: hex with generous whitespace; anything longer is not a key.
const MAX_KEY_FILE: u64 = 1024;

const FORMAT: &str = "64 hex digits (32 bytes, whitespace allowed) or exactly 32 raw bytes";

/// Reads the key file at `path`; the error names the file and the expected format.
pub fn load(path: &Path) -> Result<PresharedKey, String> {
    let name = path.display();
    let f = std::fs::File::open(path).map_err(|e| {
        format!("cannot read key file {name}: {e} (bb-server --gen-key {name} makes one)")
    })?;
    let mut contents = Vec::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut contents)
        .map_err(|e| format!("cannot read key file {name}: {e}"))?;
    if contents.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "key file {name}: more than {MAX_KEY_FILE} bytes; expected {FORMAT}"
        ));
    }
    PresharedKey::parse(&contents).map_err(|e| format!("key file {name}: {e}"))
}

/// Writes a new random key to `path` as 64 hex digits and a newline, readable by its owner
/// only; refuses to replace an existing file.
pub fn generate(path: &Path) -> Result<(), String> {
    let name = path.display();
    let mut raw = [0u8; KEY_LEN];
    crate::sys::random_bytes(&mut raw).map_err(|e| format!("getrandom: {e}"))?;
    let key = PresharedKey::from_bytes(raw);
    let mut hex = [0u8; 2 * KEY_LEN];
    key.to_hex(&mut hex);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => format!(
                "{name} already exists: --gen-key never replaces a key (remove it first, or name another file)"
            ),
            _ => format!("cannot create key file {name}: {e}"),
        })?;
    f.write_all(&hex)
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing key file {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bb-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn generated_keys_load_are_private_random_and_never_overwritten() {
        let d = dir("gen");
        let (a, b) = (d.join("a.key"), d.join("b.key"));
        generate(&a).unwrap();
        generate(&b).unwrap();
        let text = std::fs::read(&a).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text[..64].iter().all(u8::is_ascii_hexdigit) && text[64] == b'\n');
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(load(&a).unwrap(), load(&b).unwrap(), "two keys differ");
        let e = generate(&a).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(
            std::fs::read(&a).unwrap(),
            text,
            "the existing key is untouched"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn key_files_in_both_formats_load_and_anything_else_is_named() {
        let d = dir("load");
        let raw: Vec<u8> = (100..132).collect();
        std::fs::write(d.join("raw"), &raw).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02X} ")).collect();
        std::fs::write(d.join("hex"), hex).unwrap();
        assert_eq!(load(&d.join("raw")).unwrap(), load(&d.join("hex")).unwrap());
        std::fs::write(d.join("short"), "abcd\n").unwrap();
        let e = load(&d.join("short")).unwrap_err();
        assert!(e.contains("short") && e.contains("64 hex digits"), "{e}");
        std::fs::write(d.join("text"), "a password, not a key\n").unwrap();
        let e = load(&d.join("text")).unwrap_err();
        assert!(e.contains("text") && e.contains("32 raw bytes"), "{e}");
        let e = load(&d.join("missing")).unwrap_err();
        assert!(e.contains("missing") && e.contains("--gen-key"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
