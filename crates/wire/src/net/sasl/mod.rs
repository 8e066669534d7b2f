//! SASL authentication: the mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
//! OAUTHBEARER), their settings, and the exchange of messages, with no I/O.
//!
//! The connection drives an exchange: SaslHandshake (v1) names the mechanism, then
//! each client message travels in a SaslAuthenticate request and the broker's answer
//! comes back in its response, until the mechanism is done. The broker's last response
//! carries the session lifetime (KIP-368); the connection re-authenticates before it
//! ends (see `net/connection.rs`).
//!
//! Not supported: GSSAPI (Kerberos) and AWS MSK IAM. A config naming them is an
//! [`ErrorKind::Config`](crate::ErrorKind::Config) error.

mod jaas;
mod oauthbearer;
mod scram;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use oauthbearer::{OAuthToken, StaticToken, TokenFuture, TokenProvider, UnsecuredToken};

use self::oauthbearer::TokenCache;
use self::scram::{ScramClient, ScramHash};
use crate::config::invalid;
use crate::error::{Error, Result};

/// A string that is never shown: `Debug` and `Display` print `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// Kerberos: Java's default, not supported by Sluice (a config error names the
    /// supported ones).
    #[default]
    Gssapi,
    /// Username and password in the clear (use it over TLS).
    Plain,
    /// Salted challenge-response with SHA-256 (RFC 5802, RFC 7677).
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
    /// A bearer token (RFC 7628), from a [`TokenProvider`].
    OAuthBearer,
}

impl SaslMechanism {
    /// The name the broker knows it by (`SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Gssapi => "GSSAPI",
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GSSAPI" => Ok(SaslMechanism::Gssapi),
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            "AWS_MSK_IAM" => Err(Error::config(
                "sasl.mechanism AWS_MSK_IAM is not supported; use SCRAM-SHA-512 on MSK",
            )),
            _ => Err(invalid(
                "sasl.mechanism",
                s,
                "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
            )),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `sasl.*` settings: a mechanism and its credentials. `Debug` shows the mechanism
/// and the user name, never the password or the token.
///
/// ```
/// use sluice_wire::net::{SaslConfig, SaslMechanism};
/// let sasl = SaslConfig::scram_sha512("alice", "alice-secret");
/// assert_eq!(sasl.mechanism(), SaslMechanism::ScramSha512);
/// assert!(!format!("{sasl:?}").contains("alice-secret"));
/// ```
#[derive(Clone, Default)]
pub struct SaslConfig {
    mechanism: SaslMechanism,
    username: Option<String>,
    password: Option<Secret>,
    /// For OAUTHBEARER: the provider (behind a cache that refreshes before expiry).
    token: Option<Arc<TokenCache>>,
    /// Unsecured-token settings from `sasl.jaas.config` / `sasl.oauthbearer.config`,
    /// turned into a provider at validation when no provider was given.
    unsecured: Option<UnsecuredToken>,
    /// SASL extensions sent with an OAUTHBEARER token (KIP-342).
    extensions: BTreeMap<String, String>,
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token_provider", &self.token.is_some())
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SaslConfig {
    /// PLAIN with `username` and `password`.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::with_password(SaslMechanism::Plain, username, password)
    }

    /// SCRAM-SHA-256 with `username` and `password`.
    pub fn scram_sha256(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::with_password(SaslMechanism::ScramSha256, username, password)
    }

    /// SCRAM-SHA-512 with `username` and `password`.
    pub fn scram_sha512(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::with_password(SaslMechanism::ScramSha512, username, password)
    }

    /// OAUTHBEARER with tokens from `provider`. Tokens are cached and fetched again when
    /// 80 % of their lifetime has passed (Java: `sasl.login.refresh.window.factor`), so
    /// a re-authentication (KIP-368) presents a fresh one.
    pub fn oauthbearer(provider: impl TokenProvider + 'static) -> Self {
        SaslConfig {
            mechanism: SaslMechanism::OAuthBearer,
            token: Some(Arc::new(TokenCache::new(Arc::new(provider)))),
            ..SaslConfig::default()
        }
    }

    fn with_password(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        SaslConfig {
            mechanism,
            username: Some(username.into()),
            password: Some(Secret::new(password)),
            ..SaslConfig::default()
        }
    }

