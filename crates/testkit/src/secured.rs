//! The TLS and SASL listeners of `cargo xtask kafka up --security`.
//!
//! See [`Secured`] for the listeners and users.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{kafka_dir, kafka_libs, kafka_major, run_with_deadline, tool};

/// A SASL mechanism the `--security` listeners enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): the password in clear; users in the broker's JAAS config.
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802/7677); credentials stored in the KRaft metadata.
    ScramSha256,
    /// `SCRAM-SHA-512`; credentials stored in the KRaft metadata.
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628) with unsecured JWS tokens; the principal is `sub`.
    OAuthBearer,
}

impl SaslMechanism {
    /// Every mechanism, in the order of the broker's `sasl.enabled.mechanisms`.
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ];

    /// The mechanism's name on the wire and in Java's `sasl.mechanism`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The running cluster's secured listeners, certificates and users, as written by
/// `cargo xtask kafka up --security` to `target/kafka/run/security`. Get one with
/// [`secured`].
///
/// `up --security` (and `cargo xtask test`, where it is the default) gives every broker,
/// besides PLAINTEXT, these listeners (node `i`'s base port `P = port + 100*(i-1)`, all
/// on 127.0.0.1):
///
/// | name             | port | protocol       | what it tests |
/// | ---              | ---  | ---            | --- |
/// | `SSL`            | P+10 | SSL            | TLS; the broker's cert has SANs IP 127.0.0.1 and DNS localhost |
/// | `SASL_PLAINTEXT` | P+11 | SASL_PLAINTEXT | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER |
/// | `SASL_SSL`       | P+12 | SASL_SSL       | the same four mechanisms over TLS |
/// | `MTLS`           | P+13 | SSL            | client certificate required ([`Secured::client_cert_pem`]) |
/// | `EXPIRED`        | P+14 | SSL            | the broker serves a cert that expired in 2001 |
/// | `WRONGNAME`      | P+15 | SSL            | the broker serves a cert for `kafka.invalid` only |
/// | `REAUTH`         | P+16 | SASL_PLAINTEXT | the four mechanisms; sessions expire after [`Secured::reauth_interval`] (KIP-368) |
///
/// Users: `admin` and `alice` are super users, `mallory` has no ACL (its requests fail
/// with authorization errors); each has the password `<name>-secret` for PLAIN and both
/// SCRAMs. OAUTHBEARER takes Kafka's unsecured JWS tokens (`alg: none`); the principal is
/// the token's `sub`. The mTLS client is `User:sluice-client`, a super user.
/// Unauthenticated principals (PLAINTEXT, SSL) are `User:ANONYMOUS`, also a super user.
#[derive(Clone, Debug)]
pub struct Secured {
    /// Listener name -> (security protocol, bootstrap of every broker).
    listeners: BTreeMap<String, (String, String)>,
    tls_dir: PathBuf,
    /// SASL user -> password.
    users: BTreeMap<String, String>,
    reauth: Duration,
}

const START_HINT: &str =
    "start Kafka with `cargo xtask kafka up --security` (or `cargo xtask test`)";

/// The secured listeners of the test cluster (see [`Secured`] for the listeners and
/// users).
///
/// Panics with "start Kafka with `cargo xtask kafka up --security` (or `cargo xtask
/// test`)" when `target/kafka/run/security` is missing (no cluster, or one started
/// without `--security`) or a listener accepts no TCP connection.
pub fn secured() -> Secured {
    let path = kafka_dir().join("run/security");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{START_HINT}: cannot read {}: {e}", path.display()));
    let secured = Secured::parse(&text).unwrap_or_else(|e| {
        panic!(
            "{START_HINT}: {} is not what xtask writes: {e:#}",
            path.display()
        )
    });
    for (name, (_, bootstrap)) in &secured.listeners {
        if !any_accepts(bootstrap) {
            panic!("{START_HINT}: listener {name} at {bootstrap} accepts no TCP connection");
        }
    }
    secured
}

fn any_accepts(bootstrap: &str) -> bool {
    bootstrap.split(',').map(str::trim).any(|addr| {
        addr.to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
        })
    })
}

