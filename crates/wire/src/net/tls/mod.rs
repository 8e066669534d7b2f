//! TLS with rustls: which CAs to trust, the client certificate for mutual TLS, hostname
//! verification, and the handshake, whose failures become [`ErrorKind::Tls`] errors that
//! name the cause and the broker.
//!
//! The crypto provider, in this order: the process-wide default provider if the
//! application installed one (`rustls::crypto::CryptoProvider::install_default`), else
//! aws-lc-rs (feature `tls-aws-lc`), else ring (`tls-ring`), else graviola (pure Rust
//! and assembly, no C compiler; the default `tls` feature, on x86_64 and aarch64).
//!
//! [`ErrorKind::Tls`]: crate::ErrorKind::Tls

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::config::{invalid, secret_invalid};
use crate::error::{Error, Result};

/// Where a PEM document comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file, read when the first connection is made.
    File(PathBuf),
    /// The PEM text itself.
    Text(String),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Text(_) => f.write_str("Text(..)"),
        }
    }
}

impl Pem {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    fn read(&self, key: &str) -> Result<Vec<u8>> {
        match self {
            Pem::Text(t) => Ok(t.as_bytes().to_vec()),
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| Error::config(format!("{key}: cannot read {}: {e}", path.display()))),
        }
    }
}

/// The `ssl.*` settings. `Debug` never shows the private key.
///
/// ```
/// use sluice_wire::net::TlsConfig;
/// let tls = TlsConfig::default()
///     .ca_file("/etc/kafka/ca.pem")
///     .client_cert_file("/etc/kafka/client.pem")
///     .client_key_file("/etc/kafka/client.key");
/// # let _ = tls;
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    ca: Option<(String, Pem)>,
    cert: Option<(String, Pem)>,
    key: Option<(String, Pem)>,
    verify_hostname: bool,
    /// Built once per config (its clones share it), on the first connect.
    #[cfg(feature = "tls")]
    built: Arc<OnceLock<std::result::Result<Arc<rustls::ClientConfig>, Error>>>,
    #[cfg(not(feature = "tls"))]
    built: Arc<OnceLock<()>>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: None,
            cert: None,
            key: None,
            verify_hostname: true,
            built: Arc::default(),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca.as_ref().map(|(_, p)| p))
            .field("client_cert", &self.cert.as_ref().map(|(_, p)| p))
            .field("client_key", &self.key.as_ref().map(|_| "***"))
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

