//! Building the rustls client config (roots, client certificate, hostname policy, the
//! crypto provider) and running the handshake, whose failures become errors that name
//! the cause and the broker.
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
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
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
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::config(format!("{addr}: {host:?} is not a valid host name for TLS")))?;
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
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate does not name {} (name mismatch): connect by a \
                 name it lists, or fix the broker's certificate",
                    host_of(addr)
                )
            }
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
