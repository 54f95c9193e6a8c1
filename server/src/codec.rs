//! One block's coded form: zero, raw, or compressed with zstd on its own.

use std::io;

/// How a block travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// All zeros: never sent as data.
    Zero,
    /// Its image bytes.
    Raw,
    /// Its image bytes as one zstd frame.
    Zstd,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Zero => 0,
            Kind::Raw => 1,
            Kind::Zstd => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Kind::Zero,
            1 => Kind::Raw,
            2 => Kind::Zstd,
            _ => return None,
        })
    }
}

/// A block ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coded {
    pub kind: Kind,
    /// Content hash of the uncompressed image bytes; zeros for a Zero block (the protocol
    /// derives a zero block's leaf itself).
    pub hash: [u8; 32],
    /// The coded bytes before padding: the image bytes (Raw), the zstd frame (Zstd), none
    /// (Zero).
    pub bytes: Vec<u8>,
}

impl Coded {
    pub fn zero() -> Self {
        Self {
            kind: Kind::Zero,
            hash: [0; 32],
            bytes: Vec::new(),
        }
    }
}

pub use crate::proto_link::content_hash;

/// Zstd level by default (`--compress` without a level, and when not given).
pub const DEFAULT_LEVEL: i32 = 3;

/// Bytes of a block compressed first, at [`PROBE_LEVEL`], to find blocks zstd cannot
/// shrink (random or already compressed data) without a full pass at the chosen level: as
/// [`PROBE_SAMPLES`] pieces spread over the block, so a block that is noise in one part and
/// zeros or text in another still counts as compressible.
const PROBE_BYTES: usize = 64 * 1024;
/// Pieces of the probe.
const PROBE_SAMPLES: usize = 8;
/// zstd level of the probe: its fastest, which still tells noise from data.
const PROBE_LEVEL: i32 = 1;

/// Codes blocks: one per worker thread (it keeps its zstd contexts between blocks).
pub struct BlockCoder {
    symbol_size: usize,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    probe: Option<zstd::bulk::Compressor<'static>>,
}

impl BlockCoder {
    /// `level`: zstd level, None to send every block raw.
    pub fn new(level: Option<i32>, symbol_size: u32) -> io::Result<Self> {
        let zstd = level.map(zstd::bulk::Compressor::new).transpose()?;
        let probe = level
            .map(|_| zstd::bulk::Compressor::new(PROBE_LEVEL))
            .transpose()?;
        Ok(Self {
            symbol_size: symbol_size as usize,
            zstd,
            probe,
        })
    }

    /// True when pieces spread over `data` do not shrink even by 2% at the probe's level:
    /// the block is sent raw without trying harder.
    fn incompressible(&mut self, data: &[u8]) -> bool {
        let Some(p) = &mut self.probe else {
            return true;
        };
        if data.len() < 2 * PROBE_BYTES {
            return false;
        }
        let piece = PROBE_BYTES / PROBE_SAMPLES;
        let stride = data.len() / PROBE_SAMPLES;
        let mut sample = Vec::with_capacity(PROBE_BYTES);
        for i in 0..PROBE_SAMPLES {
            sample.extend_from_slice(&data[i * stride..i * stride + piece]);
        }
        let mut out = Vec::with_capacity(PROBE_BYTES);
        match p.compress_to_buffer(&sample, &mut out) {
            Ok(n) => n * 100 > PROBE_BYTES * 98,
            // Did not fit in the sample's size: it grew.
            Err(_) => true,
        }
    }

    /// The Raw form of a block known to be sent raw (a repair of a block coded before):
    /// hashed, not compressed again.
    pub fn raw(&self, data: Vec<u8>) -> Coded {
        Coded {
            kind: Kind::Raw,
            hash: content_hash(&data),
            bytes: data,
        }
    }