impl Secured {
    fn parse(text: &str) -> Result<Secured> {
        let mut protocols = BTreeMap::new();
        let mut bootstraps = BTreeMap::new();
        let mut users = BTreeMap::new();
        let mut tls_dir = None;
        let mut reauth = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("no `=` in {line:?}"))?;
            let value = value.to_string();
            if let Some(rest) = key.strip_prefix("listener.") {
                match rest.rsplit_once('.') {
                    Some((name, "protocol")) => protocols.insert(name.to_string(), value),
                    Some((name, "bootstrap")) => bootstraps.insert(name.to_string(), value),
                    _ => bail!("unknown key {key}"),
                };
            } else if let Some(user) = key.strip_prefix("sasl.user.") {
                users.insert(user.to_string(), value);
            } else if key == "tls.dir" {
                tls_dir = Some(PathBuf::from(value));
            } else if key == "reauth.ms" {
                reauth = Some(Duration::from_millis(
                    value.parse().context("reauth.ms is not a number")?,
                ));
            }
            // Other keys (sasl.mechanisms, super.users) are informational.
        }
        let mut listeners = BTreeMap::new();
        for (name, protocol) in protocols {
            let bootstrap = bootstraps
                .remove(&name)
                .with_context(|| format!("listener {name} has no bootstrap"))?;
            listeners.insert(name, (protocol, bootstrap));
        }
        if let Some(name) = bootstraps.keys().next() {
            bail!("listener {name} has no protocol");
        }
        Ok(Secured {
            listeners,
            tls_dir: tls_dir.context("no tls.dir")?,
            users,
            reauth: reauth.context("no reauth.ms")?,
        })
    }

    /// The bootstrap (every broker, `host:port,...`) of listener `name` (`SSL`,
    /// `SASL_PLAINTEXT`, `SASL_SSL`, `MTLS`, `EXPIRED`, `WRONGNAME`, `REAUTH` or
    /// `PLAINTEXT`; case-insensitive). Panics on an unknown name.
    pub fn listener(&self, name: &str) -> String {
        self.entry(name).1.clone()
    }

    /// The security protocol of listener `name` (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or
    /// `SASL_SSL`). Panics on an unknown name.
    pub fn protocol(&self, name: &str) -> &str {
        &self.entry(name).0
    }

    /// The names of every listener, sorted.
    pub fn listener_names(&self) -> impl Iterator<Item = &str> {
        self.listeners.keys().map(String::as_str)
    }

    fn entry(&self, name: &str) -> &(String, String) {
        self.listeners
            .get(&name.to_ascii_uppercase())
            .unwrap_or_else(|| {
                panic!(
                    "no listener {name} in the cluster's security file (it has: {})",
                    self.listeners
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// PLAINTEXT bootstrap (the same as [`crate::bootstrap`] of this cluster).
    pub fn plaintext(&self) -> String {
        self.listener("PLAINTEXT")
    }

    /// `SSL` bootstrap: TLS, no client certificate; trust [`Self::ca_pem`].
    pub fn ssl(&self) -> String {
        self.listener("SSL")
    }

    /// `SASL_PLAINTEXT` bootstrap: SASL without TLS.
    pub fn sasl_plaintext(&self) -> String {
        self.listener("SASL_PLAINTEXT")
    }

    /// `SASL_SSL` bootstrap: SASL inside TLS.
    pub fn sasl_ssl(&self) -> String {
        self.listener("SASL_SSL")
    }

    /// `MTLS` bootstrap: TLS that requires a client certificate signed by the CA
    /// ([`Self::client_cert_pem`] + [`Self::client_key_pem`]); principal `User:sluice-client`.
    pub fn mtls(&self) -> String {
        self.listener("MTLS")
    }

    /// `EXPIRED` bootstrap: TLS whose server certificate (CA-signed, right SANs) expired.
    pub fn expired(&self) -> String {
        self.listener("EXPIRED")
    }

    /// `WRONGNAME` bootstrap: TLS whose server certificate (CA-signed, valid) names only
    /// `kafka.invalid`, so hostname verification of 127.0.0.1 fails.
    pub fn wrong_name(&self) -> String {
        self.listener("WRONGNAME")
    }

    /// `REAUTH` bootstrap: SASL_PLAINTEXT whose sessions expire every
    /// [`Self::reauth_interval`]; a client must re-authenticate on its open connections.
    pub fn reauth(&self) -> String {
        self.listener("REAUTH")
    }

    /// `connections.max.reauth.ms` of the `REAUTH` listener (10 s).
    pub fn reauth_interval(&self) -> Duration {
        self.reauth
    }

    /// `target/kafka/run/tls`, where xtask wrote the certificates and keys.
    pub fn tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// The CA certificate (PEM) that signed every broker certificate and the client's.
    pub fn ca_pem(&self) -> PathBuf {
        self.tls_dir.join("ca.pem")
    }

    /// Another CA (PEM) that signed nothing the broker serves: a client trusting only it
    /// fails with "unknown issuer".
    pub fn other_ca_pem(&self) -> PathBuf {
        self.tls_dir.join("other-ca.pem")
    }

    /// The mTLS client's certificate (PEM, the leaf only; CN=sluice-client, CA-signed).
    pub fn client_cert_pem(&self) -> PathBuf {
        self.tls_dir.join("client.pem")
    }

    /// The mTLS client's private key: EC P-256, unencrypted PKCS#8 PEM.
    pub fn client_key_pem(&self) -> PathBuf {
        self.tls_dir.join("client.key")
    }

    /// The client key, certificate and CA in one file: a Java `ssl.keystore.type=PEM`
    /// keystore.
    pub fn client_keystore_pem(&self) -> PathBuf {
        self.tls_dir.join("client-keystore.pem")
    }

    /// The password of SASL user `user`. Panics on an unknown user.
    pub fn password(&self, user: &str) -> &str {
        self.users
            .get(user)
            .unwrap_or_else(|| panic!("no SASL user {user} in the cluster's security file"))
    }

    /// `("admin", "admin-secret")`: a super user.
    pub fn admin(&self) -> (&'static str, &str) {
        ("admin", self.password("admin"))
    }

    /// `("alice", "alice-secret")`: a super user.
    pub fn alice(&self) -> (&'static str, &str) {
        ("alice", self.password("alice"))
    }

    /// `("mallory", "mallory-secret")`: authenticates, but has no ACL.
    pub fn mallory(&self) -> (&'static str, &str) {
        ("mallory", self.password("mallory"))
    }

    /// Java client properties for `listener` as `user` over `mechanism` (its password
    /// from the security file): `security.protocol`; for TLS listeners
    /// `ssl.truststore.type=PEM` + `ssl.truststore.location=<ca.pem>` (and the client
    /// keystore for `MTLS`); for SASL listeners `sasl.mechanism` + `sasl.jaas.config`.
    ///
    /// `mechanism` must be `Some` exactly for SASL listeners; `user` is ignored
    /// without one. Panics otherwise, or on an unknown listener or user.
    pub fn java_props(
        &self,
        listener: &str,
        mechanism: Option<SaslMechanism>,
        user: &str,
    ) -> Vec<(String, String)> {
        let password = if mechanism.is_some() {
            self.password(user).to_string()
        } else {
            String::new()
        };
        self.java_props_with_password(listener, mechanism, user, &password)
    }

    /// [`Self::java_props`] with the given password (a wrong one, say).
    pub fn java_props_with_password(
        &self,
        listener: &str,
        mechanism: Option<SaslMechanism>,
        user: &str,
        password: &str,
    ) -> Vec<(String, String)> {
        let protocol = self.protocol(listener).to_string();
        let mut props = vec![("security.protocol".to_string(), protocol.clone())];
        let mut set = |k: &str, v: String| props.push((k.to_string(), v));
        if protocol == "SSL" || protocol == "SASL_SSL" {
            set("ssl.truststore.type", "PEM".into());
            set(
                "ssl.truststore.location",
                self.ca_pem().display().to_string(),
            );
        }
        if listener.eq_ignore_ascii_case("MTLS") {
            set("ssl.keystore.type", "PEM".into());
            set(
                "ssl.keystore.location",
                self.client_keystore_pem().display().to_string(),
            );
        }
        let sasl = protocol.starts_with("SASL_");
        match (sasl, mechanism) {
            (true, Some(m)) => {
                set("sasl.mechanism", m.name().into());
                set("sasl.jaas.config", java_jaas_config(m, user, password));
            }
            (false, None) => {}
            (true, None) => panic!("listener {listener} is {protocol}: give a SASL mechanism"),
            (false, Some(m)) => panic!("listener {listener} is {protocol}: no SASL, so no {m}"),
        }
        props
    }

    /// Runs Kafka's `kafka-acls` tool (`AclCommand`) on the PLAINTEXT listener, where
    /// the caller is `User:ANONYMOUS`, a super user; `args` are its arguments after
    /// `--bootstrap-server`, e.g. `["--add", "--allow-principal", "User:mallory",
    /// "--operation", "Read", "--topic", topic]`. Returns its stdout.
    pub fn acls(&self, args: &[&str]) -> Result<String> {
        let major = kafka_major(&kafka_libs())?;
        let class = if major >= 4 {
            "org.apache.kafka.tools.AclCommand"
        } else {
            "kafka.admin.AclCommand"
        };
        let mut cmd = tool(class)?;
        cmd.args(["--bootstrap-server", &self.plaintext()])
            .args(args);
        let (ok, stdout, stderr) =
            run_with_deadline(&mut cmd, None, Duration::from_secs(90)).context("kafka-acls")?;
        if !ok {
            bail!("kafka-acls {args:?} failed; stderr:\n{stderr}\nstdout:\n{stdout}");
        }
        Ok(stdout)
    }
}

/// `sasl.jaas.config` of a Java client: the login module of `mechanism` with the user's
/// credentials (for OAUTHBEARER an unsecured token whose `sub` is `user`).
pub fn java_jaas_config(mechanism: SaslMechanism, user: &str, password: &str) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    match mechanism {
        SaslMechanism::Plain => format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username={} password={};",
            quote(user),
            quote(password)
        ),
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username={} password={};",
            quote(user),
            quote(password)
        ),
        SaslMechanism::OAuthBearer => format!(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub={};",
            quote(user)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment
tls.dir=/t/tls
listener.PLAINTEXT.protocol=PLAINTEXT
listener.PLAINTEXT.bootstrap=127.0.0.1:19092
listener.SSL.protocol=SSL
listener.SSL.bootstrap=127.0.0.1:19102,127.0.0.1:19202
listener.MTLS.protocol=SSL
listener.MTLS.bootstrap=127.0.0.1:19105
listener.SASL_SSL.protocol=SASL_SSL
listener.SASL_SSL.bootstrap=127.0.0.1:19104
sasl.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
sasl.user.admin=admin-secret
sasl.user.mallory=mallory-secret
super.users=admin,alice,sluice-client
reauth.ms=10000
";

    #[test]
    fn parses_the_security_file() {
        let s = Secured::parse(FILE).unwrap();
        assert_eq!(s.ssl(), "127.0.0.1:19102,127.0.0.1:19202");
        assert_eq!(s.listener("sasl_ssl"), "127.0.0.1:19104");
        assert_eq!(s.protocol("MTLS"), "SSL");
        assert_eq!(s.admin(), ("admin", "admin-secret"));
        assert_eq!(s.ca_pem(), Path::new("/t/tls/ca.pem"));
        assert_eq!(s.reauth_interval(), Duration::from_secs(10));
        assert!(Secured::parse("listener.X.protocol=SSL\ntls.dir=/t\nreauth.ms=1").is_err());
    }

    #[test]
    fn java_props_per_listener() {
        let s = Secured::parse(FILE).unwrap();
        let props = s.java_props("SASL_SSL", Some(SaslMechanism::ScramSha512), "admin");
        let get = |k: &str| props.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("ssl.truststore.location"), Some("/t/tls/ca.pem"));
        assert_eq!(
            get("sasl.jaas.config"),
            Some("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"admin-secret\";")
        );
        let mtls = s.java_props("MTLS", None, "");
        assert!(mtls
            .iter()
            .any(|(k, v)| k == "ssl.keystore.location" && v == "/t/tls/client-keystore.pem"));
        let plain = s.java_props("PLAINTEXT", None, "");
        assert_eq!(plain, [("security.protocol".into(), "PLAINTEXT".into())]);
    }
}
