//! Zigzag varints as Kafka's `ByteUtils` writes them (protobuf encoding, signed values
//! zigzag-mapped first). No I/O: writers append to a [`BufMut`], readers take a slice and
//! say how many bytes they used.

use bytes::BufMut;

use super::RecordsError;

/// Bytes `put_varint(v)` writes.
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(zigzag32(value)))
}

/// Bytes `put_varlong(v)` writes.
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag64(value))
}

/// Appends `value` as a zigzag varint (1 to 5 bytes).
pub(crate) fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_unsigned(buf, u64::from(zigzag32(value)));
}

/// Appends `value` as a zigzag varlong (1 to 10 bytes).
pub(crate) fn put_varlong(buf: &mut impl BufMut, value: i64) {
    put_unsigned(buf, zigzag64(value));
}

/// Reads a zigzag varint from the start of `input`: `(value, bytes used)`.
///
/// Like Kafka's `ByteUtils.readVarint`, at most 5 bytes are read and bits past the 32nd
/// are dropped; a 5th byte that still has its continuation bit set is an error.
#[cfg(test)]
pub(crate) fn read_varint(input: &[u8]) -> Result<(i32, usize), RecordsError> {
    let (raw, used) = read_unsigned(input, 5)?;
    // Truncation to 32 bits is the documented behaviour for over-long values.
    let raw = raw as u32;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), used))
}

/// Reads a zigzag varlong (at most 10 bytes) from the start of `input`.
#[inline]
pub(crate) fn read_varlong(input: &[u8]) -> Result<(i64, usize), RecordsError> {
    let (raw, used) = read_unsigned(input, 10)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), used))
}

fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unsigned_len(value: u64) -> usize {
    // 7 payload bits per byte; 0 still takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_unsigned(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// The decoder's hot path: record lengths, deltas and field lengths are almost always 1
/// or 2 bytes long, so those are read inline with no loop; longer ones take the general
/// loop. `max_bytes` is 5 or 10, never below 2.
#[inline(always)]
fn read_unsigned(input: &[u8], max_bytes: usize) -> Result<(u64, usize), RecordsError> {
    match *input {
        [b0, ..] if b0 < 0x80 => Ok((u64::from(b0), 1)),
        [b0, b1, ..] if b1 < 0x80 => Ok((u64::from(b0 & 0x7f) | u64::from(b1) << 7, 2)),
        _ => read_unsigned_long(input, max_bytes),
    }
}

/// The general loop, for varints longer than 2 bytes (and every error).
#[inline(never)]
pub(crate) fn read_unsigned_long(
    input: &[u8],
    max_bytes: usize,
) -> Result<(u64, usize), RecordsError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().take(max_bytes).enumerate() {
        // shift <= 63 because max_bytes <= 10; bits shifted out are dropped on purpose.
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if input.len() < max_bytes {
        Err(RecordsError::Truncated)
    } else {
        Err(RecordsError::InvalidVarint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        // Values from Kafka's ByteUtilsTest.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, bytes) in cases {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf, bytes, "encoding {value}");
            assert_eq!(varint_len(value), bytes.len());
            assert_eq!(read_varint(bytes).unwrap(), (value, bytes.len()));
        }
    }

    #[test]
    fn varlong_extremes() {
        for value in [i64::MIN, i64::MAX, 0, -1] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, value);
            assert_eq!(buf.len(), varlong_len(value));
            assert_eq!(read_varlong(&buf).unwrap(), (value, buf.len()));
        }
        let mut buf = Vec::new();
        put_varlong(&mut buf, i64::MIN);
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn truncated_and_overlong_inputs_are_errors() {
        assert!(matches!(read_varint(&[]), Err(RecordsError::Truncated)));
        assert!(matches!(
            read_varint(&[0x80, 0x80]),
            Err(RecordsError::Truncated)
        ));
        assert!(matches!(
            read_varint(&[0x80; 5]),
            Err(RecordsError::InvalidVarint)
        ));
        assert!(matches!(
            read_varlong(&[0xff; 10]),
            Err(RecordsError::InvalidVarint)
        ));
    }

    proptest! {
        #[test]
        fn varint_round_trip(value: i32, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            prop_assert_eq!(buf.len(), varint_len(value));
            buf.extend_from_slice(&tail);
            prop_assert_eq!(read_varint(&buf).unwrap(), (value, varint_len(value)));
        }

        #[test]
        fn varlong_round_trip(value: i64) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, value);
            prop_assert_eq!(buf.len(), varlong_len(value));
            prop_assert_eq!(read_varlong(&buf).unwrap(), (value, buf.len()));
        }

        #[test]
        fn readers_never_panic(input in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = read_varint(&input);
            let _ = read_varlong(&input);
        }
    }
}
