//! Kafka's LZ4 framing: the LZ4 frame format, written as Java's
//! `Lz4BlockOutputStream` writes it and read as every producer writes it, with
//! `lz4_flex::block` compressing and decompressing the blocks.

use std::cell::RefCell;

use bytes::{BufMut, BytesMut};

use super::varint::Cursor;
use super::{Compression, RecordsError};

/// The LZ4 frame header Java's `Lz4BlockOutputStream` writes: the magic, FLG `0x60`
/// (version 01, independent blocks, no checksums, no content size, no dictionary), BD
/// `0x40` (64 KiB blocks) and the header checksum, `(xxh32(FLG BD) >> 8) & 0xFF`.
const HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
/// The block size `HEADER` declares.
const BLOCK: usize = 64 * 1024;
/// A block's length word with this bit set: the block is stored as is.
const UNCOMPRESSED: u32 = 0x8000_0000;

/// Writes `input` as one LZ4 frame laid out like Java's (see [`HEADER`]), each
/// 64 KiB block compressed by `lz4_flex::block` straight from `input`, through one
/// scratch block and hash table per thread. Not `lz4_flex::frame::FrameEncoder`: it
/// copies the input into a buffer of its own, compresses into another and copies that
/// out, and a new encoder per batch allocated and zeroed both (producing 500,000 1 KiB
/// records with lz4 took 1.9 CPU seconds through it, 1.3 this way). A block that does
/// not shrink is stored as is, as Java does.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    out.reserve(HEADER.len() + 4 * (input.len() / BLOCK + 2) + input.len());
    out.extend_from_slice(&HEADER);
    // A thread being torn down has no scratch left, and a reentrant call (there is
    // none) would find it borrowed: both compress through a scratch of their own.
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => scratch.blocks(input, out),
            Err(_) => Scratch::default().blocks(input, out),
        })
        .unwrap_or_else(|_| Scratch::default().blocks(input, out))?;
    out.put_u32_le(0); // end mark
    Ok(())
}

/// What [`compress`] reuses from batch to batch: the output of one block and the
/// compressor's hash table.
struct Scratch {
    block: Vec<u8>,
    table: lz4_flex::block::CompressTable,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            block: Vec::new(),
            table: lz4_flex::block::CompressTable::large(),
        }
    }
}

impl Scratch {
    /// Appends `input`'s blocks, each its length word and bytes, to `out`.
    fn blocks(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), RecordsError> {
        for chunk in input.chunks(BLOCK) {
            let max = lz4_flex::block::get_maximum_output_size(chunk.len());
            if self.block.len() < max {
                self.block.resize(max, 0);
            }
            let n =
                lz4_flex::block::compress_into_with_table(chunk, &mut self.block, &mut self.table)
                    .map_err(|e| RecordsError::codec(Compression::Lz4, e))?;
            // Both at most 64 KiB + a little: a chunk is at most BLOCK.
            let word = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
            if n < chunk.len() {
                out.put_u32_le(word(n));
                out.extend_from_slice(&self.block[..n]);
            } else {
                out.put_u32_le(word(chunk.len()) | UNCOMPRESSED);
                out.extend_from_slice(chunk);
            }
        }
        Ok(())
    }
}

