//! The `--security` listeners of `cargo xtask kafka up` work, shown with Kafka's own Java
//! console tools: every TLS listener and every SASL mechanism on both SASL listeners
//! carries records both ways, and the negative cases fail the way they should
//! (authorization, authentication, certificate checks).
//!
//! Runs inside `cargo xtask test` (security is on there by default). Each case starts
//! two JVMs at most, so the whole file stays well under two minutes on two cores.

use std::time::Duration;

use sluice_testkit::SaslMechanism;

/// Produce three keyed records as `admin` over `listener`/`mechanism` and read them back
/// over the same listener and mechanism.
fn round_trip(listener: &str, mechanism: Option<SaslMechanism>) {
    let sec = sluice_testkit::secured();
    let bootstrap = sec.listener(listener);
    let props = sec.java_props(listener, mechanism, "admin");
    let label = match mechanism {
        Some(m) => format!("{listener}-{m}"),
        None => listener.to_string(),
    };
    let topic = sluice_testkit::unique_topic(&format!("sec-{}", label.to_lowercase()));
    let lines = [
        format!("k1\t{label} one"),
        format!("k2\t{label} two"),
        format!("k3\t{label} three"),
    ];
    sluice_testkit::console_produce_with(&bootstrap, &topic, &lines, true, &props)
        .unwrap_or_else(|e| panic!("producing over {label}: {e:#}"));
    let got = sluice_testkit::console_consume_with(
        &bootstrap,
        &topic,
        lines.len(),
        Duration::from_secs(20),
        &props,
    )
    .unwrap_or_else(|e| panic!("consuming over {label}: {e:#}"));
    let expected: Vec<String> = lines.iter().map(|l| format!("NO_HEADERS\t{l}")).collect();
    assert_eq!(got, expected, "over {label}");
}

#[test]
fn ssl_round_trip() {
    round_trip("SSL", None);
}

#[test]
fn mtls_round_trip() {
    round_trip("MTLS", None);
}

#[test]
fn sasl_plaintext_plain_round_trip() {
    round_trip("SASL_PLAINTEXT", Some(SaslMechanism::Plain));
}

#[test]
fn sasl_plaintext_scram_sha_256_round_trip() {
    round_trip("SASL_PLAINTEXT", Some(SaslMechanism::ScramSha256));
}

#[test]
fn sasl_plaintext_scram_sha_512_round_trip() {
    round_trip("SASL_PLAINTEXT", Some(SaslMechanism::ScramSha512));
}

#[test]
fn sasl_plaintext_oauthbearer_round_trip() {
    round_trip("SASL_PLAINTEXT", Some(SaslMechanism::OAuthBearer));
}

#[test]
fn sasl_ssl_plain_round_trip() {
    round_trip("SASL_SSL", Some(SaslMechanism::Plain));
}

#[test]
fn sasl_ssl_scram_sha_256_round_trip() {
    round_trip("SASL_SSL", Some(SaslMechanism::ScramSha256));
}

#[test]
fn sasl_ssl_scram_sha_512_round_trip() {
    round_trip("SASL_SSL", Some(SaslMechanism::ScramSha512));
}

#[test]
fn sasl_ssl_oauthbearer_round_trip() {
    round_trip("SASL_SSL", Some(SaslMechanism::OAuthBearer));
}

#[test]
fn reauth_listener_round_trip() {
    round_trip("REAUTH", Some(SaslMechanism::ScramSha512));
}

/// Produce one record with `props` over `bootstrap`; must fail. Returns the error text
/// (it holds the tool's stderr).
fn produce_fails(bootstrap: &str, mut props: Vec<(String, String)>) -> String {
    // A failure surfaces when the first metadata request fails; don't wait 60 s for it.
    props.push(("max.block.ms".into(), "15000".into()));
    let topic = sluice_testkit::unique_topic("sec-denied");
    match sluice_testkit::console_produce_with(bootstrap, &topic, ["nope"], false, &props) {
        Ok(()) => panic!("producing to {bootstrap} with {props:?} succeeded"),
        Err(e) => {
            let text = format!("{e:#}");
            eprintln!("as expected, producing to {bootstrap} failed: {text}");
            text
        }
    }
}

#[test]
fn mallory_is_not_authorized() {
    let sec = sluice_testkit::secured();
    let props = sec.java_props(
        "SASL_PLAINTEXT",
        Some(SaslMechanism::ScramSha256),
        "mallory",
    );
    let err = produce_fails(&sec.sasl_plaintext(), props);
    assert!(
        err.contains("TopicAuthorizationException") || err.contains("Not authorized"),
        "{err}"
    );
}

#[test]
fn wrong_scram_password_fails_authentication() {
    let sec = sluice_testkit::secured();
    let props = sec.java_props_with_password(
        "SASL_SSL",
        Some(SaslMechanism::ScramSha512),
        "alice",
        "not-alice-secret",
    );
    let err = produce_fails(&sec.sasl_ssl(), props);
    assert!(
        err.contains("SaslAuthenticationException") && err.contains("invalid credentials"),
        "{err}"
    );
}

#[test]
fn tls_failures_expired_wrong_name_unknown_ca_and_no_client_cert() {
    let sec = sluice_testkit::secured();
    let expired = produce_fails(&sec.expired(), sec.java_props("EXPIRED", None, ""));
    assert!(expired.contains("SslAuthenticationException"), "{expired}");
    assert!(expired.contains("validity check failed"), "{expired}");

    let wrong = produce_fails(&sec.wrong_name(), sec.java_props("WRONGNAME", None, ""));
    assert!(wrong.contains("SslAuthenticationException"), "{wrong}");
    assert!(
        wrong.contains("No subject alternative names matching IP address 127.0.0.1"),
        "{wrong}"
    );

    let mut other_ca = sec.java_props("SSL", None, "");
    for (k, v) in &mut other_ca {
        if k == "ssl.truststore.location" {
            *v = sec.other_ca_pem().display().to_string();
        }
    }
    let unknown = produce_fails(&sec.ssl(), other_ca);
    assert!(unknown.contains("SslAuthenticationException"), "{unknown}");
    assert!(
        unknown.contains("unable to find valid certification path"),
        "{unknown}"
    );

    // MTLS without a client certificate: the broker ends the handshake.
    let no_cert = produce_fails(&sec.mtls(), sec.java_props("SSL", None, ""));
    assert!(no_cert.contains("SslAuthenticationException"), "{no_cert}");
}
