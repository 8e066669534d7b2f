//! The serializers every client has: strings, raw bytes, Java's fixed-width numbers, and
//! the null of a record without a key.

use bytes::Bytes;

use super::{CodecError, Deserializer, Serializer};
use crate::header::Header;

/// `str` and `String` as UTF-8 (Java: `StringSerializer` / `StringDeserializer` with
/// their default encoding). Deserializing bytes that are not UTF-8 is an error: Java
/// would replace them with U+FFFD, hiding a record that is not what the topic promises.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Serializer<str> for Utf8 {
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        value: &str,
    ) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }
}

impl Serializer<String> for Utf8 {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        value: &String,
    ) -> Result<Option<Bytes>, CodecError> {
        Serializer::<str>::serialize(self, topic, headers, value)
    }
}

impl Deserializer<String> for Utf8 {
    fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<String, CodecError> {
        match std::str::from_utf8(data) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(CodecError::with_source(
                format!("{} bytes that are not UTF-8", data.len()),
                e,
            )),
        }
    }
}

/// Bytes as they are: `[u8]`, `Vec<u8>` and [`Bytes`] (Java: `ByteArraySerializer`,
/// `BytesSerializer`). A [`Bytes`] is sent and received without a copy: a consumed one is
/// a view of the fetch response's buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Serializer<[u8]> for RawBytes {
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        value: &[u8],
    ) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(Bytes::copy_from_slice(value)))
    }
}

impl Serializer<Vec<u8>> for RawBytes {
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        value: &Vec<u8>,
    ) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(Bytes::copy_from_slice(value)))
    }
}

impl Serializer<Bytes> for RawBytes {
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        value: &Bytes,
    ) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(value.clone()))
    }
}

impl Deserializer<Bytes> for RawBytes {
    fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<Bytes, CodecError> {
        Ok(data.clone())
    }
}

impl Deserializer<Vec<u8>> for RawBytes {
    fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<Vec<u8>, CodecError> {
        Ok(data.to_vec())
    }
}

/// Fixed-width numbers in big-endian order, Java's widths: `i16`, `i32`, `i64` (two's
/// complement) and `f32`, `f64` (IEEE 754 bits), as Java's `ShortSerializer`,
/// `IntegerSerializer`, `LongSerializer`, `FloatSerializer` and `DoubleSerializer` write
/// them. Bytes of another length are an error, as in Java.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($t:ty => $java:literal),* $(,)?) => {$(
        impl Serializer<$t> for BigEndian {
            fn serialize(&self, _: &str, _: &mut Vec<Header>, value: &$t) -> Result<Option<Bytes>, CodecError> {
                Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
            }
        }

        impl Deserializer<$t> for BigEndian {
            fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<$t, CodecError> {
                match <[u8; std::mem::size_of::<$t>()]>::try_from(&data[..]) {
                    Ok(bytes) => Ok(<$t>::from_be_bytes(bytes)),
                    Err(_) => Err(CodecError::new(format!(
                        "{} bytes where an {} ({}) takes {}",
                        data.len(),
                        stringify!($t),
                        $java,
                        std::mem::size_of::<$t>()
                    ))),
                }
            }
        }
    )*};
}

big_endian!(i16 => "Java short", i32 => "Java int", i64 => "Java long", f32 => "Java float", f64 => "Java double");

/// `()` as a null: the key of a topic whose records have none (Java: `VoidSerializer`).
/// A record that does have bytes there fails to deserialize, as in Java.
#[derive(Debug, Clone, Copy, Default)]
pub struct Void;

impl Serializer<()> for Void {
    fn serialize(&self, _: &str, _: &mut Vec<Header>, _: &()) -> Result<Option<Bytes>, CodecError> {
        Ok(None)
    }
}