    /// The coded form of one block's image bytes. `data` is given back as the Raw bytes
    /// when compression does not save a whole symbol.
    pub fn code(&mut self, data: Vec<u8>) -> Coded {
        if crate::zeros::is_zero(&data) {
            return Coded::zero();
        }
        let hash = content_hash(&data);
        let raw_symbols = data.len().div_ceil(self.symbol_size);
        if raw_symbols > 1
            && !self.incompressible(&data)
            && let Some(z) = &mut self.zstd
        {
            // Room for one symbol less than raw: a frame that does not fit saves nothing.
            let mut out = Vec::with_capacity((raw_symbols - 1) * self.symbol_size);
            if z.compress_to_buffer(&data, &mut out).is_ok()
                && out.len().div_ceil(self.symbol_size) < raw_symbols
            {
                return Coded {
                    kind: Kind::Zstd,
                    hash,
                    bytes: out,
                };
            }
        }
        Coded {
            kind: Kind::Raw,
            hash,
            bytes: data,
        }
    }
}

/// `coded` padded with zeros to whole symbols, in place: a raw block of whole symbols (most
/// of a disk image that does not compress) is kept as it was read, never copied.
pub fn pad_to_symbols(mut coded: Vec<u8>, symbol_size: u32) -> Vec<u8> {
    let ss = symbol_size as usize;
    coded.resize(coded.len().div_ceil(ss).max(1) * ss, 0);
    coded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog; "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn compressible_blocks_shrink_and_decode_back() {
        let mut c = BlockCoder::new(Some(3), 1408).unwrap();
        let data = text(720_896);
        let coded = c.code(data.clone());
        assert_eq!(coded.kind, Kind::Zstd);
        assert!(coded.bytes.len() < 10_000, "{}", coded.bytes.len());
        assert_eq!(coded.hash, content_hash(&data));
        assert_eq!(
            zstd::bulk::decompress(&coded.bytes, data.len()).unwrap(),
            data
        );
        // Deterministic: the same block codes to the same bytes (repairs re-code).
        let mut again = BlockCoder::new(Some(3), 1408).unwrap();
        assert_eq!(again.code(data), coded);
    }

    #[test]
    fn the_probe_sends_noise_raw_and_keeps_mixed_blocks_compressed() {
        let mut c = BlockCoder::new(Some(3), 1408).unwrap();
        let n = noise(720_896, 9);
        assert_eq!(c.code(n.clone()).kind, Kind::Raw);
        // Noise first, zeros after (a sparse file's extent): still worth compressing.
        let mut extent = noise(256 * 1024, 4);
        extent.resize(720_896, 0);
        let coded = c.code(extent.clone());
        assert_eq!(coded.kind, Kind::Zstd);
        assert!(coded.bytes.len() < 270 * 1024, "{}", coded.bytes.len());
        // A repair of a block known raw: the same block as coding it again would give.
        assert_eq!(c.raw(n.clone()), c.code(n));
    }

    #[test]
    fn incompressible_zero_and_off_blocks() {
        let mut c = BlockCoder::new(Some(3), 1408).unwrap();
        let n = noise(720_896, 5);
        let coded = c.code(n.clone());
        assert_eq!((coded.kind, &coded.bytes), (Kind::Raw, &n));
        assert_eq!(c.code(vec![0u8; 5000]), Coded::zero());
        // A one-symbol block cannot save a symbol.
        assert_eq!(c.code(text(1000)).kind, Kind::Raw);
        let mut off = BlockCoder::new(None, 1408).unwrap();
        assert_eq!(off.code(text(720_896)).kind, Kind::Raw);
        let padded = pad_to_symbols(vec![1, 2, 3], 64);
        assert_eq!(padded.len(), 64);
        assert_eq!(&padded[..4], &[1, 2, 3, 0]);
        assert_eq!(
            pad_to_symbols(vec![4; 128], 64),
            vec![4; 128],
            "whole symbols stay"
        );
        assert_eq!(
            pad_to_symbols(Vec::new(), 64).len(),
            64,
            "one symbol at least"
        );
    }

    #[test]
    fn kind_codes_round_trip() {
        for k in [Kind::Zero, Kind::Raw, Kind::Zstd] {
            assert_eq!(Kind::from_code(k.code()), Some(k));
        }
        assert_eq!(Kind::from_code(3), None);
    }
}
