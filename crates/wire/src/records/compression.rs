//! The four codecs, pure Rust by default. Each compresses a whole records section into the
//! output buffer and decompresses with a hard cap on output size.
//!
//! Java compatibility:
//! - snappy: the Java client writes xerial-snappy framing (`SnappyOutputStream`: the
//!   16-byte header `\x82SNAPPY\0`, version 1, compatible version 1, then 32 KiB blocks,
//!   each a big-endian i32 length and a raw snappy block). We write the same. Its reader,
//!   `SnappyInputStream`, falls back to one raw snappy block when the magic is missing, and
//!   so do we; concatenated xerial streams are read too.
//! - lz4: Kafka's `Lz4BlockInputStream` reads the LZ4 frame format but rejects dependent
//!   blocks, a dictionary id, and block sizes outside 64 KiB-4 MiB. We write what its
//!   `Lz4BlockOutputStream` writes: independent 64 KiB blocks, no checksums, no content
//!   size, and a correct header checksum (magic v2 never used the broken one).
//! - gzip: level 6 (`Deflater.DEFAULT_COMPRESSION`); reading accepts concatenated members
//!   like `GZIPInputStream`.
//! - zstd: one frame at ruzstd's fastest level (about zstd level 1); reading accepts any
//!   sequence of frames.

use std::io::{self, Read, Write};

use bytes::{BufMut, BytesMut};

use super::{Compression, RecordsError};

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
const GZIP_LEVEL: u32 = 6;
/// Smallest cap on a zstd frame's window (8 MiB, zstd level 19's window): the decoder
/// allocates the declared window up front, so it is bounded by max(this, output limit).
const ZSTD_MIN_WINDOW_CAP: usize = 8 << 20;

/// Compresses `input` with `codec`, appending to `out`.
pub(crate) fn compress(
    codec: Compression,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), RecordsError> {
    let err = |e: io::Error| RecordsError::codec(codec, e);
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(input).map_err(err)?;
            encoder.finish().map_err(err)?;
        }
        Compression::Snappy => snappy_compress_xerial(input, out)?,
        Compression::Lz4 => super::lz4::compress(input, out)?,
        Compression::Zstd => zstd_compress(input, out)?,
    }
    Ok(())
}

/// Decompresses `input`, failing with [`RecordsError::DecompressedTooLarge`] as soon as
/// the output would exceed `limit` bytes.
pub(crate) fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordsError> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(RecordsError::DecompressedTooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_capped(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            limit,
        ),
        Compression::Snappy => snappy_decompress(input, limit),
        Compression::Lz4 => super::lz4::decompress(input, limit),
        Compression::Zstd => zstd_decompress(input, limit),
    }
}

