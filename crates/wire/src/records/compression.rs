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

use std::cell::RefCell;
use std::io::{self, Read, Write};

use bytes::{BufMut, BytesMut};

use super::varint::Cursor;
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
        Compression::Lz4 => lz4_compress(input, out)?,
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
        Compression::Lz4 => lz4_decompress(input, limit),
        Compression::Zstd => zstd_decompress(input, limit),
    }
}

/// The LZ4 frame header Java's `Lz4BlockOutputStream` writes: the magic, FLG `0x60`
/// (version 01, independent blocks, no checksums, no content size, no dictionary), BD
/// `0x40` (64 KiB blocks) and the header checksum, `(xxh32(FLG BD) >> 8) & 0xFF`.
const LZ4_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
/// The block size `LZ4_HEADER` declares.
const LZ4_BLOCK: usize = 64 * 1024;
/// A block's length word with this bit set: the block is stored as is.
const LZ4_UNCOMPRESSED: u32 = 0x8000_0000;

/// Writes `input` as one LZ4 frame laid out like Java's (see [`LZ4_HEADER`]), each
/// 64 KiB block compressed by `lz4_flex::block` straight from `input`, through one
/// scratch block and hash table per thread. Not `lz4_flex::frame::FrameEncoder`: it
/// copies the input into a buffer of its own, compresses into another and copies that
/// out, and a new encoder per batch allocated and zeroed both (producing 500,000 1 KiB
/// records with lz4 took 1.9 CPU seconds through it, 1.3 this way). A block that does
/// not shrink is stored as is, as Java does.
fn lz4_compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
    thread_local! {
        static SCRATCH: RefCell<Lz4Scratch> = RefCell::new(Lz4Scratch::default());
    }
    out.reserve(LZ4_HEADER.len() + 4 * (input.len() / LZ4_BLOCK + 2) + input.len());
    out.extend_from_slice(&LZ4_HEADER);
    // A thread being torn down has no scratch left, and a reentrant call (there is
    // none) would find it borrowed: both compress through a scratch of their own.
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => scratch.blocks(input, out),
            Err(_) => Lz4Scratch::default().blocks(input, out),
        })
        .unwrap_or_else(|_| Lz4Scratch::default().blocks(input, out))?;
    out.put_u32_le(0); // end mark
    Ok(())
}

/// What [`lz4_compress`] reuses from batch to batch: the output of one block and the
/// compressor's hash table.
struct Lz4Scratch {
    block: Vec<u8>,
    table: lz4_flex::block::CompressTable,
}

impl Default for Lz4Scratch {
    fn default() -> Self {
        Self {
            block: Vec::new(),
            table: lz4_flex::block::CompressTable::large(),
        }
    }
}

impl Lz4Scratch {
    /// Appends `input`'s blocks, each its length word and bytes, to `out`.
    fn blocks(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
        for chunk in input.chunks(LZ4_BLOCK) {
            let max = lz4_flex::block::get_maximum_output_size(chunk.len());
            if self.block.len() < max {
                self.block.resize(max, 0);
            }
            let n =
                lz4_flex::block::compress_into_with_table(chunk, &mut self.block, &mut self.table)
                    .map_err(|e| RecordsError::codec(Compression::Lz4, e))?;
            // Both at most 64 KiB + a little: a chunk is at most LZ4_BLOCK.
            let word = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
            if n < chunk.len() {
                out.put_u32_le(word(n));
                out.extend_from_slice(&self.block[..n]);
            } else {
                out.put_u32_le(word(chunk.len()) | LZ4_UNCOMPRESSED);
                out.extend_from_slice(chunk);
            }
        }
        Ok(())
    }
}

/// LZ4 frame magic, and the range of skippable frames' magics.
const LZ4_MAGIC: u32 = 0x184D_2204;
const LZ4_SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
/// How far back a linked block's matches may reach.
const LZ4_WINDOW: usize = 64 * 1024;

