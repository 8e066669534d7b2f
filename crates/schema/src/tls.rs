//! TLS for the registry connection: rustls with graviola, so the default build needs no
//! C compiler (ring and aws-lc-rs compile C). The same choice as sluice-wire.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// The crypto provider: the process default if the application installed one
/// (`CryptoProvider::install_default`, rustls' convention), else graviola.
fn provider() -> Result<Arc<CryptoProvider>> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Ok(Arc::clone(installed));
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        if !graviola::util::is_cpu_supported() {
            return Err(Error::Config(
                "TLS: this CPU lacks what graviola (the default crypto provider) needs \
                 (x86_64: AES-NI, PCLMULQDQ, AVX2, BMI1, ADX; aarch64: AES, PMULL, SHA2): \
                 install a rustls CryptoProvider as the process default, or pass a \
                 ClientConfig with RegistryBuilder::tls_config"
                    .into(),
            ));
        }
        Ok(Arc::new(rustls_graviola::default_provider()))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Err(Error::Config(
            "TLS: graviola runs on x86_64 and aarch64 only: install a rustls \
             CryptoProvider as the process default"
                .into(),
        ))
    }
}

fn certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Config(format!("{what}: not a valid PEM certificate list: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{what}: no `BEGIN CERTIFICATE` block found"
        )));
    }
    Ok(certs)
}

/// What the builder was told about TLS.
#[derive(Default, Clone)]
pub(crate) struct TlsOptions {
    /// PEM CA certificates to trust instead of the system's.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key for mutual TLS.
    pub(crate) identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// A complete configuration from the application (wins over the above).
    pub(crate) config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("identity_pem", &self.identity_pem.is_some())
            .field("config", &self.config.is_some())
            .finish()
    }
}

/// The rustls configuration for the client. For a plain `http://` registry it trusts
/// nothing (the HTTP client needs a configuration even when it never uses it), so no
/// system certificates are loaded.
pub(crate) fn client_config(opts: &TlsOptions, https: bool) -> Result<ClientConfig> {
    if let Some(config) = &opts.config {
        return Ok(ClientConfig::clone(config));
    }
    let provider = provider()?;
    let mut roots = RootCertStore::empty();
    if https {
        match &opts.ca_pem {
            Some(pem) => {
                for cert in certs("CA", pem)? {
                    roots.add(cert).map_err(|e| {
                        Error::Config(format!("TLS: a CA certificate is not usable: {e}"))
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(Error::Config(
                        "TLS: no CA certificates found on this system; pass one with \
                         RegistryBuilder::ca_pem"
                            .into(),
                    ));
                }
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    match &opts.identity_pem {
        Some((cert, key)) => {
            let chain = certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
                Error::Config(
                    "client key: no unencrypted private key found (PKCS#8, RSA or EC PEM)".into(),
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("client key does not fit the certificate: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}
