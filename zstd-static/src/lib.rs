//! Heap-free zstd decompression for the static client (and the tools that measure it).
//!
//! zstd's static decompression context (`ZSTD_initStaticDCtx`) lives in a caller-owned
//! workspace whose size is fixed at build time ([`DCTX_WORKSPACE_BYTES`]) and checked against
//! `ZSTD_estimateDCtxSize()` when the decompressor is made. Each block is one frame,
//! decompressed in a single shot (`ZSTD_decompressDCtx`) straight into the caller's buffer:
//! no streaming buffers, no window, no allocation.

#![no_std]

use core::ffi::{CStr, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;

use bb_proto::receiver::{Decompress, DecompressError};
use zstd_sys::{
    ZSTD_DCtx, ZSTD_decompressDCtx, ZSTD_estimateDCtxSize, ZSTD_getErrorName, ZSTD_initStaticDCtx,
    ZSTD_isError,
};

/// Bytes of a decompression context. zstd 1.5.7 asks for 95,976 on x86_64; the margin covers
/// other builds of the same major version. [`StaticDecompressor::new`] refuses a smaller one.
pub const DCTX_WORKSPACE_BYTES: usize = 128 << 10;

/// Memory for one decompression context. zstd needs 8-byte alignment; 64 keeps its tables on
/// their own cache lines.
#[repr(C, align(64))]
pub struct DctxWorkspace([u8; DCTX_WORKSPACE_BYTES]);

impl DctxWorkspace {
    pub const fn new() -> Self {
        DctxWorkspace([0; DCTX_WORKSPACE_BYTES])
    }
}

impl Default for DctxWorkspace {
    fn default() -> Self {
        Self::new()
    }
}

/// The linked zstd needs a larger context than this build reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceTooSmall {
    pub needed: usize,
    pub have: usize,
}

/// A zstd error code (corrupt frame, output larger than the buffer, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdError(usize);

impl ZstdError {
    /// zstd's description, e.g. "Destination buffer is too small".
    pub fn name(self) -> &'static str {
        // SAFETY: ZSTD_getErrorName returns a pointer to a static NUL-terminated string for
        // any code.
        let name = unsafe { CStr::from_ptr(ZSTD_getErrorName(self.0)) };
        name.to_str().unwrap_or("unknown zstd error")
    }
}

/// One zstd decompression context over a borrowed [`DctxWorkspace`].
pub struct StaticDecompressor<'w> {
    dctx: NonNull<ZSTD_DCtx>,
    _workspace: PhantomData<&'w mut DctxWorkspace>,
}

impl<'w> StaticDecompressor<'w> {
    /// The context zstd needs, in bytes (`ZSTD_estimateDCtxSize`).
    pub fn needed_bytes() -> usize {
        // SAFETY: a pure size computation with no arguments.
        unsafe { ZSTD_estimateDCtxSize() }
    }

    /// A decompressor whose whole state is `workspace`; refused when zstd needs more.
    pub fn new(workspace: &'w mut DctxWorkspace) -> Result<Self, WorkspaceTooSmall> {
        let too_small = WorkspaceTooSmall {
            needed: Self::needed_bytes(),
            have: DCTX_WORKSPACE_BYTES,
        };
        if too_small.needed > too_small.have {
            return Err(too_small);
        }
        // SAFETY: the workspace is exclusively borrowed for 'w, 64-byte aligned (zstd wants 8)
        // and at least ZSTD_estimateDCtxSize() bytes; zstd never frees or grows it.
        let dctx = unsafe {
            ZSTD_initStaticDCtx(
                workspace.0.as_mut_ptr().cast::<c_void>(),
                DCTX_WORKSPACE_BYTES,
            )
        };
        let dctx = NonNull::new(dctx).ok_or(too_small)?;
        Ok(StaticDecompressor {
            dctx,
            _workspace: PhantomData,
        })
    }

    /// Decompresses the zstd frame(s) in `src` into `dst`; returns the bytes written. Output
    /// that would not fit in `dst` is an error, never a partial success.
    pub fn try_decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, ZstdError> {
        // SAFETY: dctx came from ZSTD_initStaticDCtx over a workspace borrowed for 'w; src and
        // dst are valid for their lengths and do not overlap (& and &mut).
        let r = unsafe {
            ZSTD_decompressDCtx(
                self.dctx.as_ptr(),
                dst.as_mut_ptr().cast::<c_void>(),
                dst.len(),
                src.as_ptr().cast::<c_void>(),
                src.len(),
            )
        };
        // SAFETY: a pure test of a return code.
        if unsafe { ZSTD_isError(r) } != 0 {
            return Err(ZstdError(r));
        }
        Ok(r)
    }
}