/// LZ4 frame magic, and the range of skippable frames' magics.
const MAGIC: u32 = 0x184D_2204;
const SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
/// How far back a linked block's matches may reach.
const WINDOW: usize = 64 * 1024;

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
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    let mut rest = Cursor::new(input);
    while !rest.is_empty() {
        let magic = read_u32(&mut rest)?;
        if SKIPPABLE.contains(&magic) {
            let len = read_u32(&mut rest)?;
            take(&mut rest, usize::try_from(len).unwrap_or(usize::MAX))?;
            continue;
        }
        if magic != MAGIC {
            return Err(error("not an LZ4 frame (bad magic)"));
        }
        let [flg, bd] = [read_u8(&mut rest)?, read_u8(&mut rest)?];
        if flg >> 6 != 1 {
            return Err(error("unsupported LZ4 frame version"));
        }
        if flg & 0x01 != 0 {
            return Err(error("LZ4 frames with a dictionary id are not supported"));
        }
        let linked = flg & 0x20 == 0;
        let block_checksums = flg & 0x10 != 0;
        let content_checksum = flg & 0x04 != 0;
        let block_size = match (bd >> 4) & 0x07 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return Err(error("bad LZ4 block size in the frame descriptor")),
        };
        if flg & 0x08 != 0 {
            take(&mut rest, 8)?; // content size
        }
        take(&mut rest, 1)?; // header checksum
        let frame_start = out.len();
        loop {
            let word = read_u32(&mut rest)?;
            if word == 0 {
                break; // end mark
            }
            let len = usize::try_from(word & 0x7FFF_FFFF).unwrap_or(usize::MAX);
            if len > block_size {
                return Err(error("an LZ4 block larger than the frame's block size"));
            }
            let block = take(&mut rest, len)?;
            if block_checksums {
                take(&mut rest, 4)?;
            }
            if word & UNCOMPRESSED != 0 {
                if out.len() + len > limit {
                    return Err(RecordsError::DecompressedTooLarge { limit });
                }
                out.extend_from_slice(block);
            } else {
                let window = linked.then_some(frame_start);
                decode_block(&mut out, block, block_size, window, limit)?;
            }
        }
        if content_checksum {
            take(&mut rest, 4)?;
        }
    }
    Ok(out)
}

/// Decodes one compressed block onto the end of `out`: into a zeroed guess of its size,
/// doubled while too small, up to `block_size` and `limit`. `window` is where the frame's
/// output starts for linked blocks (their matches may reach back into it).
fn decode_block(
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
                let dict = &done[from.max(start.saturating_sub(WINDOW))..];
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

fn error(message: &'static str) -> RecordsError {
    RecordsError::codec(Compression::Lz4, message)
}

/// The next `n` bytes of an LZ4 input (`Cursor::take`, as the frame's error).
fn take<'a>(rest: &mut Cursor<'a>, n: usize) -> Result<&'a [u8], RecordsError> {
    i32::try_from(n)
        .ok()
        .and_then(|n| rest.take(n))
        .ok_or_else(|| error("LZ4 frame cut short"))
}

fn read_u32(rest: &mut Cursor<'_>) -> Result<u32, RecordsError> {
    let b = take(rest, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u8(rest: &mut Cursor<'_>) -> Result<u8, RecordsError> {
    rest.byte().map_err(|_| error("LZ4 frame cut short"))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::records::compression::tests::sample;

    #[test]
    fn lz4_frame_header_is_what_java_accepts() {
        let mut out = BytesMut::new();
        compress(&sample(200_000), &mut out).unwrap();
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
        let block = BLOCK;
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
            compress(&input, &mut out).unwrap();
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == input, "{} bytes", input.len());
            assert_eq!(decompress(&out, 1 << 20).unwrap(), input);
        }
        // Incompressible blocks are stored as is: the frame is the input plus framing.
        let mut out = BytesMut::new();
        let input: Vec<u8> = (0..=255u8).collect();
        compress(&input, &mut out).unwrap();
        assert_eq!(out.len(), HEADER.len() + 4 + input.len() + 4);
        assert_eq!(&out[7..11], &(256 | UNCOMPRESSED).to_le_bytes());
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
        let out = decompress(&frame, 1 << 10).unwrap();
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
                    let back = decompress(&frame, 1 << 20).unwrap();
                    assert!(back == input, "{size:?} {mode:?} {} bytes", input.len());
                    let small = decompress(&frame, input.len() - 1);
                    assert!(
                        matches!(small, Err(RecordsError::DecompressedTooLarge { .. })),
                        "{size:?} {mode:?}: {small:?}"
                    );
                }
            }
        }
    }
}