impl Deserializer<()> for Void {
    fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<(), CodecError> {
        Err(CodecError::new(format!(
            "{} bytes where a null was expected",
            data.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser<T: ?Sized>(s: &impl Serializer<T>, value: &T) -> Option<Bytes> {
        s.serialize("t", &mut Vec::new(), value).unwrap()
    }

    fn de<T>(d: &impl Deserializer<T>, data: &[u8]) -> Result<T, CodecError> {
        d.deserialize("t", &[], &Bytes::copy_from_slice(data))
    }

    #[test]
    fn strings_are_utf8_both_ways() {
        assert_eq!(ser(&Utf8, "grüße").as_deref(), Some("grüße".as_bytes()));
        assert_eq!(ser(&Utf8, &String::from("ok")).as_deref(), Some(&b"ok"[..]));
        // An empty string is empty bytes, not a null.
        assert_eq!(ser(&Utf8, "").as_deref(), Some(&b""[..]));
        let back: String = de(&Utf8, "grüße".as_bytes()).unwrap();
        assert_eq!(back, "grüße");
        let bad = de::<String>(&Utf8, b"ok\xff").unwrap_err();
        assert!(bad.to_string().contains("not UTF-8"), "{bad}");
        assert!(std::error::Error::source(&bad).is_some());
    }

    #[test]
    fn raw_bytes_pass_through_and_bytes_are_not_copied() {
        let data = Bytes::from_static(b"\x00\x01\xff");
        assert_eq!(ser(&RawBytes, &data[..]), Some(data.clone()));
        assert_eq!(ser(&RawBytes, &data.to_vec()), Some(data.clone()));
        let sent = ser(&RawBytes, &data).unwrap();
        assert_eq!(sent.as_ptr(), data.as_ptr());
        let back: Bytes = RawBytes.deserialize("t", &[], &data).unwrap();
        assert_eq!(back.as_ptr(), data.as_ptr());
        let back: Vec<u8> = de(&RawBytes, &data).unwrap();
        assert_eq!(back, [0, 1, 255]);
    }

    #[test]
    fn numbers_have_the_bytes_java_writes() {
        // new IntegerSerializer().serialize(t, 258), LongSerializer(-2), ShortSerializer(1),
        // FloatSerializer(1.0f), DoubleSerializer(-2.5).
        assert_eq!(ser(&BigEndian, &258i32).as_deref(), Some(&[0, 0, 1, 2][..]));
        assert_eq!(
            ser(&BigEndian, &-2i64).as_deref(),
            Some(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe][..])
        );
        assert_eq!(ser(&BigEndian, &1i16).as_deref(), Some(&[0, 1][..]));
        assert_eq!(
            ser(&BigEndian, &1.0f32).as_deref(),
            Some(&[0x3f, 0x80, 0, 0][..])
        );
        assert_eq!(
            ser(&BigEndian, &-2.5f64).as_deref(),
            Some(&[0xc0, 0x04, 0, 0, 0, 0, 0, 0][..])
        );
        assert_eq!(de::<i32>(&BigEndian, &[0x80, 0, 0, 0]).unwrap(), i32::MIN);
        assert_eq!(
            de::<i64>(&BigEndian, &[0, 0, 0, 0, 0, 0, 1, 0]).unwrap(),
            256
        );
        assert_eq!(de::<i16>(&BigEndian, &[0xff, 0xff]).unwrap(), -1);
        assert_eq!(de::<f32>(&BigEndian, &[0x3f, 0x80, 0, 0]).unwrap(), 1.0);
        assert_eq!(
            de::<f64>(&BigEndian, &[0xc0, 0x04, 0, 0, 0, 0, 0, 0]).unwrap(),
            -2.5
        );
    }

    #[test]
    fn numbers_of_the_wrong_width_are_errors() {
        let e = de::<i32>(&BigEndian, &[0, 0, 1]).unwrap_err();
        assert!(
            e.to_string()
                .contains("3 bytes where an i32 (Java int) takes 4"),
            "{e}"
        );
        assert!(de::<i64>(&BigEndian, &[0; 4]).is_err());
        assert!(de::<i16>(&BigEndian, &[]).is_err());
    }

    #[test]
    fn void_is_a_null_and_refuses_bytes() {
        assert_eq!(ser(&Void, &()), None);
        assert!(de::<()>(&Void, b"").is_err());
        assert!(de::<()>(&Void, b"key").is_err());
    }

    #[test]
    fn a_serializer_may_add_headers() {
        struct Tagged;
        impl Serializer<str> for Tagged {
            fn serialize(
                &self,
                topic: &str,
                headers: &mut Vec<Header>,
                value: &str,
            ) -> Result<Option<Bytes>, CodecError> {
                headers.push(Header::new(
                    "topic",
                    Some(Bytes::copy_from_slice(topic.as_bytes())),
                ));
                Utf8.serialize(topic, headers, value)
            }
        }
        let mut headers = Vec::new();
        let bytes = Tagged.serialize("orders", &mut headers, "v").unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"v"[..]));
        assert_eq!(
            headers,
            [Header::new("topic", Some(Bytes::from_static(b"orders")))]
        );
    }
}
