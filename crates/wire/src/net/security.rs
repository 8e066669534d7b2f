//! How a connection is secured: `security.protocol` and the `ssl.*` / `sasl.*` keys of
//! the Java client (and librdkafka's names for the same things), parsed in one place for
//! the producer, the consumer, admin and the CLI.
//!
//! Nothing here touches the network. Files named by `ssl.*.location` are read when the
//! first connection is made (and once per [`SecurityConfig`], not per connection); a
//! missing or unreadable file is an [`ErrorKind::Config`](crate::ErrorKind::Config)
//! error naming the key and the path.

use std::fmt;
use std::str::FromStr;

use super::sasl::{SaslConfig, SaslMechanism};
use super::tls::TlsConfig;
use crate::config::invalid;
use crate::error::{Error, Result};

/// `security.protocol`: whether connections use TLS, SASL, both or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// No TLS, no authentication. Java's default.
    #[default]
    Plaintext,
    /// TLS; the client authenticates with a certificate if one is configured (mTLS).
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS. What managed clusters (Confluent Cloud, MSK with
    /// SCRAM, Aiven) use.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL after connecting.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The Java name (`SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(invalid(
                "security.protocol",
                s,
                "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            )),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that secures a connection. `Debug` never shows a password, a token or a
/// private key.
///
/// ```
/// use sluice_wire::net::{SecurityConfig, SecurityProtocol};
///
/// let mut security = SecurityConfig::default();
/// for (key, value) in [
///     ("security.protocol", "SASL_SSL"),
///     ("sasl.mechanism", "SCRAM-SHA-512"),
///     ("sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#),
///     ("ssl.truststore.location", "/etc/kafka/ca.pem"),
/// ] {
///     security.set(key, value)?;
/// }
/// assert_eq!(security.protocol, SecurityProtocol::SaslSsl);
/// assert!(!format!("{security:?}").contains("alice-secret"));
/// # Ok::<(), sluice_wire::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// `security.protocol`. Default PLAINTEXT.
    pub protocol: SecurityProtocol,
    /// The `ssl.*` settings, used when [`protocol`](Self::protocol) is SSL or SASL_SSL.
    pub tls: TlsConfig,
    /// The `sasl.*` settings, used when [`protocol`](Self::protocol) is SASL_PLAINTEXT or
    /// SASL_SSL.
    pub sasl: SaslConfig,
}

impl SecurityConfig {
    /// Plain TCP, no authentication.
    pub fn plaintext() -> Self {
        SecurityConfig::default()
    }

    /// TLS with `tls`, no SASL.
    pub fn ssl(tls: TlsConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::Ssl,
            tls,
            sasl: SaslConfig::default(),
        }
    }

    /// SASL over TLS.
    pub fn sasl_ssl(sasl: SaslConfig, tls: TlsConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::SaslSsl,
            tls,
            sasl,
        }
    }

    /// SASL over plain TCP.
    pub fn sasl_plaintext(sasl: SaslConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::SaslPlaintext,
            tls: TlsConfig::default(),
            sasl,
        }
    }

    /// Sets one Java-style (or librdkafka-style) security key; the keys are listed at
    /// [`SecurityConfig::try_set`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the key, for a key that is
    /// not about security or a bad or unsupported value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        if self.try_set(key, value)? {
            Ok(self)
        } else {
            Err(crate::error::Error::config(format!(
                "unknown security config key {key:?}"
            )))
        }
    }

    /// Sets one Java-style (or librdkafka-style) key if it is about security. Returns
    /// `Ok(false)` for a key that is not, so callers can try their own keys; a security key with a
    /// bad or unsupported value is an [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// error naming it.
    ///
    /// Keys: `security.protocol`; `ssl.truststore.location` / `ssl.ca.location`,
    /// `ssl.truststore.certificates` / `ssl.ca.pem`, `ssl.truststore.type` (PEM),
    /// `ssl.keystore.location` (PEM: key and certificate chain),
    /// `ssl.keystore.certificate.chain` / `ssl.certificate.pem`,
    /// `ssl.certificate.location`, `ssl.keystore.key` / `ssl.key.pem`,
    /// `ssl.key.location`, `ssl.keystore.type` (PEM),
    /// `ssl.endpoint.identification.algorithm` (`https` or empty); `sasl.mechanism`
    /// (`sasl.mechanisms`), `sasl.jaas.config`, `sasl.username`, `sasl.password`,
    /// `sasl.oauthbearer.config` (librdkafka's unsecured-token settings),
    /// `sasl.oauthbearer.extensions`.
    pub fn try_set(&mut self, key: &str, value: &str) -> Result<bool> {
        let value = value.trim();
        if key == "security.protocol" {
            self.protocol = value.parse()?;
            return Ok(true);
        }
        if self.tls.set(key, value)? {
            return Ok(true);
        }
        self.sasl.set(key, value)
    }

    /// Checks that the settings fit together: a SASL protocol names a supported
    /// mechanism with its credentials, and the TLS files can be read and parsed. Called
    /// when a cluster connects, so a bad setting fails there, not on the first request.
    pub fn validate(&self) -> Result<()> {
        if self.protocol.uses_sasl() {
            self.sasl.validate()?;
        } else if self.sasl.mechanism() != SaslMechanism::default() || self.sasl.has_credentials() {
            tracing::warn!(
                protocol = self.protocol.name(),
                "sasl.* settings are ignored: security.protocol is not SASL_PLAINTEXT or SASL_SSL"
            );
        }
        if self.protocol.uses_tls() {
            self.tls.prepare()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn protocol_names_parse_either_case() {
        for (name, p) in [
            ("PLAINTEXT", SecurityProtocol::Plaintext),
            ("ssl", SecurityProtocol::Ssl),
            ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
            ("sasl_ssl", SecurityProtocol::SaslSsl),
        ] {
            assert_eq!(name.parse::<SecurityProtocol>().unwrap(), p);
        }
        let e = "TLS".parse::<SecurityProtocol>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("security.protocol"), "{e}");
    }

    #[test]
    fn other_keys_are_not_claimed() {
        let mut s = SecurityConfig::default();
        assert!(!s.try_set("linger.ms", "5").unwrap());
        assert!(!s.try_set("bootstrap.servers", "a:1").unwrap());
        let e = s.set("linger.ms", "5").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("linger.ms"), "{e}");
    }

    #[test]
    fn a_sasl_protocol_needs_a_supported_mechanism() {
        let mut s = SecurityConfig::default();
        s.set("security.protocol", "SASL_PLAINTEXT").unwrap();
        // Java's default mechanism is GSSAPI, which Sluice does not speak.
        let e = s.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("GSSAPI"), "{e}");
        s.set("sasl.mechanism", "PLAIN").unwrap();
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("sasl.jaas.config"), "{e}");
        s.set("sasl.username", "alice").unwrap();
        s.set("sasl.password", "alice-secret").unwrap();
        s.validate().unwrap();
    }
}
