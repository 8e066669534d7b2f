//! The Confluent wire format: no I/O, parse and check only.
//!
//! ```text
//! byte 0      magic byte, always 0
//! bytes 1..5  schema id, 4-byte big-endian (the registry's id, not a version)
//! Protobuf only: the message-index list, zig-zag varints: count, then one index per
//!             nesting level naming the message inside the .proto file; the list [0]
//!             (the first top-level message, the common case) is the single byte 0
//! the rest    the payload, encoded with that schema (Avro datum, Protobuf message, JSON)
//! ```
//!
//! Every length read from the bytes is checked against the bytes that remain, so a
//! corrupt record costs an error, never a panic or a large allocation.

use crate::error::{Error, Result};

/// The first byte of every framed record.
pub const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Append the 5-byte header for schema `id` to `out`.
pub fn write_header(id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
}

/// Split a framed record into its schema id and the rest (for Protobuf: the message
/// indexes and the payload; see [`read_message_indexes`]).
pub fn read_header(bytes: &[u8]) -> Result<(u32, &[u8])> {
    let Some((&magic, rest)) = bytes.split_first() else {
        return Err(Error::ShortBuffer {
            needed: HEADER_LEN,
            available: 0,
        });
    };
    if magic != MAGIC {
        return Err(Error::WrongMagic { found: magic });
    }
    let Some((id, payload)) = rest.split_first_chunk::<4>() else {
        return Err(Error::ShortBuffer {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    };
    Ok((u32::from_be_bytes(*id), payload))
}

/// Append a Protobuf message-index list; `[0]` (and the empty list, its equivalent) is
/// written as the single byte 0, as the Java, Go and Python serializers do.
pub fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes.is_empty() || indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(indexes.len() as i32, out);
    for &i in indexes {
        write_zigzag(i, out);
    }
}

/// Read a Protobuf message-index list from the start of `bytes` (after the header);
/// returns the indexes (`[0]` for the single byte 0) and the payload after them.
pub fn read_message_indexes(bytes: &[u8]) -> Result<(Vec<i32>, &[u8])> {
    let (count, mut rest) = read_zigzag(bytes)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if count < 0 {
        return Err(Error::BadMessageIndexes("negative count"));
    }
    // Each index takes at least one byte: a count beyond the bytes left is corrupt, and
    // checking first bounds the allocation by the input.
    if count as usize > rest.len() {
        return Err(Error::BadMessageIndexes("count exceeds the bytes left"));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (i, r) = read_zigzag(rest)?;
        if i < 0 {
            return Err(Error::BadMessageIndexes("negative index"));
        }
        indexes.push(i);
        rest = r;
    }
    Ok((indexes, rest))
}

fn write_zigzag(v: i32, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn read_zigzag(bytes: &[u8]) -> Result<(i32, &[u8])> {
    let mut u: u32 = 0;
    for (n, &b) in bytes.iter().enumerate().take(5) {
        if n == 4 && b > 0x0f {
            return Err(Error::BadMessageIndexes("varint longer than 32 bits"));
        }
        u |= u32::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            let v = ((u >> 1) as i32) ^ -((u & 1) as i32);
            return Ok((v, &bytes[n + 1..]));
        }
    }
    if bytes.len() < 5 {
        Err(Error::BadMessageIndexes("varint cut short"))
    } else {
        Err(Error::BadMessageIndexes("varint longer than 32 bits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_is_magic_then_big_endian_id() {
        let mut out = Vec::new();
        write_header(0x0102_0304, &mut out);
        out.extend_from_slice(b"payload");
        assert_eq!(&out[..5], &[0, 1, 2, 3, 4]);
        let (id, payload) = read_header(&out).unwrap();
        assert_eq!(id, 0x0102_0304);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn header_errors_are_typed() {
        assert!(matches!(
            read_header(&[]),
            Err(Error::ShortBuffer {
                needed: 5,
                available: 0
            })
        ));
        assert!(matches!(
            read_header(&[0, 0, 1]),
            Err(Error::ShortBuffer {
                needed: 5,
                available: 3
            })
        ));
        assert!(matches!(
            read_header(b"{\"json\":1}"),
            Err(Error::WrongMagic { found: b'{' })
        ));
        // Exactly a header: an empty payload is legal (an Avro null, an empty message).
        assert_eq!(read_header(&[0, 0, 0, 0, 7]).unwrap(), (7, &[][..]));
    }

    #[test]
    fn message_indexes_shortcut_and_known_bytes() {
        let mut out = Vec::new();
        write_message_indexes(&[0], &mut out);
        assert_eq!(out, [0]);
        out.clear();
        write_message_indexes(&[], &mut out);
        assert_eq!(out, [0]);
        // [1, 2]: count 2 -> zig-zag 4, 1 -> 2, 2 -> 4 (what Confluent's Java writes).
        out.clear();
        write_message_indexes(&[1, 2], &mut out);
        assert_eq!(out, [4, 2, 4]);
        assert_eq!(read_message_indexes(&[0, 9]).unwrap(), (vec![0], &[9][..]));
        assert_eq!(
            read_message_indexes(&[4, 2, 4, 9]).unwrap(),
            (vec![1, 2], &[9][..])
        );
    }

    #[test]
    fn message_index_errors_are_typed() {
        // Count 1 (zig-zag 2) and nothing after it.
        assert!(matches!(
            read_message_indexes(&[2]),
            Err(Error::BadMessageIndexes(_))
        ));
        // Negative count (zig-zag 1 = -1).
        assert!(matches!(
            read_message_indexes(&[1]),
            Err(Error::BadMessageIndexes("negative count"))
        ));
        // A huge count in few bytes must not allocate.
        assert!(matches!(
            read_message_indexes(&[0xfe, 0xff, 0xff, 0xff, 0x07]),
            Err(Error::BadMessageIndexes("count exceeds the bytes left"))
        ));
        assert!(matches!(
            read_message_indexes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(Error::BadMessageIndexes("varint longer than 32 bits"))
        ));
        assert!(matches!(
            read_message_indexes(&[0x80]),
            Err(Error::BadMessageIndexes("varint cut short"))
        ));
    }

    proptest! {
        #[test]
        fn framed_record_round_trips(
            id in any::<u32>(),
            indexes in proptest::collection::vec(0i32..=i32::MAX, 0..6),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut out = Vec::new();
            write_header(id, &mut out);
            write_message_indexes(&indexes, &mut out);
            out.extend_from_slice(&payload);
            let (got_id, rest) = read_header(&out).unwrap();
            prop_assert_eq!(got_id, id);
            let (got, rest) = read_message_indexes(rest).unwrap();
            let want = if indexes.is_empty() { vec![0] } else { indexes.clone() };
            prop_assert_eq!(got, want);
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok((_, rest)) = read_header(&bytes) {
                let _ = read_message_indexes(rest);
            }
            let _ = read_message_indexes(&bytes);
        }

        #[test]
        fn zigzag_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            write_zigzag(v, &mut out);
            prop_assert!(out.len() <= 5);
            prop_assert_eq!(read_zigzag(&out).unwrap(), (v, &[][..]));
        }
    }
}
