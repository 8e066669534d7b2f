//! One REST call to the registry: bounded concurrency, retries with backoff on 5xx, 429
//! and transport failures, and the answer's error code mapped to a typed [`Error`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// The media type of the Confluent REST API (v1 of its JSON).
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How requests authenticate.
#[derive(Clone, Default)]
pub(crate) enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl fmt::Debug for Auth {
    // Never print the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Retry schedule: `retries` more attempts after the first, waiting `initial`, then
/// doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) retries: u32,
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        // Up to 25 % less, so clients that failed together do not retry together.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        d - d.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }
}

/// What a call is about, so that a 404 says which thing was missing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    pub(crate) subject: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) id: Option<u32>,
}

pub(crate) struct Transport {
    client: reqwest::Client,
    base: Url,
    auth: Auth,
    permits: Semaphore,
    backoff: Backoff,
    requests: AtomicU64,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("in_flight_limit", &self.permits.available_permits())
            .field("backoff", &self.backoff)
            .field("requests", &self.requests.load(Ordering::Relaxed))
            .finish()
    }
}

impl Transport {
    pub(crate) fn new(
        client: reqwest::Client,
        base: Url,
        auth: Auth,
        max_in_flight: usize,
        backoff: Backoff,
    ) -> Self {
        Transport {
            client,
            base,
            auth,
            permits: Semaphore::new(max_in_flight.max(1)),
            backoff,
            requests: AtomicU64::new(0),
        }
    }

    /// HTTP requests sent so far (every attempt counts).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The URL of `segments` below the base, each percent-encoded (a subject may hold
    /// `/`, `:` or spaces).
    fn url(&self, segments: &[&str], query: Option<(&str, &str)>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if let Some((k, v)) = query {
            url.query_pairs_mut().append_pair(k, v);
        }
        url
    }

    /// Send one request (with retries) and return the JSON body of the 2xx answer.
    pub(crate) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<(&str, &str)>,
        body: Option<&Value>,
        ctx: Ctx<'_>,
    ) -> Result<Value> {
        let url = self.url(segments, query);
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(method.clone(), url.clone(), body).await;
            let retriable = match &outcome {
                Ok(_) => false,
                Err(e) => e.is_retriable(),
            };
            if !retriable || attempt >= self.backoff.retries {
                return outcome.map_err(|e| contextualize(e, &ctx));
            }
            let delay = self.backoff.delay(attempt);
            if let Err(e) = &outcome {
                tracing::debug!(%url, attempt, ?delay, error = %e, "registry call failed; retrying");
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// The HTTP request: the API's media type, the credentials, the JSON body.
    fn request(&self, method: Method, url: Url, body: Option<&Value>) -> Result<reqwest::Request> {
        let mut req = self
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
            req = req
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(bytes);
        }
        req.build()
            .map_err(|e| Error::Config(format!("cannot build the request: {e}")))
    }

    async fn attempt(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Value> {
        // The permit bounds requests in flight, not the waits between retries.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Config("registry client closed".into()))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let req = self.request(method, url, body)?;
        let resp = self.client.execute(req).await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::BadReply(format!("{e}: {}", String::from_utf8_lossy(preview(&bytes))))
            });
        }
        Err(api_error(status, &bytes))
    }
}

/// A failed exchange: [`Error::Tls`] if rustls refused the handshake (its error sits
/// inside `io::Error`s in the chain), else [`Error::Transport`] (retried).
fn transport(e: reqwest::Error) -> Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        // Look through io::Errors wrapping io::Errors: their source() skips a level.
        let mut inner = err;
        loop {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Error::Tls(Box::new(tls.clone()));
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(next) => inner = next,
                None => break,
            }
        }
        cur = err.source();
    }
    Error::Transport(Box::new(e))
}

fn preview(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(200)]
}

/// The error of a non-2xx answer, before the context of the call is known.
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Body {
        error_code: Option<u32>,
        message: Option<String>,
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.error_code)
        .unwrap_or(u32::from(status.as_u16()));
    let message = parsed
        .and_then(|b| b.message)
        .unwrap_or_else(|| String::from_utf8_lossy(preview(body)).into_owned());
    Error::Registry {
        status: status.as_u16(),
        code,
        message,
    }
}

