//! SASL on the connection: the exchange's messages written by the writer task itself,
//! so no other request can slip between them, and the session lifetime that decides
//! when to re-authenticate (KIP-368).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWrite;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{register, write_frame, ConnectionConfig, SaslVersions, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::net::frame;

/// Writes `request` from the writer task itself and waits for its response (SASL
/// messages, which nothing may overtake).
async fn round_trip<R: Request, W: AsyncWrite + Unpin>(
    shared: &Shared,
    socket: &mut W,
    config: &ConnectionConfig,
    request: &R,
    version: i16,
) -> Result<R::Response> {
    let correlation_id = shared.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
    let frame =
        frame::encode_request_spliced(correlation_id, &config.client_id, version, request, &[])?;
    let (reply, rx) = oneshot::channel();
    if register(shared, correlation_id, R::KEY, reply).is_err() {
        return Err(shared.closed_error());
    }
    write_frame(socket, frame)
        .await
        .map_err(|e| Error::io(format!("writing to {}", shared.addr), e))?;
    let payload = match tokio::time::timeout(config.request_timeout, rx).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(shared.closed_error()),
        Err(_) => {
            return Err(Error::timeout(
                format!("SASL request (api key {}) to {}", R::KEY, shared.addr),
                config.request_timeout,
            ))
        }
    };
    frame::decode_response::<R>(payload, version)
}

/// Runs one SASL authentication on the connection. Returns when to re-authenticate:
/// at 85 to 95 % of the session lifetime the broker gave (as Java does), or never.
pub(super) async fn authenticate<W: AsyncWrite + Unpin>(
    shared: &Shared,
    socket: &mut W,
    config: &ConnectionConfig,
    versions: SaslVersions,
) -> Result<Option<Instant>> {
    let sasl = &config.security.sasl;
    let mechanism = sasl.mechanism().name();
    let addr = &shared.addr;
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let response = round_trip(shared, socket, config, &handshake, versions.handshake)
        .await
        .map_err(|e| {
            if matches!(e.kind(), ErrorKind::ConnectionClosed | ErrorKind::Io) {
                Error::authentication(format!(
                    "{addr} closed the connection at the SASL handshake: is this listener SASL_PLAINTEXT / SASL_SSL? (security.protocol is {})",
                    config.security.protocol
                ))
            } else {
                e
            }
        })?;
    match response.error_code {
        0 => {}
        33 => {
            let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(Error::authentication(format!(
                "{addr} does not offer SASL mechanism {mechanism} (it offers: {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        34 => {
            return Err(Error::authentication(format!(
                "{addr} refused the SASL handshake (ILLEGAL_SASL_STATE): this listener does not speak SASL; use security.protocol PLAINTEXT or SSL for it, or the port of a SASL listener"
            )))
        }
        code => {
            Error::check_code(code, || format!("SaslHandshake to {addr}"))?;
        }
    }
    let mut exchange = sasl.begin().await?;
    let done = &shared.authentications;
    let mut server: Option<Bytes> = None;
    let mut lifetime_ms = 0i64;
    while let Some(message) = exchange.step(server.as_deref())? {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let response = round_trip(shared, socket, config, &request, versions.authenticate).await?;
        if response.error_code != 0 {
            let detail = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("error code {}", response.error_code));
            return Err(Error::authentication(format!(
                "SASL {mechanism} authentication with {addr} failed: {detail}"
            )));
        }
        lifetime_ms = response.session_lifetime_ms;
        server = Some(response.auth_bytes);
    }
    done.fetch_add(1, Ordering::Relaxed);
    if lifetime_ms <= 0 {
        debug!(broker = %addr, mechanism, "authenticated");
        return Ok(None);
    }
    let lifetime = Duration::from_millis(lifetime_ms as u64);
    let factor = 0.85 + 0.10 * crate::backoff::unit_random();
    info!(broker = %addr, mechanism, session_ms = lifetime_ms, "authenticated; re-authenticating before the session ends");
    Ok(Some(Instant::now() + lifetime.mul_f64(factor)))
}
