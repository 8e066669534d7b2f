//! [`Header`]: the one record header type of produce, consume and the pipeline.
//!
//! A leaf: it imports nothing of this crate.

use std::fmt;

use bytes::Bytes;

/// One record header: a UTF-8 key and an optional value (Kafka allows a null value, and
/// keys may repeat). The same type on every record: a
/// [`ProducerRecord`](crate::producer::ProducerRecord) carries a `Vec<Header>`, a
/// [`ConsumerRecord`](crate::consumer::ConsumerRecord) yields them, and the pipeline's
/// records carry a `Vec<Header>` too.
///
/// Key and value are [`Bytes`]: a consumed header is two slices of the fetch response's
/// buffer (no copy), and cloning a header is two reference counts.
///
/// **Keys are UTF-8.** Kafka's protocol calls the key a string and the Java client decodes
/// it as UTF-8, replacing malformed bytes with U+FFFD. A consumed header does the same:
/// a key that is valid UTF-8 (every key a real client writes) is used as it is, without
/// a copy; a malformed one is decoded lossily (U+FFFD), the only case that allocates.
///
/// Every record type looks headers up the same way: `last_header(name)` gives the last
/// header of that name (Java's `Headers.lastHeader`), `header_value(name)` its value.
///
/// ```
/// use bytes::Bytes;
/// use sluice_wire::Header;
///
/// let trace = Header::new("trace-id", Some(Bytes::from_static(b"abc")));
/// assert_eq!(trace.key(), "trace-id");
/// assert_eq!(trace.value(), Some(&b"abc"[..]));
///
/// let marker = Header::new("null-marker", None);
/// assert_eq!(marker.value(), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Always valid UTF-8 (checked or made so where it is built).
    key: Bytes,
    value: Option<Bytes>,
}

impl Header {
    /// A header with `key` and `value` (`None`: a null value). A `String` key becomes the
    /// header's buffer without a copy.
    pub fn new(key: impl Into<String>, value: Option<Bytes>) -> Self {
        Header {
            key: Bytes::from(key.into()),
            value,
        }
    }

    /// A header whose key is a `&'static str`: no allocation at all, for the fixed header
    /// names a sender writes on every record.
    ///
    /// ```
    /// use sluice_wire::Header;
    ///
    /// let source = Header::from_static("source", Some("web".into()));
    /// assert_eq!(source.key(), "source");
    /// ```
    pub fn from_static(key: &'static str, value: Option<Bytes>) -> Self {
        Header {
            key: Bytes::from_static(key.as_bytes()),
            value,
        }
    }

    /// A header decoded from the wire: `key` is used as it is when it is UTF-8 and decoded
    /// lossily (U+FFFD) when not.
    pub(crate) fn decoded(key: Bytes, value: Option<Bytes>) -> Self {
        let key = match std::str::from_utf8(&key) {
            Ok(_) => key,
            Err(_) => Bytes::from(String::from_utf8_lossy(&key).into_owned()),
        };
        Header { key, value }
    }

    /// The key.
    pub fn key(&self) -> &str {
        // The key is UTF-8 by construction; the empty fallback is unreachable.
        std::str::from_utf8(&self.key).unwrap_or_default()
    }

    /// The value; `None` when it is null.
    pub fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The value as [`Bytes`], for passing it on without a copy.
    pub fn value_bytes(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// Takes the header apart: the key's bytes (UTF-8) and the value.
    pub fn into_parts(self) -> (Bytes, Option<Bytes>) {
        (self.key, self.value)
    }

    /// Whether the key is `name`, without decoding it.
    pub(crate) fn is(&self, name: &str) -> bool {
        self.key.as_ref() == name.as_bytes()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("key", &self.key())
            .field("value", &self.value)
            .finish()
    }
}

/// The last header called `name` in `headers` (Java: `Headers.lastHeader(name)`).
pub(crate) fn last_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a Header> {
    headers.iter().rev().find(|h| h.is(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_key_from_the_wire_is_decoded_lossily() {
        let h = Header::decoded(Bytes::from_static(b"ok\xff"), None);
        assert_eq!(h.key(), "ok\u{fffd}");
        let h = Header::decoded(Bytes::from_static(b"trace"), Some(Bytes::from_static(b"v")));
        assert_eq!((h.key(), h.value()), ("trace", Some(&b"v"[..])));
    }

    #[test]
    fn last_header_takes_the_last_of_a_name() {
        let hs = [
            Header::from_static("a", Some(Bytes::from_static(b"1"))),
            Header::from_static("b", None),
            Header::from_static("a", Some(Bytes::from_static(b"2"))),
        ];
        assert_eq!(
            last_header(&hs, "a").and_then(Header::value),
            Some(&b"2"[..])
        );
        assert_eq!(last_header(&hs, "b").map(Header::value), Some(None));
        assert!(last_header(&hs, "c").is_none());
    }
}
