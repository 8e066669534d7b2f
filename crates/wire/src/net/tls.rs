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
            .get_or_init(|| build::client_config(self))
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
pub(crate) use build::connect;

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
mod build {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;
    use tracing::warn;

    use super::TlsConfig;
    use crate::error::{Error, Result};
    use crate::net::readahead::ReadAhead;

    /// The crypto provider: the process-wide default if the application installed one
    /// (`rustls::crypto::CryptoProvider::install_default`, rustls' own convention), else
    /// aws-lc-rs with the `tls-aws-lc` feature, else ring with `tls-ring`, else graviola
    /// (the default: no C compiler). The C-backed providers win over graviola when their
    /// feature is on, because nobody enables them by accident.
    pub(super) fn provider() -> Result<Arc<CryptoProvider>> {
        if let Some(installed) = CryptoProvider::get_default() {
            return Ok(Arc::clone(installed));
        }
        #[cfg(feature = "tls-aws-lc")]
        {
            Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        }
        #[cfg(all(not(feature = "tls-aws-lc"), feature = "tls-ring"))]
        {
            Ok(Arc::new(rustls::crypto::ring::default_provider()))
        }
        #[cfg(all(
            not(feature = "tls-aws-lc"),
            not(feature = "tls-ring"),
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        {
            if !graviola::util::is_cpu_supported() {
                return Err(Error::config(
                    "TLS: this CPU lacks what the default crypto provider (graviola) needs \
                     (x86_64: AES-NI, PCLMULQDQ, AVX, AVX2, BMI1 and ADX; aarch64: AES, PMULL \
                     and SHA2; valgrind hides ADX): build sluice-wire with its `tls-ring` or \
                     `tls-aws-lc` feature, or install a rustls CryptoProvider as the process \
                     default",
                ));
            }
            Ok(Arc::new(rustls_graviola::default_provider()))
        }
        #[cfg(all(
            not(feature = "tls-aws-lc"),
            not(feature = "tls-ring"),
            not(any(target_arch = "x86_64", target_arch = "aarch64"))
        ))]
        {
            Err(Error::config(
                "TLS on this CPU architecture needs the `tls-ring` or `tls-aws-lc` feature \
                 of sluice-wire (graviola runs on x86_64 and aarch64 only)",
            ))
        }
    }

    fn certs(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::config(format!("{key}: not a valid PEM certificate list: {e}")))?;
        if certs.is_empty() {
            return Err(Error::config(format!(
                "{key}: no `BEGIN CERTIFICATE` block found (PEM expected)"
            )));
        }
        Ok(certs)
    }

    pub(super) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>> {
        let provider = provider()?;
        let mut roots = RootCertStore::empty();
        match &tls.ca {
            Some((key, pem)) => {
                for cert in certs(key, &pem.read(key)?)? {
                    roots.add(cert).map_err(|e| {
                        Error::config(format!("{key}: a CA certificate is not usable: {e}"))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(Error::config(
                        "TLS: no CA certificates found on this system; set \
                         ssl.truststore.location (or ssl.ca.location) to a PEM file",
                    ));
                }
            }
        }
        let roots = Arc::new(roots);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| Error::config(format!("TLS: cannot build the verifier: {e}")))?;
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS: {e}")))?;
        let builder = if tls.verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameCheck(webpki)))
        };
        let config = match (&tls.cert, &tls.key) {
            (Some((ckey, cpem)), Some((kkey, kpem))) => {
                let chain = certs(ckey, &cpem.read(ckey)?)?;
                let key = PrivateKeyDer::from_pem_slice(&kpem.read(kkey)?).map_err(|e| {
                    Error::config(format!(
                        "{kkey}: no unencrypted private key found (PKCS#8, RSA or EC PEM \
                         expected): {}",
                        e.to_string().split(':').next().unwrap_or("unreadable")
                    ))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::config(format!(
                        "{kkey}: the private key does not fit the certificate: {e}"
                    ))
                })?
            }
            (Some((k, _)), None) | (None, Some((k, _))) => {
                return Err(Error::config(format!(
                    "{k} is set but not its pair: mutual TLS needs a certificate \
                     (ssl.certificate.location) and a key (ssl.key.location)"
                )))
            }
            (None, None) => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// The full chain check without the name check
    /// (`ssl.endpoint.identification.algorithm=`).
    #[derive(Debug)]
    struct NoHostnameCheck(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for NoHostnameCheck {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// The TLS handshake over `tcp` to `addr` (`host:port`).
    pub(crate) async fn connect(
        tls: &TlsConfig,
        addr: &str,
        tcp: ReadAhead,
    ) -> Result<TlsStream<ReadAhead>> {
        let config = tls.client_config()?;
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            Error::config(format!("{addr}: {host:?} is not a valid host name for TLS"))
        })?;
        if !tls.verify_hostname {
            warn!(
                broker = addr,
                "TLS hostname verification is OFF (ssl.endpoint.identification.algorithm is \
                 empty): any certificate from a trusted CA is accepted for this broker"
            );
        }
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(addr, e))
    }

    /// `host` of `host:port`, without the brackets of an IPv6 literal.
    fn host_of(addr: &str) -> &str {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// What went wrong in a handshake, in words a user can act on.
    fn handshake_error(addr: &str, e: std::io::Error) -> Error {
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned();
        let why = match inner {
            Some(rustls::Error::InvalidCertificate(cert)) => match cert {
                CertificateError::UnknownIssuer => "the broker's certificate is not signed by a \
                     trusted CA (unknown issuer): set ssl.truststore.location (ssl.ca.location) \
                     to the CA that signed it"
                    .to_string(),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the broker's certificate has expired".to_string()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the broker's certificate is not valid yet (check the clocks)".to_string()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the broker's certificate does not name {} (name mismatch): connect by a \
                     name it lists, or fix the broker's certificate",
                    host_of(addr)
                ),
                CertificateError::Revoked => "the broker's certificate is revoked".to_string(),
                other => format!("the broker's certificate is invalid: {other:?}"),
            },
            Some(rustls::Error::AlertReceived(alert)) => format!(
                "the broker refused the handshake ({alert:?}); if the listener requires a \
                 client certificate (mutual TLS), set ssl.certificate.location and \
                 ssl.key.location to one its truststore accepts"
            ),
            Some(rustls::Error::InvalidMessage(_))
            | Some(rustls::Error::InappropriateMessage { .. }) => {
                "the broker does not speak TLS on this port (a PLAINTEXT or SASL_PLAINTEXT \
                 listener?): check security.protocol and the port"
                    .to_string()
            }
            Some(other) => other.to_string(),
            None if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                "the broker closed the connection during the handshake: this is probably a \
                 PLAINTEXT or SASL_PLAINTEXT listener (check security.protocol and the port), \
                 or it refused our client certificate"
                    .to_string()
            }
            None => e.to_string(),
        };
        Error::tls(format!("TLS handshake with {addr} failed: {why}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hosts_of_addresses() {
            assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
            assert_eq!(host_of("kafka.example.com:9093"), "kafka.example.com");
            assert_eq!(host_of("[::1]:9093"), "::1");
        }
    }
}

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
    fn garbage_pem_is_a_config_error() {
        let t = TlsConfig::default().ca_pem("not a certificate");
        let e = t.prepare().unwrap_err();
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let t = TlsConfig::default().client_cert_pem("x");
        assert!(t.prepare().is_err());
    }
}