/// Map the Confluent error codes to the typed errors, naming what the call was about.
fn contextualize(e: Error, ctx: &Ctx<'_>) -> Error {
    let Error::Registry {
        status,
        code,
        message,
    } = e
    else {
        return e;
    };
    let subject = || ctx.subject.unwrap_or_default().to_string();
    match (status, code) {
        (404, 40401) => Error::SubjectNotFound { subject: subject() },
        (404, 40402) => Error::VersionNotFound {
            subject: subject(),
            version: ctx.version.unwrap_or_default().to_string(),
        },
        (404, 40403) => match ctx.id {
            Some(id) => Error::UnknownSchemaId(id),
            None => Error::SchemaNotFound { subject: subject() },
        },
        (409, _) => Error::Incompatible {
            subject: subject(),
            message,
        },
        (422, 42201) => Error::InvalidSchema { message },
        _ => Error::Registry {
            status,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(status: u16, body: &str, ctx: Ctx<'_>) -> Error {
        contextualize(
            api_error(StatusCode::from_u16(status).unwrap(), body.as_bytes()),
            &ctx,
        )
    }

    #[test]
    fn error_codes_map_to_typed_errors() {
        let subj = Ctx {
            subject: Some("t-value"),
            version: Some("7"),
            id: None,
        };
        assert!(matches!(
            mapped(404, r#"{"error_code":40401,"message":"x"}"#, subj),
            Error::SubjectNotFound { subject } if subject == "t-value"
        ));
        assert!(matches!(
            mapped(404, r#"{"error_code":40402,"message":"x"}"#, subj),
            Error::VersionNotFound { version, .. } if version == "7"
        ));
        assert!(matches!(
            mapped(404, r#"{"error_code":40403,"message":"x"}"#, subj),
            Error::SchemaNotFound { .. }
        ));
        let by_id = Ctx {
            id: Some(999),
            ..Ctx::default()
        };
        assert!(matches!(
            mapped(404, r#"{"error_code":40403,"message":"x"}"#, by_id),
            Error::UnknownSchemaId(999)
        ));
        assert!(matches!(
            mapped(409, r#"{"error_code":409,"message":"diff"}"#, subj),
            Error::Incompatible { message, .. } if message == "diff"
        ));
        assert!(matches!(
            mapped(422, r#"{"error_code":42201,"message":"bad"}"#, subj),
            Error::InvalidSchema { message } if message == "bad"
        ));
        // No JSON body: the status stands in for the code; a 5xx is retriable, a 401 not.
        let e = mapped(503, "upstream down", subj);
        assert!(
            matches!(&e, Error::Registry { status: 503, code: 503, message } if message == "upstream down")
        );
        assert!(e.is_retriable());
        assert!(!mapped(401, "", subj).is_retriable());
        assert!(mapped(429, "", subj).is_retriable());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_at_most_a_quarter_off() {
        let b = Backoff {
            retries: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        for (attempt, full) in [(0, 100), (1, 200), (2, 350), (9, 350), (40, 350)] {
            let d = b.delay(attempt);
            assert!(d <= Duration::from_millis(full), "{attempt}: {d:?}");
            assert!(d >= Duration::from_millis(full * 3 / 4), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let basic = Auth::Basic {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Bearer("tok".into())).contains("tok"));
    }

    fn transport(auth: Auth) -> Transport {
        let tls = crate::tls::client_config(&Default::default(), false).unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap();
        Transport::new(
            client,
            Url::parse("http://h:1/apis/ccompat/v7/").unwrap(),
            auth,
            1,
            Backoff {
                retries: 0,
                initial: Duration::ZERO,
                max: Duration::ZERO,
            },
        )
    }

    #[test]
    fn requests_carry_the_media_type_and_the_credentials() {
        let header = |t: &Transport, body: Option<&Value>| {
            let req = t
                .request(Method::POST, t.url(&["subjects", "s"], None), body)
                .unwrap();
            let h = |name| {
                req.headers()
                    .get(name)
                    .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
            };
            (
                h(reqwest::header::AUTHORIZATION),
                h(reqwest::header::ACCEPT),
                h(reqwest::header::CONTENT_TYPE),
            )
        };
        let basic = transport(Auth::Basic {
            user: "key".into(),
            password: "secret".into(),
        });
        // base64("key:secret")
        assert_eq!(
            header(&basic, None).0.as_deref(),
            Some("Basic a2V5OnNlY3JldA==")
        );
        let bearer = transport(Auth::Bearer("tok-1".into()));
        let (auth, accept, content_type) = header(&bearer, Some(&serde_json::json!({})));
        assert_eq!(auth.as_deref(), Some("Bearer tok-1"));
        assert_eq!(accept.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
        let none = transport(Auth::None);
        let (auth, _, content_type) = header(&none, None);
        assert_eq!((auth, content_type), (None, None));
    }

    #[test]
    fn subjects_are_percent_encoded_path_segments() {
        let t = transport(Auth::None);
        assert_eq!(
            t.url(&["subjects", "a/b c", "versions"], None).as_str(),
            "http://h:1/apis/ccompat/v7/subjects/a%2Fb%20c/versions"
        );
        assert_eq!(
            t.url(&["config", "s"], Some(("defaultToGlobal", "true")))
                .as_str(),
            "http://h:1/apis/ccompat/v7/config/s?defaultToGlobal=true"
        );
    }
}
