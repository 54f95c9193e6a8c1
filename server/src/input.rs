//! Images kept compressed: zstd, gzip and xz recognised by their magic bytes, read through a
//! streaming decoder.

use std::io::{self, Read};

/// How an input's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Plain,
    Zstd,
    Gzip,
    Xz,
}

/// Bytes needed to tell the formats apart.
pub const MAGIC_LEN: usize = 6;

impl Format {
    /// The format whose magic bytes `head` starts with (Plain when none: a disk image can
    /// start with anything, but not with a compressor's frame header by chance in practice).
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Format::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Format::Xz
        } else {
            Format::Plain
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "uncompressed",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
        }
    }
}

/// Reads up to MAGIC_LEN bytes from `r` (fewer only at its end).
pub fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; MAGIC_LEN];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

/// The decoded bytes of `r` stored as `format`. Concatenated zstd frames and gzip members are
/// read to the end, as `zstd -d` and `gzip -d` do.
pub fn decoder<'a>(format: Format, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match format {
        Format::Plain => Box::new(r),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Format::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
    })
}

/// `r` with its first bytes already read into `head` put back in front.
pub fn unread<'a>(head: Vec<u8>, r: impl Read + 'a) -> impl Read + 'a {
    io::Cursor::new(head).chain(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn compressed(format: Format, data: &[u8]) -> Vec<u8> {
        match format {
            Format::Plain => data.to_vec(),
            Format::Zstd => zstd::bulk::compress(data, 3).unwrap(),
            Format::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Format::Xz => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    #[test]
    fn the_three_formats_are_recognised_by_magic_and_decoded() {
        let data = sample();
        for f in [Format::Plain, Format::Zstd, Format::Gzip, Format::Xz] {
            let bytes = compressed(f, &data);
            let mut r = io::Cursor::new(bytes);
            let head = read_head(&mut r).unwrap();
            assert_eq!(Format::detect(&head), f, "{}", f.name());
            let mut out = Vec::new();
            decoder(f, unread(head, r))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{}", f.name());
        }
        // Short inputs and a disk image's usual start (a boot sector) are plain.
        assert_eq!(Format::detect(&[0x28, 0xb5]), Format::Plain);
        assert_eq!(Format::detect(&[0xeb, 0x63, 0x90, 0, 0, 0]), Format::Plain);
    }

    #[test]
    fn a_corrupt_stream_is_an_error_not_short_data() {
        let mut bytes = compressed(Format::Zstd, &sample());
        let n = bytes.len();
        bytes.truncate(n / 2);
        let mut out = Vec::new();
        assert!(
            decoder(Format::Zstd, io::Cursor::new(bytes))
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
