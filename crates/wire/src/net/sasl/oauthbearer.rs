//! OAUTHBEARER (RFC 7628, KIP-255): tokens from a provider the application implements,
//! cached and refreshed before they expire, and the client's first message.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::Secret;
use crate::error::{Error, Result};

/// A bearer token and when it expires.
#[derive(Debug, Clone)]
pub struct OAuthToken {
    /// The token (a JWT, usually). Never logged.
    pub value: Secret,
    /// How long it stays valid from now; `None` if unknown (then it is fetched again
    /// for every new connection and re-authentication).
    pub lifetime: Option<Duration>,
}

impl OAuthToken {
    /// A token valid for `lifetime`.
    pub fn new(value: impl Into<String>, lifetime: Option<Duration>) -> Self {
        OAuthToken {
            value: Secret::new(value),
            lifetime,
        }
    }
}

/// The future a [`TokenProvider`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<OAuthToken>> + Send + 'a>>;

/// Where OAUTHBEARER tokens come from: the application's identity provider (an OIDC
/// client-credentials call, a token file a sidecar refreshes, a cloud SDK).
///
/// Called when a connection authenticates or re-authenticates and the cached token has
/// passed 80 % of its lifetime. An error fails that authentication with the provider's
/// message.
///
/// ```
/// use std::time::Duration;
/// use sluice_wire::net::{OAuthToken, SaslConfig, TokenFuture, TokenProvider};
///
/// #[derive(Debug)]
/// struct FromFile(std::path::PathBuf);
///
/// impl TokenProvider for FromFile {
///     fn token(&self) -> TokenFuture<'_> {
///         Box::pin(async move {
///             let jwt = std::fs::read_to_string(&self.0).map_err(|e| {
///                 sluice_wire::Error::token_provider(format!("reading {}: {e}", self.0.display()))
///             })?;
///             Ok(OAuthToken::new(jwt.trim(), Some(Duration::from_secs(300))))
///         })
///     }
/// }
///
/// let sasl = SaslConfig::oauthbearer(FromFile("/var/run/token".into()));
/// # let _ = sasl;
/// ```
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A fresh token.
    fn token(&self) -> TokenFuture<'_>;
}

/// A fixed token (for tokens refreshed outside the process, or tests).
#[derive(Clone)]
pub struct StaticToken(OAuthToken);

impl StaticToken {
    /// Always hands out `value`, with an unknown lifetime.
    pub fn new(value: impl Into<String>) -> Self {
        StaticToken(OAuthToken::new(value, None))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(***)")
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// An unsecured JWT (`"alg":"none"`), as Java's default OAUTHBEARER login makes from
/// `unsecuredLoginStringClaim_sub`: accepted only by brokers configured with Kafka's
/// unsecured validator, which no production cluster should be. For tests.
#[derive(Debug, Clone)]
pub struct UnsecuredToken {
    principal: String,
    lifetime: Duration,
    scope: Option<String>,
}

impl UnsecuredToken {
    /// A token for `principal` (its `sub` claim), valid for an hour (Java's
    /// `unsecuredLoginLifetimeSeconds` default).
    pub fn new(principal: impl Into<String>) -> Self {
        UnsecuredToken {
            principal: principal.into(),
            lifetime: Duration::from_secs(3600),
            scope: None,
        }
    }

    /// Sets the lifetime.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets the `scope` claim (comma-separated scopes).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The principal (`sub`).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    pub(crate) fn make(&self) -> Result<OAuthToken> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::config("the system clock is before 1970"))?;
        // Issued a second ago: the broker checks `iat` against a clock reading it may
        // have taken before our connection arrived (its unsecured validator allows no
        // skew), and a token "issued in the future" is refused as invalid_token. Java's
        // login issues the token long before it is used, so never meets this.
        let iat = (now.as_secs_f64() - 1.0).max(0.0);
        let exp = iat + self.lifetime.as_secs_f64();
        let mut claims = format!(
            r#"{{"iat":{iat:.3},"exp":{exp:.3},"sub":{}"#,
            json_string(&self.principal)
        );
        if let Some(scope) = &self.scope {
            let list: Vec<String> = scope
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(json_string)
                .collect();
            claims.push_str(&format!(r#","scope":[{}]"#, list.join(",")));
        }
        claims.push('}');
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.as_bytes());
        Ok(OAuthToken::new(
            format!("{header}.{payload}."),
            Some(self.lifetime),
        ))
    }
}

impl TokenProvider for UnsecuredToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.make();
        Box::pin(async move { token })
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The provider behind a cache shared by every connection of a config: a token is
/// reused until 80 % of its lifetime has passed.
pub(crate) struct TokenCache {
    provider: Arc<dyn TokenProvider>,
    cached: Mutex<Option<(OAuthToken, Instant)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Java's `sasl.login.refresh.window.factor`.
const REFRESH_FACTOR: f64 = 0.8;

impl TokenCache {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        TokenCache {
            provider,
            cached: Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self) -> Result<OAuthToken> {
        {
            let guard = crate::sync::lock(&self.cached);
            if let Some((token, refresh_at)) = guard.as_ref() {
                if Instant::now() < *refresh_at {
                    return Ok(token.clone());
                }
            }
        }
        let token = self.provider.token().await?;
        if let Some(lifetime) = token.lifetime {
            let refresh_at = Instant::now() + lifetime.mul_f64(REFRESH_FACTOR);
            *crate::sync::lock(&self.cached) = Some((token.clone(), refresh_at));
        }
        Ok(token)
    }
}

/// `n,,%x01auth=Bearer <token>[%x01key=value...]%x01%x01` (RFC 7628 3.1, with Kafka's
/// extensions, KIP-342).
pub(crate) fn client_first(token: &str, extensions: &BTreeMap<String, String>) -> Vec<u8> {
    let mut msg = format!("n,,\x01auth=Bearer {token}");
    for (k, v) in extensions {
        msg.push('\x01');
        msg.push_str(k);
        msg.push('=');
        msg.push_str(v);
    }
    msg.push_str("\x01\x01");
    msg.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn unsecured_token_is_an_unsigned_jwt_with_sub_and_exp() {
        let t = UnsecuredToken::new("admin")
            .lifetime(Duration::from_secs(60))
            .make()
            .unwrap();
        let parts: Vec<&str> = t.value.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(header, br#"{"alg":"none"}"#);
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert!(claims.contains(r#""sub":"admin""#), "{claims}");
        assert!(claims.contains(r#""exp":"#), "{claims}");
    }

    #[derive(Debug, Default)]
    struct Counting(AtomicU32, Duration);

    impl TokenProvider for Counting {
        fn token(&self) -> TokenFuture<'_> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let lifetime = self.1;
            Box::pin(async move { Ok(OAuthToken::new(format!("t{n}"), Some(lifetime))) })
        }
    }

    #[tokio::test]
    async fn the_cache_refreshes_after_80_percent_of_the_lifetime() {
        let provider = Arc::new(Counting(AtomicU32::new(0), Duration::from_millis(200)));
        let cache = TokenCache::new(provider.clone());
        assert_eq!(cache.get().await.unwrap().value.expose(), "t0");
        assert_eq!(cache.get().await.unwrap().value.expose(), "t0");
        tokio::time::sleep(Duration::from_millis(170)).await;
        assert_eq!(cache.get().await.unwrap().value.expose(), "t1");
        assert_eq!(provider.0.load(Ordering::SeqCst), 2);
    }
}