/// Reads `reader` to the end into a vector, never growing past `limit` (+1 byte to tell
/// "exactly limit" from "more"). The first allocation is a guess from the compressed size,
/// which is bounded by data we already hold.
fn read_capped(
    codec: Compression,
    reader: impl Read,
    input_len: usize,
    limit: usize,
) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::codec(codec, e))?;
    if out.len() > limit {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

fn snappy_compress_xerial(input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
    out.extend_from_slice(XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // minimum compatible version
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_SIZE) {
        let start = out.len();
        let max = snap::raw::max_compress_len(block.len());
        out.put_u32(0); // length, patched below
        out.resize(start + 4 + max, 0);
        let written = encoder
            .compress(block, &mut out[start + 4..])
            .map_err(|e| RecordsError::codec(Compression::Snappy, e))?;
        out.truncate(start + 4 + written);
        let len = u32::try_from(written).map_err(|_| RecordsError::TooLarge)?;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_MAGIC) {
        // Plain raw snappy, as SnappyInputStream accepts.
        snappy_block(&mut decoder, input, &mut out, limit)?;
        return Ok(out);
    }
    let mut rest = input;
    while !rest.is_empty() {
        // A stream may be several xerial streams back to back; a block length can never
        // look like the magic (it would be over 2 GiB).
        if rest.starts_with(XERIAL_MAGIC) {
            rest = rest
                .get(XERIAL_HEADER_LEN..)
                .ok_or(RecordsError::Truncated)?;
            continue;
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(RecordsError::Truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| RecordsError::TooLarge)?;
        let block = tail.get(..len).ok_or(RecordsError::Truncated)?;
        snappy_block(&mut decoder, block, &mut out, limit)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared size against the limit
/// before allocating.
fn snappy_block(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), RecordsError> {
    let err = |e: snap::Error| RecordsError::codec(Compression::Snappy, e);
    let len = snap::raw::decompress_len(block).map_err(err)?;
    let start = out.len();
    if len > limit.saturating_sub(start) {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    out.resize(start + len, 0);
    let written = decoder.decompress(block, &mut out[start..]).map_err(err)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(not(feature = "zstd-native"))]
fn zstd_compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
    ruzstd::encoding::compress(
        input,
        out.writer(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    Ok(())
}

#[cfg(not(feature = "zstd-native"))]
fn zstd_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let codec = Compression::Zstd;
    // The decoder reserves the frame's declared window up front, so bound it: by our
    // output limit, but never below 8 MiB (zstd level 19's window) so that frames from
    // high-level producers still decode when the limit is small.
    let max_window = u64::try_from(limit.max(ZSTD_MIN_WINDOW_CAP)).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let decoder =
            ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&mut rest, max_window)
                .map_err(|e| RecordsError::codec(codec, e))?;
        let remaining = limit - out.len();
        let frame = read_capped(codec, decoder, 0, remaining).map_err(|e| match e {
            RecordsError::DecompressedTooLarge { .. } => {
                RecordsError::DecompressedTooLarge { limit }
            }
            other => other,
        })?;
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

#[cfg(feature = "zstd-native")]
fn zstd_compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
    // Level 3 is both libzstd's and Kafka's default.
    zstd::stream::copy_encode(input, out.writer(), 3)
        .map_err(|e| RecordsError::codec(Compression::Zstd, e))
}

#[cfg(feature = "zstd-native")]
fn zstd_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let codec = Compression::Zstd;
    let mut decoder =
        zstd::stream::read::Decoder::new(input).map_err(|e| RecordsError::codec(codec, e))?;
    // 2^27 is libzstd's default limit; lower it to cover just max(limit, 8 MiB).
    let cap = limit.max(ZSTD_MIN_WINDOW_CAP);
    let window_log = (usize::BITS - (cap - 1).leading_zeros()).min(27);
    decoder
        .window_log_max(window_log)
        .map_err(|e| RecordsError::codec(codec, e))?;
    read_capped(codec, decoder, input.len(), limit)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Compressible test input of `len` bytes (the LZ4 tests use it too).
    pub(in crate::records) fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for len in [0, 1, 100, XERIAL_BLOCK_SIZE, 300_000] {
                let input = sample(len);
                let mut out = BytesMut::new();
                compress(codec, &input, &mut out).unwrap();
                let back = decompress(codec, &out, 1 << 20).unwrap();
                assert_eq!(back, input, "{codec} len {len}");
            }
        }
    }

    #[test]
    fn every_codec_enforces_the_limit() {
        let input = vec![0u8; 100_000];
        for codec in ALL {
            let mut out = BytesMut::new();
            compress(codec, &input, &mut out).unwrap();
            assert!(decompress(codec, &out, 100_000).is_ok(), "{codec} at limit");
            assert!(
                matches!(
                    decompress(codec, &out, 99_999),
                    Err(RecordsError::DecompressedTooLarge { limit: 99_999 })
                ),
                "{codec} over limit"
            );
        }
    }

    #[test]
    fn snappy_writes_xerial_framing_and_reads_raw() {
        let input = sample(70_000);
        let mut out = BytesMut::new();
        compress(Compression::Snappy, &input, &mut out).unwrap();
        assert_eq!(&out[..16], b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
        // Three blocks of at most 32 KiB: the first length prefix follows the header.
        let first = u32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
        assert!(first > 0 && first < out.len());

        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
            input
        );

        // Two xerial streams back to back decode to the concatenation.
        let mut twice = out.clone();
        twice.extend_from_slice(&out);
        let back = decompress(Compression::Snappy, &twice, 1 << 20).unwrap();
        assert_eq!(back.len(), 2 * input.len());
    }

    /// libzstd is what the Java client uses (through zstd-jni): frames from ruzstd must
    /// decode with it and the other way round. Runs with `--features zstd-native`, where
    /// our codec is libzstd and ruzstd is still linked.
    #[cfg(feature = "zstd-native")]
    #[test]
    fn ruzstd_and_libzstd_interoperate() {
        let input = sample(300_000);
        let ours = ruzstd::encoding::compress_to_vec(
            &input[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            decompress(Compression::Zstd, &ours, 1 << 20).unwrap(),
            input
        );

        let mut native = BytesMut::new();
        compress(Compression::Zstd, &input, &mut native).unwrap();
        let mut back = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(&native[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
        // Level 19 and a checksum, as a Java producer may configure.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(&input).unwrap();
        let high = encoder.finish().unwrap();
        assert_eq!(
            decompress(Compression::Zstd, &high, 1 << 20).unwrap(),
            input
        );
        let mut back = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(&high[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_are_read() {
        for codec in [Compression::Gzip, Compression::Zstd] {
            let mut out = BytesMut::new();
            compress(codec, b"hello ", &mut out).unwrap();
            compress(codec, b"world", &mut out).unwrap();
            assert_eq!(decompress(codec, &out, 1 << 10).unwrap(), b"hello world");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL {
            for input in [
                &b""[..],
                b"\x82SNAPPY\0",
                b"\x04\x22\x4d\x18\xff",
                &[0xffu8; 40],
            ] {
                let _ = decompress(codec, input, 1 << 16);
            }
        }
        assert!(decompress(Compression::Gzip, b"not gzip", 1 << 16).is_err());
        assert!(decompress(Compression::Lz4, b"not lz4!", 1 << 16).is_err());
        assert!(decompress(Compression::Zstd, b"not zstd", 1 << 16).is_err());
        assert!(decompress(
            Compression::Snappy,
            b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0\0\x09ab",
            1 << 16
        )
        .is_err());
    }
}