impl TlsConfig {
    fn changed(mut self) -> Self {
        self.built = Arc::default();
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` instead of the platform's
    /// roots (Java: `ssl.truststore.location` with `ssl.truststore.type=PEM`).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(("ssl.truststore.location".into(), Pem::File(path.into())));
        self.changed()
    }

    /// Trusts the CA certificates in `pem` (Java: `ssl.truststore.certificates`).
    pub fn ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca = Some(("ssl.truststore.certificates".into(), Pem::Text(pem.into())));
        self.changed()
    }

    /// The client certificate chain for mutual TLS, from a PEM file.
    pub fn client_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert = Some(("ssl.certificate.location".into(), Pem::File(path.into())));
        self.changed()
    }

    /// The client certificate chain for mutual TLS, as PEM text.
    pub fn client_cert_pem(mut self, pem: impl Into<String>) -> Self {
        self.cert = Some((
            "ssl.keystore.certificate.chain".into(),
            Pem::Text(pem.into()),
        ));
        self.changed()
    }

    /// The client's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; unencrypted), from
    /// a file.
    pub fn client_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = Some(("ssl.key.location".into(), Pem::File(path.into())));
        self.changed()
    }

    /// The client's private key as PEM text.
    pub fn client_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.key = Some(("ssl.keystore.key".into(), Pem::Text(pem.into())));
        self.changed()
    }

    /// Whether the broker's certificate must name the host we connect to (Java:
    /// `ssl.endpoint.identification.algorithm=https`, the default). **Turning this off
    /// lets anyone with a certificate from a trusted CA impersonate the broker**; the
    /// chain is still verified. Every connection logs a warning while it is off.
    pub fn verify_hostname(mut self, on: bool) -> Self {
        self.verify_hostname = on;
        self.changed()
    }

    /// Whether hostname verification is on.
    pub fn verifies_hostname(&self) -> bool {
        self.verify_hostname
    }

    /// Sets one `ssl.*` key; `Ok(false)` for other keys.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let file = |v: &str| (key.to_string(), Pem::File(PathBuf::from(v)));
        let text = |v: &str| (key.to_string(), Pem::Text(v.to_string()));
        match key {
            "ssl.truststore.location" | "ssl.ca.location" => self.ca = Some(file(value)),
            "ssl.truststore.certificates" | "ssl.ca.pem" => self.ca = Some(text(value)),
            "ssl.keystore.location" => {
                // A PEM keystore holds the key and the chain in one file.
                self.cert = Some(file(value));
                self.key = Some(file(value));
            }
            "ssl.certificate.location" => self.cert = Some(file(value)),
            "ssl.keystore.certificate.chain" | "ssl.certificate.pem" => {
                self.cert = Some(text(value))
            }
            "ssl.key.location" => self.key = Some(file(value)),
            "ssl.keystore.key" | "ssl.key.pem" => self.key = Some(text(value)),
            "ssl.truststore.type" | "ssl.keystore.type" => {
                if !value.eq_ignore_ascii_case("PEM") {
                    return Err(Error::config(format!(
                        "{key}={value} is not supported: Sluice reads PEM only. Convert the \
                         store with `keytool -importkeystore -deststoretype PKCS12` and \
                         `openssl pkcs12 -nodes`, then set {key}=PEM and the PEM files \
                         (ssl.truststore.location, ssl.keystore.location)"
                    )));
                }
            }
            "ssl.key.password" | "ssl.keystore.password" | "ssl.truststore.password" => {
                if !value.is_empty() {
                    return Err(secret_invalid(
                        key,
                        "encrypted keys and stores are not supported: give an unencrypted \
                         PEM key (`openssl pkcs8 -nocrypt`)",
                    ));
                }
            }
            "ssl.endpoint.identification.algorithm" => match value.to_ascii_lowercase().as_str() {
                "https" => self.verify_hostname = true,
                "" | "none" => self.verify_hostname = false,
                _ => return Err(invalid(key, value, "https or empty")),
            },
            "ssl.protocol" | "ssl.enabled.protocols" => {
                // rustls speaks TLS 1.2 and 1.3; older versions are refused.
                if value
                    .split(',')
                    .map(str::trim)
                    .any(|p| !matches!(p, "" | "TLS" | "TLSv1.2" | "TLSv1.3"))
                {
                    return Err(invalid(key, value, "TLSv1.2 and/or TLSv1.3"));
                }
            }
            _ => return Ok(false),
        }
        self.built = Arc::default();
        Ok(true)
    }

    /// Reads and checks the files now, so a bad path fails when the cluster connects.
    pub(crate) fn prepare(&self) -> Result<()> {
        #[cfg(feature = "tls")]
        {
            self.client_config().map(|_| ())
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = &self.built;
            Err(no_tls())
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        self.built
            .get_or_init(|| handshake::client_config(self))
            .clone()
    }
}

#[cfg(not(feature = "tls"))]
pub(crate) fn no_tls() -> Error {
    Error::config(
        "security.protocol SSL / SASL_SSL needs TLS: build sluice-wire with its `tls` feature",
    )
}

#[cfg(feature = "tls")]
pub(crate) use handshake::connect;

/// An I/O error on an established connection, as an [`ErrorKind::Tls`] error when it is
/// a TLS alert from the broker (under TLS 1.3 a refused client certificate shows up at
/// the first read, after the handshake), else as [`ErrorKind::Io`].
///
/// [`ErrorKind::Tls`]: crate::ErrorKind::Tls
/// [`ErrorKind::Io`]: crate::ErrorKind::Io
pub(crate) fn socket_error(what: String, addr: &str, e: std::io::Error) -> Error {
    #[cfg(feature = "tls")]
    if let Some(rustls::Error::AlertReceived(alert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    {
        let hint = match alert {
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateUnknown => {
                ": the broker refused our client certificate (or we sent none); this \
                 listener requires mutual TLS: set ssl.certificate.location and \
                 ssl.key.location to a certificate its truststore accepts"
            }
            rustls::AlertDescription::CertificateExpired => {
                ": the broker says our client certificate has expired"
            }
            _ => "",
        };
        return Error::tls(format!("{addr} sent TLS alert {alert:?}{hint}"));
    }
    let _ = addr;
    Error::io(what, e)
}

#[cfg(feature = "tls")]
mod handshake;

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn java_and_librdkafka_keys() {
        let mut t = TlsConfig::default();
        assert!(t.set("ssl.ca.location", "/ca.pem").unwrap());
        assert_eq!(
            t.ca,
            Some(("ssl.ca.location".into(), Pem::File("/ca.pem".into())))
        );
        assert!(t.set("ssl.endpoint.identification.algorithm", "").unwrap());
        assert!(!t.verifies_hostname());
        assert!(!t.set("linger.ms", "1").unwrap());
        let e = t.set("ssl.truststore.type", "JKS").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("PEM"), "{e}");
        let e = t.set("ssl.key.password", "s3cret").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn a_missing_file_names_the_key_and_path() {
        let t = TlsConfig::default().ca_file("/nonexistent/ca.pem");
        let e = t.prepare().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        assert!(text.contains("ssl.truststore.location"), "{text}");
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    }

    #[test]
    fn client_keys_load_as_pkcs8_pkcs1_and_sec1() {
        for (cert, key) in [
            (
                include_str!("../testdata/rsa.pem"),
                include_str!("../testdata/rsa-pkcs1.key"),
            ),
            (
                include_str!("../testdata/rsa.pem"),
                include_str!("../testdata/rsa-pkcs8.key"),
            ),
            (
                include_str!("../testdata/ec.pem"),
                include_str!("../testdata/ec-sec1.key"),
            ),
            (
                include_str!("../testdata/ec.pem"),
                include_str!("../testdata/ec-pkcs8.key"),
            ),
        ] {
            let t = TlsConfig::default()
                .ca_pem(cert)
                .client_cert_pem(cert)
                .client_key_pem(key);
            let config = t
                .client_config()
                .unwrap_or_else(|e| panic!("{}: {e}", &key[..40]));
            assert!(config.client_auth_cert_resolver.has_certs());
        }
        let e = TlsConfig::default()
            .ca_pem(include_str!("../testdata/ec.pem"))
            .client_cert_pem(include_str!("../testdata/ec.pem"))
            .client_key_pem(include_str!("../testdata/ec-encrypted.key"))
            .prepare()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("unencrypted"), "{e}");
        let e = TlsConfig::default()
            .ca_pem(include_str!("../testdata/ec.pem"))
            .client_cert_pem(include_str!("../testdata/ec.pem"))
            .prepare()
            .unwrap_err();
        assert!(e.to_string().contains("ssl.key.location"), "{e}");
    }

    #[test]
    fn garbage_pem_is_a_config_error() {
        let t = TlsConfig::default().ca_pem("not a certificate");
        let e = t.prepare().unwrap_err();
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let t = TlsConfig::default().client_cert_pem("x");
        assert!(t.prepare().is_err());
    }
}