impl Decompress for StaticDecompressor<'_> {
    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, DecompressError> {
        self.try_decompress(src, dst).map_err(|_| DecompressError)
    }
}

// SAFETY: the context is reachable only through this value (it exclusively borrows its
// workspace) and zstd keeps no thread-local or global state for it.
unsafe impl Send for StaticDecompressor<'_> {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::vec;
    use std::vec::Vec;

    /// Compressible but not trivial: words from a small vocabulary picked by xorshift.
    fn text(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "disk ", "image ", "block ", "zero ", "\n", "ext4 ", "0x1f ", "; ",
        ];
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(WORDS[(x % 8) as usize].as_bytes());
        }
        v.truncate(len);
        v
    }

    /// A frame made by the zstd library linked here, at `level`.
    fn compress(data: &[u8], level: i32) -> Vec<u8> {
        // SAFETY: test-only FFI; the buffer is ZSTD_compressBound bytes, as zstd requires.
        unsafe {
            let mut out = vec![0u8; zstd_sys::ZSTD_compressBound(data.len())];
            let n = zstd_sys::ZSTD_compress(
                out.as_mut_ptr().cast(),
                out.len(),
                data.as_ptr().cast(),
                data.len(),
                level,
            );
            assert_eq!(zstd_sys::ZSTD_isError(n), 0);
            out.truncate(n);
            out
        }
    }

    #[test]
    fn workspace_fits_the_linked_zstd() {
        let needed = StaticDecompressor::needed_bytes();
        assert!(needed <= DCTX_WORKSPACE_BYTES, "zstd needs {needed} bytes");
        let mut ws = Box::new(DctxWorkspace::new());
        assert!(StaticDecompressor::new(&mut ws).is_ok());
    }

    #[test]
    fn decompresses_frames_of_the_zstd_cli() {
        let data = text(720 << 10, 7);
        let mut child = Command::new("zstd")
            .args(["-3", "-q", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the zstd command (Debian package zstd; make deps installs it)");
        let mut stdin = child.stdin.take().unwrap();
        let input = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert!(out.stdout.len() < data.len() / 2);

        let mut ws = Box::new(DctxWorkspace::new());
        let mut dec = StaticDecompressor::new(&mut ws).unwrap();
        let mut dst = vec![0u8; 720 << 10];
        assert_eq!(dec.decompress(&out.stdout, &mut dst), Ok(data.len()));
        assert_eq!(dst, data);
    }

    #[test]
    fn one_context_serves_many_frames_in_any_order() {
        let blocks: Vec<Vec<u8>> = (0..6)
            .map(|i| text(100_000 + i * 3_001, i as u64 + 1))
            .collect();
        let frames: Vec<Vec<u8>> = blocks.iter().map(|b| compress(b, 3)).collect();
        let mut ws = Box::new(DctxWorkspace::new());
        let mut dec = StaticDecompressor::new(&mut ws).unwrap();
        let mut dst = vec![0u8; 200_000];
        for i in [3, 0, 5, 1, 4, 2, 3] {
            let n = dec.try_decompress(&frames[i], &mut dst).unwrap();
            assert_eq!(&dst[..n], &blocks[i][..]);
        }
    }

    #[test]
    fn refuses_output_larger_than_the_buffer() {
        let data = text(50_000, 3);
        let frame = compress(&data, 3);
        let mut ws = Box::new(DctxWorkspace::new());
        let mut dec = StaticDecompressor::new(&mut ws).unwrap();
        let mut dst = vec![0u8; data.len() - 1];
        let e = dec.try_decompress(&frame, &mut dst).unwrap_err();
        assert!(e.name().contains("too small"), "{}", e.name());
        // The context stays usable after an error.
        let mut dst = vec![0u8; data.len()];
        assert_eq!(dec.decompress(&frame, &mut dst), Ok(data.len()));
        assert_eq!(
            dec.decompress(&frame, &mut dst[..100]),
            Err(DecompressError)
        );
    }

    #[test]
    fn refuses_corrupt_frames() {
        let data = text(50_000, 5);
        let mut frame = compress(&data, 3);
        let mut ws = Box::new(DctxWorkspace::new());
        let mut dec = StaticDecompressor::new(&mut ws).unwrap();
        let mut dst = vec![0u8; data.len()];
        assert!(dec.decompress(&frame[..frame.len() / 2], &mut dst).is_err());
        assert!(dec.decompress(b"not a zstd frame", &mut dst).is_err());
        // A flipped bit in a sequence section: zstd frames from this encoder carry no
        // checksum, so corruption must be caught structurally or differ in output length.
        let mid = frame.len() / 2;
        frame[mid] ^= 0x55;
        if let Ok(n) = dec.decompress(&frame, &mut dst) {
            assert!(n != data.len() || dst != data);
        }
    }
}
