//! Zigzag varints as Kafka's `ByteUtils` writes them (protobuf encoding, signed values
//! zigzag-mapped first). No I/O: writers append to a [`BufMut`]; [`Cursor`], the one
//! reader, walks a slice with one fast path for the 1- and 2-byte forms.

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
    let mut cursor = Cursor::new(input);
    Ok((cursor.varint()?, cursor.pos()))
}

/// Reads a zigzag varlong (at most 10 bytes) from the start of `input`.
#[cfg(test)]
pub(crate) fn read_varlong(input: &[u8]) -> Result<(i64, usize), RecordsError> {
    let mut cursor = Cursor::new(input);
    Ok((cursor.varlong()?, cursor.pos()))
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

/// Bounds-checked reading of varints and length-prefixed fields from a shrinking slice:
/// the one reader of Kafka varints. Ranges (relative to where the cursor started) are
/// returned, not slices, so callers can cut `Bytes` from the same positions.
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    /// The length the cursor started with: `len - rest.len()` is the position.
    len: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    #[inline(always)]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor {
            rest: data,
            len: data.len(),
        }
    }

    /// Bytes read so far.
    #[inline(always)]
    pub(crate) fn pos(&self) -> usize {
        self.len - self.rest.len()
    }

    /// The length the cursor started with.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when every byte has been read.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `len` bytes, or `None` if `len` is negative or more than what is left.
    #[inline(always)]
    pub(crate) fn take(&mut self, len: i32) -> Option<&'a [u8]> {
        // A negative length turns into a huge one and fails the same check.
        let len = usize::try_from(len).ok()?;
        let (taken, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(taken)
    }

    /// One byte.
    #[inline(always)]
    pub(crate) fn byte(&mut self) -> Result<u8, RecordsError> {
        let [b, ref rest @ ..] = *self.rest else {
            return Err(RecordsError::Truncated);
        };
        self.rest = rest;
        Ok(b)
    }

    /// An unsigned varint of at most `max_bytes` (5 or 10) bytes, not yet zigzag-decoded.
    /// The hot path: record lengths, deltas and field lengths are almost always 1 or 2
    /// bytes long, so those are read here with no loop; longer ones (and every error) take
    /// the general loop out of line, so the cursor can stay in registers.
    #[inline(always)]
    fn raw(&mut self, max_bytes: usize) -> Result<u64, RecordsError> {
        if let [b0, ref rest @ ..] = *self.rest {
            if b0 < 0x80 {
                self.rest = rest;
                return Ok(u64::from(b0));
            }
            if let [b1, ref rest @ ..] = *rest {
                if b1 < 0x80 {
                    self.rest = rest;
                    return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
                }
            }
        }
        let (raw, used) = read_unsigned_long(self.rest, max_bytes)?;
        self.rest = self.rest.get(used..).unwrap_or_default();
        Ok(raw)
    }

    /// A varint (at most 5 bytes), not yet zigzag-decoded. Bits past the 32nd are
    /// dropped, as Kafka's `ByteUtils.readVarint` does.
    #[inline(always)]
    pub(crate) fn raw_varint(&mut self) -> Result<u32, RecordsError> {
        self.raw(5).map(|raw| raw as u32)
    }

    /// A zigzag varint (at most 5 bytes).
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Result<i32, RecordsError> {
        self.raw_varint().map(unzigzag32)
    }

    /// A zigzag varlong (at most 10 bytes).
    #[inline(always)]
    pub(crate) fn varlong(&mut self) -> Result<i64, RecordsError> {
        self.raw(10).map(unzigzag64)
    }

    /// A varint length (-1 = null) and that many bytes, as a range; `field` names the
    /// length in the error for any other negative value.
    #[inline(always)]
    pub(crate) fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<(usize, usize)>, RecordsError> {
        let raw = self.raw_varint()?;
        // Zigzag: even raw values are the lengths >= 0, raw 1 is -1 (null).
        if raw & 1 == 0 {
            let start = self.pos();
            let Some(rest) = self.rest.get((raw >> 1) as usize..) else {
                return Err(RecordsError::Truncated);
            };
            self.rest = rest;
            return Ok(Some((start, self.pos())));
        }
        if raw == 1 {
            return Ok(None);
        }
        Err(invalid_length(field, unzigzag32(raw)))
    }
}

/// The error for a length field holding `value`.
#[cold]
pub(crate) fn invalid_length(field: &'static str, value: i32) -> RecordsError {
    RecordsError::InvalidLength {
        field,
        value: i64::from(value),
    }
}

fn unzigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn unzigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// The general loop, for varints longer than 2 bytes (and every error).
#[inline(never)]
fn read_unsigned_long(input: &[u8], max_bytes: usize) -> Result<(u64, usize), RecordsError> {
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
