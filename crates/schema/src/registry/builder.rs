//! [`RegistryBuilder`]: URL, credentials, TLS, timeouts, retries, the in-flight bound.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::Url;

use super::flight::Flights;
use super::http::{Auth, Backoff, Transport};
use super::unknown_ids::UnknownIds;
use super::{Inner, Registry};
use crate::error::{Error, Result};
use crate::tls::{self, TlsOptions};

/// Builds a [`Registry`]: URL, authentication, TLS, timeouts, retries, request bound.
#[derive(Debug)]
#[must_use]
pub struct RegistryBuilder {
    url: String,
    auth: Auth,
    tls: TlsOptions,
    timeout: Duration,
    connect_timeout: Duration,
    max_in_flight: usize,
    backoff: Backoff,
    unknown_id_ttl: Duration,
}

impl RegistryBuilder {
    pub(super) fn new(url: String) -> Self {
        RegistryBuilder {
            url,
            auth: Auth::None,
            tls: TlsOptions::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 8,
            backoff: Backoff {
                retries: 3,
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            unknown_id_ttl: Duration::from_secs(5),
        }
    }

    /// Authenticate with HTTP basic auth (Confluent Cloud: API key and secret).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Authenticate with `Authorization: Bearer <token>` (OAuth).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// Trust these PEM CA certificates for an `https://` registry instead of the
    /// system's.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pem = Some(pem.into());
        self
    }

    /// Present this PEM certificate chain and private key (mutual TLS).
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.tls.identity_pem = Some((cert.into(), key.into()));
        self
    }

    /// Use this rustls configuration as it is (its provider, roots and client
    /// certificate); [`ca_pem`](Self::ca_pem) and [`identity_pem`](Self::identity_pem)
    /// are then ignored.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls.config = Some(config);
        self
    }

    /// The deadline of one HTTP attempt, connect to last byte. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of establishing a connection (TCP and TLS). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// At most this many requests in flight at once; more wait their turn. Default 8.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Retry a request that timed out, failed to connect, or got a 5xx or 429 answer up
    /// to `retries` more times, waiting `initial` (doubling, at most `max`, less up to
    /// 25 % jitter) in between. Default 3 retries, 100 ms, 2 s. 4xx answers are never
    /// retried: asking again gets the same answer.
    pub fn retries(mut self, retries: u32, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff {
            retries,
            initial,
            max: max.max(initial),
        };
        self
    }

    /// How long an id the registry has no schema for (40403) is remembered as unknown,
    /// so records carrying it fail with [`Error::UnknownSchemaId`] without a request.
    /// Default 5 s; zero asks every time. Short, because an id can become known (a
    /// replica catching up); at most 4096 ids are remembered at once.
    pub fn unknown_id_ttl(mut self, ttl: Duration) -> Self {
        self.unknown_id_ttl = ttl;
        self
    }

    /// Build the client (no request is made).
    pub fn build(self) -> Result<Registry> {
        let mut base = Url::parse(self.url.trim())
            .map_err(|e| Error::Config(format!("registry URL {:?}: {e}", self.url)))?;
        let https = match base.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(Error::Config(format!(
                    "registry URL {:?}: scheme {other:?} (http or https expected)",
                    self.url
                )))
            }
        };
        // Credentials in the URL (`https://key:secret@host`) are basic auth.
        let mut auth = self.auth;
        if !base.username().is_empty() && matches!(auth, Auth::None) {
            auth = Auth::Basic {
                user: base.username().to_string(),
                password: base.password().unwrap_or_default().to_string(),
            };
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&self.tls, https)?)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Registry {
            inner: Arc::new(Inner {
                transport: Transport::new(client, base, auth, self.max_in_flight, self.backoff),
                by_id: RwLock::default(),
                by_schema: RwLock::default(),
                by_version: RwLock::default(),
                unknown_ids: UnknownIds::new(self.unknown_id_ttl),
                id_flights: Flights::default(),
                schema_flights: Flights::default(),
            }),
        })
    }
}
