//! Reading Java-style config values (`"5000"`, `"true"`), shared by the producer's and
//! the consumer's `from_properties`, so both name the key and what was expected in the
//! same words.

use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// The error for a value that does not parse: names the key, the value and what was
/// expected.
pub(crate) fn invalid(key: &str, value: &str, expected: &str) -> Error {
    Error::config(format!(
        "invalid value {value:?} for config {key:?}: expected {expected}"
    ))
}

/// The error for a bad value of a secret key (a password): names the key, never the
/// value.
pub(crate) fn secret_invalid(key: &str, why: &str) -> Error {
    Error::config(format!("config {key:?}: {why}"))
}

/// A non-negative number of type `T` (use an unsigned `T` to refuse negatives).
pub(crate) fn number<T: FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "a non-negative integer"))
}

/// Milliseconds, as every `*.ms` key takes them.
pub(crate) fn ms(key: &str, value: &str) -> Result<Duration> {
    number::<u64>(key, value).map(Duration::from_millis)
}

/// `true` or `false`, as Java's `ConfigDef` takes them.
pub(crate) fn boolean(key: &str, value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

/// A duration as the protocol's `int32` milliseconds (timeouts, max waits), saturating at
/// `i32::MAX` (about 24 days).
pub(crate) fn wire_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ms_is_whole_milliseconds_and_saturates() {
        assert_eq!(wire_ms(Duration::from_micros(1_500_999)), 1500);
        assert_eq!(wire_ms(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn values_parse_and_errors_name_the_key() {
        assert_eq!(ms("linger.ms", "5").unwrap(), Duration::from_millis(5));
        assert!(boolean("enable.idempotence", "true").unwrap());
        assert_eq!(number::<u32>("retries", "3").unwrap(), 3);
        let e = number::<u32>("retries", "-1").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("\"retries\""), "{e}");
        assert!(boolean("x", "yes")
            .unwrap_err()
            .to_string()
            .contains("true or false"));
    }
}