/// Reads LZ4 frames block by block into one output, decoding each block with
/// `lz4_flex::block`. Not `lz4_flex::frame::FrameDecoder`: it zeroes a buffer of the
/// frame's declared block size (twice that for linked blocks) for every frame, and
/// franz-go declares 4 MiB, so every small batch cost megabytes of memset and page
/// faults (a 1,000-partition topic of small batches took 90 s to consume, not 1). Here a
/// block's output is guessed from its compressed size and doubled until it fits, at most
/// the block size and never past `limit`.
///
/// Checksums (block, content, header) are skipped, not checked: the batch's CRC-32C,
/// checked before decompressing, covers these bytes. Linked blocks are read too (Java's
/// reader refuses them), with matches reaching back into the frame's earlier output.
fn lz4_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    let mut rest = Cursor::new(input);
    while !rest.is_empty() {
        let magic = lz4_u32(&mut rest)?;
        if LZ4_SKIPPABLE.contains(&magic) {
            let len = lz4_u32(&mut rest)?;
            lz4_take(&mut rest, usize::try_from(len).unwrap_or(usize::MAX))?;
            continue;
        }
        if magic != LZ4_MAGIC {
            return Err(lz4_error("not an LZ4 frame (bad magic)"));
        }
        let [flg, bd] = [lz4_u8(&mut rest)?, lz4_u8(&mut rest)?];
        if flg >> 6 != 1 {
            return Err(lz4_error("unsupported LZ4 frame version"));
        }
        if flg & 0x01 != 0 {
            return Err(lz4_error(
                "LZ4 frames with a dictionary id are not supported",
            ));
        }
        let linked = flg & 0x20 == 0;
        let block_checksums = flg & 0x10 != 0;
        let content_checksum = flg & 0x04 != 0;
        let block_size = match (bd >> 4) & 0x07 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return Err(lz4_error("bad LZ4 block size in the frame descriptor")),
        };
        if flg & 0x08 != 0 {
            lz4_take(&mut rest, 8)?; // content size
        }
        lz4_take(&mut rest, 1)?; // header checksum
        let frame_start = out.len();
        loop {
            let word = lz4_u32(&mut rest)?;
            if word == 0 {
                break; // end mark
            }
            let len = usize::try_from(word & 0x7FFF_FFFF).unwrap_or(usize::MAX);
            if len > block_size {
                return Err(lz4_error("an LZ4 block larger than the frame's block size"));
            }
            let block = lz4_take(&mut rest, len)?;
            if block_checksums {
                lz4_take(&mut rest, 4)?;
            }
            if word & LZ4_UNCOMPRESSED != 0 {
                if out.len() + len > limit {
                    return Err(RecordsError::DecompressedTooLarge { limit });
                }
                out.extend_from_slice(block);
            } else {
                let window = linked.then_some(frame_start);
                lz4_block(&mut out, block, block_size, window, limit)?;
            }
        }
        if content_checksum {
            lz4_take(&mut rest, 4)?;
        }
    }
    Ok(out)
}

/// Decodes one compressed block onto the end of `out`: into a zeroed guess of its size,
/// doubled while too small, up to `block_size` and `limit`. `window` is where the frame's
/// output starts for linked blocks (their matches may reach back into it).
fn lz4_block(
    out: &mut Vec<u8>,
    block: &[u8],
    block_size: usize,
    window: Option<usize>,
    limit: usize,
) -> Result<(), RecordsError> {
    let start = out.len();
    let cap = block_size.min(limit - start);
    let mut guess = block.len().saturating_mul(4).max(1024).min(cap);
    loop {
        out.resize(start + guess, 0);
        let (done, room) = out.split_at_mut(start);
        let decoded = match window {
            None => lz4_flex::block::decompress_into(block, room),
            Some(from) => {
                let dict = &done[from.max(start.saturating_sub(LZ4_WINDOW))..];
                lz4_flex::block::decompress_into_with_dict(block, room, dict)
            }
        };
        match decoded {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if guess < cap => {
                guess = guess.saturating_mul(2).min(cap);
            }
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if cap < block_size => {
                return Err(RecordsError::DecompressedTooLarge { limit });
            }
            Err(e) => {
                out.truncate(start);
                return Err(RecordsError::codec(Compression::Lz4, e));
            }
        }
    }
}

fn lz4_error(message: &'static str) -> RecordsError {
    RecordsError::codec(Compression::Lz4, message)
}

/// The next `n` bytes of an LZ4 input (`Cursor::take`, as the frame's error).
fn lz4_take<'a>(rest: &mut Cursor<'a>, n: usize) -> Result<&'a [u8], RecordsError> {
    i32::try_from(n)
        .ok()
        .and_then(|n| rest.take(n))
        .ok_or_else(|| lz4_error("LZ4 frame cut short"))
}

