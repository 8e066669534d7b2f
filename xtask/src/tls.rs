//! Test certificates for the TLS listeners of `cargo xtask kafka up --security`.
//!
//! Everything is generated afresh (new keys) on every `up`, in pure Rust (rcgen), into
//! `target/kafka/run/tls/`. All keys are EC P-256, written as unencrypted PKCS#8 PEM
//! (`-----BEGIN PRIVATE KEY-----`), which Kafka's `ssl.keystore.type=PEM` reads as is.
//!
//! ```text
//! ca.pem                           the CA every good certificate chains to (the truststore)
//! broker.pem, broker.key           SANs IP 127.0.0.1 + DNS localhost, signed by the CA
//! broker-keystore.pem              broker.key + broker.pem + ca.pem (a Kafka PEM keystore)
//! client.pem, client.key           CN=sluice-client, clientAuth, signed by the CA (mTLS)
//! client-keystore.pem              client.key + client.pem + ca.pem (for Java clients)
//! expired-broker.pem, .key         like broker.pem, but valid only in 2000
//! expired-broker-keystore.pem
//! wrong-name-broker.pem, .key      signed by the CA, SAN DNS kafka.invalid only
//! wrong-name-broker-keystore.pem
//! other-ca.pem                     a second CA that signed nothing the broker uses
//! ```

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The subject CN of the mTLS client certificate; the broker maps the client's DN
/// (`CN=sluice-client`) to the principal `User:sluice-client`.
pub const CLIENT_CN: &str = "sluice-client";

/// Subject alternative names of the good (and the expired) broker certificate.
const BROKER_SANS: [&str; 2] = ["127.0.0.1", "localhost"];
/// The only SAN of the wrong-name broker certificate (`.invalid` never resolves).
const WRONG_NAME_SAN: &str = "kafka.invalid";

/// A CA: its key and the parameters it issues with.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn new_ca(cn: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Sluice test harness");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2100, 1, 1);
    let pem = params.self_signed(&key)?.pem();
    Ok(Ca {
        issuer: Issuer::new(params, key),
        pem,
    })
}

/// A leaf certificate signed by `ca`: returns (certificate PEM, PKCS#8 key PEM).
fn leaf(
    ca: &Ca,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    valid: (i32, i32),
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = date_time_ymd(valid.0, 1, 1);
    params.not_after = date_time_ymd(valid.1, 1, 1);
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write all certificates and keys (see the module doc) into `dir`, replacing any there.
pub fn generate(dir: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))
    };

    let ca = new_ca("Sluice test CA")?;
    write("ca.pem", &ca.pem)?;
    // Signs nothing: a client trusting only it must see "unknown issuer".
    write("other-ca.pem", &new_ca("Some other CA")?.pem)?;

    let good = (2020, 2100);
    let server = ExtendedKeyUsagePurpose::ServerAuth;
    let leaves = [
        (
            "broker",
            leaf(&ca, "sluice-broker", &BROKER_SANS, server.clone(), good)?,
        ),
        (
            "expired-broker",
            leaf(
                &ca,
                "sluice-expired-broker",
                &BROKER_SANS,
                server.clone(),
                (2000, 2001),
            )?,
        ),
        (
            "wrong-name-broker",
            leaf(
                &ca,
                "sluice-wrong-name-broker",
                &[WRONG_NAME_SAN],
                server,
                good,
            )?,
        ),
        (
            "client",
            leaf(
                &ca,
                CLIENT_CN,
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
                good,
            )?,
        ),
    ];
    for (name, (cert, key)) in &leaves {
        write(&format!("{name}.pem"), cert)?;
        write(&format!("{name}.key"), key)?;
        // Kafka's PEM keystore: the private key, then the chain from the leaf up.
        write(
            &format!("{name}-keystore.pem"),
            &format!("{key}{cert}{}", ca.pem),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file() {
        let dir = std::env::temp_dir().join(format!("sluice-tls-test-{}", std::process::id()));
        generate(&dir).unwrap();
        for name in [
            "ca.pem",
            "other-ca.pem",
            "broker.pem",
            "broker.key",
            "broker-keystore.pem",
            "client.pem",
            "client.key",
            "client-keystore.pem",
            "expired-broker.pem",
            "expired-broker-keystore.pem",
            "wrong-name-broker.pem",
            "wrong-name-broker-keystore.pem",
        ] {
            let text = fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.contains("-----BEGIN "), "{name}: {text}");
        }
        let keystore = fs::read_to_string(dir.join("broker-keystore.pem")).unwrap();
        assert!(keystore.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(keystore.matches("BEGIN CERTIFICATE").count(), 2);
        assert_ne!(
            fs::read_to_string(dir.join("ca.pem")).unwrap(),
            fs::read_to_string(dir.join("other-ca.pem")).unwrap()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