    /// Adds a SASL extension sent with OAUTHBEARER tokens (KIP-342; Confluent Cloud's
    /// `logicalCluster` and `identityPoolId`, for example).
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// The mechanism.
    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// The user name, for PLAIN and SCRAM.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub(crate) fn has_credentials(&self) -> bool {
        self.username.is_some() || self.password.is_some() || self.token.is_some()
    }

    /// Sets one `sasl.*` key; `Ok(false)` for other keys.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "sasl.mechanism" | "sasl.mechanisms" => self.mechanism = value.parse()?,
            "sasl.username" => self.username = Some(value.to_string()),
            "sasl.password" => self.password = Some(Secret::new(value)),
            "sasl.jaas.config" => {
                let login = jaas::parse(value)?;
                match login {
                    jaas::Login::Password { username, password } => {
                        self.username = Some(username);
                        self.password = Some(password);
                    }
                    jaas::Login::OAuthBearer {
                        unsecured,
                        extensions,
                    } => {
                        self.unsecured = unsecured;
                        self.extensions.extend(extensions);
                    }
                }
            }
            "sasl.oauthbearer.config" => {
                let (unsecured, extensions) = jaas::parse_librdkafka_oauthbearer(value)?;
                self.unsecured = Some(unsecured);
                self.extensions.extend(extensions);
            }
            "sasl.oauthbearer.extensions" => {
                for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| invalid(key, value, "key=value[,key=value...]"))?;
                    self.extensions
                        .insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            "sasl.kerberos.service.name" | "sasl.kerberos.principal" | "sasl.kerberos.keytab" => {
                return Err(Error::config(format!(
                    "{key}: GSSAPI (Kerberos) is not supported; use PLAIN, SCRAM-SHA-256, \
                     SCRAM-SHA-512 or OAUTHBEARER"
                )))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the mechanism is one we speak and its credentials are there; turns
    /// unsecured-token settings into a provider.
    pub(crate) fn validate(&self) -> Result<()> {
        match self.mechanism {
            SaslMechanism::Gssapi => Err(Error::config(
                "sasl.mechanism is GSSAPI (Java's default), which Sluice does not support: \
                 set sasl.mechanism to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
            )),
            SaslMechanism::Plain | SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                if self.username.is_none() || self.password.is_none() {
                    return Err(Error::config(format!(
                        "sasl.mechanism {} needs a user name and a password: set \
                         sasl.jaas.config (or sasl.username and sasl.password)",
                        self.mechanism
                    )));
                }
                Ok(())
            }
            SaslMechanism::OAuthBearer => {
                if self.token.is_none() && self.unsecured.is_none() {
                    return Err(Error::config(
                        "sasl.mechanism OAUTHBEARER needs a token: give a TokenProvider \
                         (SaslConfig::oauthbearer), or unsecured-token settings in \
                         sasl.jaas.config / sasl.oauthbearer.config (tests only)",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Starts an exchange: the first client message is ready after this (OAUTHBEARER
    /// fetches its token here).
    pub(crate) async fn begin(&self) -> Result<Exchange> {
        match self.mechanism {
            SaslMechanism::Plain => {
                let (user, pass) = self.credentials()?;
                // authzid NUL authcid NUL password (RFC 4616); no authzid.
                let mut msg = Vec::with_capacity(user.len() + pass.len() + 2);
                msg.push(0);
                msg.extend_from_slice(user.as_bytes());
                msg.push(0);
                msg.extend_from_slice(pass.as_bytes());
                Ok(Exchange::Plain { first: Some(msg) })
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let (user, pass) = self.credentials()?;
                let hash = if self.mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha512
                };
                Ok(Exchange::Scram(Box::new(ScramClient::new(
                    hash,
                    user,
                    pass,
                    scram::nonce()?,
                ))))
            }
            SaslMechanism::OAuthBearer => {
                let token = match (&self.token, &self.unsecured) {
                    (Some(cache), _) => cache.get().await?,
                    (None, Some(unsecured)) => unsecured.make()?,
                    (None, None) => {
                        return Err(self.validate().err().unwrap_or_else(|| {
                            Error::config("sasl.mechanism OAUTHBEARER needs a token provider")
                        }))
                    }
                };
                Ok(Exchange::OAuthBearer {
                    first: Some(oauthbearer::client_first(
                        token.value.expose(),
                        &self.extensions,
                    )),
                    error: None,
                })
            }
            SaslMechanism::Gssapi => Err(self
                .validate()
                .err()
                .unwrap_or_else(|| Error::config("GSSAPI is not supported"))),
        }
    }

    fn credentials(&self) -> Result<(&str, &str)> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok((u, p.expose())),
            _ => Err(Error::config(format!(
                "sasl.mechanism {} needs sasl.jaas.config (or sasl.username and sasl.password)",
                self.mechanism
            ))),
        }
    }
}

/// One authentication in progress: what the client sends next, given what the broker
/// sent last.
pub(crate) enum Exchange {
    Plain {
        first: Option<Vec<u8>>,
    },
    Scram(Box<ScramClient>),
    OAuthBearer {
        first: Option<Vec<u8>>,
        /// The broker's error challenge, once it sent one (RFC 7628 3.2.2): we answer
        /// with a lone %x01 and the broker then fails the authentication.
        error: Option<String>,
    },
}

impl Exchange {
    /// The next message to send, after the broker's last message `server` (`None`
    /// before the first). `Ok(None)`: the client is done, the broker's last message
    /// checked (SCRAM verifies the server signature here).
    pub(crate) fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        match self {
            Exchange::Plain { first } => Ok(first.take()),
            Exchange::Scram(client) => client.step(server),
            Exchange::OAuthBearer { first, error } => {
                if let Some(msg) = first.take() {
                    return Ok(Some(msg));
                }
                match server {
                    Some(challenge) if !challenge.is_empty() => {
                        if let Some(previous) = error {
                            return Err(Error::authentication(format!(
                                "OAUTHBEARER token rejected: {previous}"
                            )));
                        }
                        *error = Some(String::from_utf8_lossy(challenge).into_owned());
                        Ok(Some(vec![0x01]))
                    }
                    _ => match error {
                        Some(e) => Err(Error::authentication(format!(
                            "OAUTHBEARER token rejected: {e}"
                        ))),
                        None => Ok(None),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(exchange: &mut Exchange, server: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut sent = vec![exchange.step(None).unwrap().unwrap()];
        for s in server {
            match exchange.step(Some(s)).unwrap() {
                Some(m) => sent.push(m),
                None => break,
            }
        }
        sent
    }

    #[tokio::test]
    async fn plain_sends_one_message() {
        let mut ex = SaslConfig::plain("alice", "pw").begin().await.unwrap();
        let sent = run(&mut ex, &[b""]);
        assert_eq!(sent, vec![b"\0alice\0pw".to_vec()]);
    }

    #[tokio::test]
    async fn oauthbearer_answers_an_error_challenge_then_fails() {
        let sasl = SaslConfig::oauthbearer(StaticToken::new("tok")).extension("traceId", "1");
        let mut ex = sasl.begin().await.unwrap();
        let first = ex.step(None).unwrap().unwrap();
        assert_eq!(
            first,
            b"n,,\x01auth=Bearer tok\x01traceId=1\x01\x01".to_vec()
        );
        let reply = ex
            .step(Some(br#"{"status":"invalid_token"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(reply, vec![0x01]);
        let e = ex.step(Some(b"")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
        assert!(e.to_string().contains("invalid_token"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let mut s = SaslConfig::default();
        s.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" password="hunter2";"#,
        )
        .unwrap();
        s.set("sasl.mechanism", "PLAIN").unwrap();
        let text = format!("{s:?}");
        assert!(text.contains("bob"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        s.validate().unwrap();
    }

    #[test]
    fn unsupported_mechanisms_say_what_is_supported() {
        let e = "AWS_MSK_IAM".parse::<SaslMechanism>().unwrap_err();
        assert!(e.to_string().contains("SCRAM-SHA-512"), "{e}");
        let e = "DIGEST-MD5".parse::<SaslMechanism>().unwrap_err();
        assert!(e.to_string().contains("OAUTHBEARER"), "{e}");
        let e = SaslConfig::default()
            .set("sasl.kerberos.service.name", "kafka")
            .unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
    }
}