fn lz4_u32(rest: &mut Cursor<'_>) -> Result<u32, RecordsError> {
    let b = lz4_take(rest, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn lz4_u8(rest: &mut Cursor<'_>) -> Result<u8, RecordsError> {
    rest.byte().map_err(|_| lz4_error("LZ4 frame cut short"))
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
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
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

    #[test]
    fn lz4_frame_header_is_what_java_accepts() {
        let mut out = BytesMut::new();
        compress(Compression::Lz4, &sample(200_000), &mut out).unwrap();
        assert_eq!(&out[..4], &0x184D_2204u32.to_le_bytes());
        let flg = out[4];
        assert_eq!(flg >> 6, 1, "version 01");
        assert_eq!(flg & 0b0010_0000, 0b0010_0000, "block independence");
        assert_eq!(flg & 0b0001_1111, 0, "no checksums, size, or dict id");
        assert_eq!(out[5], 4 << 4, "64 KiB blocks");
        assert_eq!(out[6], 0x82, "correct header checksum (xxh32 >> 8)");
    }

    /// Our frames read back by lz4_flex's own frame decoder (which checks the header
    /// checksum), at block boundaries, empty, and incompressible (blocks stored as is).
    #[test]
    fn lz4_frames_are_read_by_another_decoder() {
        let mut noise = Vec::with_capacity(200_000);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push((x >> 24) as u8);
        }
        let block = LZ4_BLOCK;
        for input in [
            Vec::new(),
            sample(1),
            sample(block - 1),
            sample(block),
            sample(block + 1),
            sample(3 * block + 17),
            noise,
        ] {
            let mut out = BytesMut::new();
            compress(Compression::Lz4, &input, &mut out).unwrap();
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == input, "{} bytes", input.len());
            assert_eq!(decompress(Compression::Lz4, &out, 1 << 20).unwrap(), input);
        }
        // Incompressible blocks are stored as is: the frame is the input plus framing.
        let mut out = BytesMut::new();
        let input: Vec<u8> = (0..=255u8).collect();
        compress(Compression::Lz4, &input, &mut out).unwrap();
        assert_eq!(out.len(), LZ4_HEADER.len() + 4 + input.len() + 4);
        assert_eq!(&out[7..11], &(256 | LZ4_UNCOMPRESSED).to_le_bytes());
    }

    #[test]
    fn lz4_reads_a_frame_laid_out_like_javas() {
        // Lz4BlockOutputStream's header, then one block stored uncompressed (high bit set,
        // as Java does when compression does not pay), one compressed block, the end mark.
        let mut frame = vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
        frame.extend_from_slice(&(5u32 | 0x8000_0000).to_le_bytes());
        frame.extend_from_slice(b"hello");
        let block = lz4_flex::block::compress(&[b'x'; 100]);
        frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
        frame.extend_from_slice(&block);
        frame.extend_from_slice(&0u32.to_le_bytes());
        let out = decompress(Compression::Lz4, &frame, 1 << 10).unwrap();
        assert_eq!(&out[..5], b"hello");
        assert_eq!(&out[5..], &[b'x'; 100][..]);
    }

    /// Frames as other producers write them: franz-go's 4 MiB blocks, librdkafka's and
    /// lz4's linked blocks, block and content checksums, a content size; each read back
    /// exactly, and a frame of more than `limit` refused.
    #[test]
    fn lz4_reads_frames_of_every_block_size_and_mode() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let big = sample(300_000);
        for size in [
            BlockSize::Max64KB,
            BlockSize::Max256KB,
            BlockSize::Max1MB,
            BlockSize::Max4MB,
        ] {
            for mode in [BlockMode::Independent, BlockMode::Linked] {
                for input in [&b"one small record"[..], &big] {
                    let info = FrameInfo::new()
                        .block_size(size)
                        .block_mode(mode)
                        .block_checksums(true)
                        .content_checksum(true)
                        .content_size(Some(input.len() as u64));
                    let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
                    encoder.write_all(input).unwrap();
                    let frame = encoder.finish().unwrap();
                    let back = decompress(Compression::Lz4, &frame, 1 << 20).unwrap();
                    assert!(back == input, "{size:?} {mode:?} {} bytes", input.len());
                    let small = decompress(Compression::Lz4, &frame, input.len() - 1);
                    assert!(
                        matches!(small, Err(RecordsError::DecompressedTooLarge { .. })),
                        "{size:?} {mode:?}: {small:?}"
                    );
                }
            }
        }
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
