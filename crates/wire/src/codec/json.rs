//! [`Json`]: any serde type as JSON (feature `json`).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CodecError, Deserializer, Serializer};
use crate::header::Header;

/// Any serde type as JSON text, with `serde_json` (feature `json`). Plain JSON, no schema
/// id in front: for records framed by a schema registry, use `sluice-schema`.
///
/// ```
/// use bytes::Bytes;
/// use serde::{Deserialize, Serialize};
/// use sluice_wire::codec::{Deserializer, Json, Serializer};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Order { id: u64 }
///
/// let bytes = Json.serialize("orders", &mut Vec::new(), &Order { id: 7 }).unwrap();
/// assert_eq!(bytes.as_deref(), Some(&br#"{"id":7}"#[..]));
/// let back: Order = Json.deserialize("orders", &[], &Bytes::from_static(br#"{"id":7}"#)).unwrap();
/// assert_eq!(back, Order { id: 7 });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + ?Sized> Serializer<T> for Json {
    fn serialize(
        &self,
        _: &str,
        _: &mut Vec<Header>,
        value: &T,
    ) -> Result<Option<Bytes>, CodecError> {
        match serde_json::to_vec(value) {
            Ok(v) => Ok(Some(Bytes::from(v))),
            Err(e) => Err(CodecError::with_source("the value has no JSON form", e)),
        }
    }
}

impl<T: DeserializeOwned> Deserializer<T> for Json {
    fn deserialize(&self, _: &str, _: &[Header], data: &Bytes) -> Result<T, CodecError> {
        serde_json::from_slice(data).map_err(|e| {
            CodecError::with_source(
                format!(
                    "{} bytes that are not the JSON of {}",
                    data.len(),
                    std::any::type_name::<T>()
                ),
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        items: Vec<String>,
    }

    #[test]
    fn a_serde_type_round_trips() {
        let order = Order {
            id: 3,
            items: vec!["tea".into()],
        };
        let bytes = Json
            .serialize("t", &mut Vec::new(), &order)
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], br#"{"id":3,"items":["tea"]}"#);
        let back: Order = Json.deserialize("t", &[], &bytes).unwrap();
        assert_eq!(back, order);
        // Unsized values too: a str is a JSON string.
        let s = Json.serialize("t", &mut Vec::new(), "hi").unwrap();
        assert_eq!(s.as_deref(), Some(&br#""hi""#[..]));
    }

    #[test]
    fn bytes_that_do_not_fit_the_type_are_an_error() {
        let e =
            Deserializer::<Order>::deserialize(&Json, "t", &[], &Bytes::from_static(b"{\"id\":"))
                .unwrap_err();
        assert!(e.to_string().contains("not the JSON of"), "{e}");
        let source = std::error::Error::source(&e).expect("the serde_json error");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        assert!(Deserializer::<Order>::deserialize(
            &Json,
            "t",
            &[],
            &Bytes::from_static(br#"{"id":"x"}"#)
        )
        .is_err());
    }

    #[test]
    fn a_value_without_a_json_form_is_an_error() {
        // JSON object keys are strings: a map keyed by a tuple has no JSON form.
        let map = BTreeMap::from([((1, 2), "x")]);
        assert!(Json.serialize("t", &mut Vec::new(), &map).is_err());
    }
}
