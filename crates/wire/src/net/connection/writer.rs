//! The writer task: writes queued requests in order, at most `max_in_flight` awaiting
//! answers, and runs SASL authentication and re-authentication between writes.

use crate::sync;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::auth::authenticate;
use super::{register, write_frame, Command, ConnectionConfig, SaslVersions, Shared};

/// Writes frames in the order they were queued, keeping at most `max_in_flight`
/// answered requests outstanding. The in-flight entry is registered before the write so
/// that a fast response always finds its waiter. Runs SASL authentication and
/// re-authentication between writes (see the module docs). Ends when every handle is
/// dropped (then half-closes the socket, so the broker finishes answering and closes its
/// side) or when the connection is poisoned.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut socket: W,
    mut rx: mpsc::Receiver<Command>,
    max_in_flight: usize,
    config: Arc<ConnectionConfig>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    // Set once authenticated: the versions to re-authenticate with, and when.
    let mut session: Option<(SaslVersions, Option<Instant>)> = None;
    loop {
        let reauth_at = session.and_then(|(_, at)| at);
        let next = tokio::select! {
            biased;
            _ = shutdown.wait_for(|dead| *dead) => None,
            _ = sleep_until(reauth_at) => session.map(|(versions, _)| Step::Reauthenticate(versions)),
            next = rx.recv() => next.map(Step::Command),
        };
        let outgoing = match next {
            None => break,
            Some(Step::Reauthenticate(versions)) => {
                debug!(broker = %shared.addr, "re-authenticating (KIP-368)");
                match authenticate(&shared, &mut socket, &config, versions).await {
                    Ok(at) => session = Some((versions, at)),
                    Err(e) => {
                        shared.poison(e.context("re-authentication"));
                        break;
                    }
                }
                continue;
            }
            Some(Step::Command(Command::Authenticate { versions, reply })) => {
                match authenticate(&shared, &mut socket, &config, versions).await {
                    Ok(at) => {
                        session = Some((versions, at));
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.clone()));
                        shared.poison(e);
                        break;
                    }
                }
                continue;
            }
            Some(Step::Command(Command::Request(outgoing))) => outgoing,
        };
        if let Some(reply) = outgoing.reply {
            if !wait_for_slot(&shared, max_in_flight).await {
                let _ = reply.send(Err(shared.closed_error()));
                break;
            }
            if let Err(reply) = register(&shared, outgoing.correlation_id, outgoing.api_key, reply)
            {
                let _ = reply.send(Err(shared.closed_error()));
                break;
            }
        } else if shared.dead.load(Ordering::SeqCst) {
            break;
        }
        trace!(broker = %shared.addr, correlation_id = outgoing.correlation_id, api_key = outgoing.api_key, "write");
        if let Err(e) = write_frame(&mut socket, outgoing.frame).await {
            shared.poison(crate::net::tls::socket_error(
                format!("writing to {}", shared.addr),
                &shared.addr,
                e,
            ));
            break;
        }
    }
    // Fail whatever is still queued behind us with the connection's cause.
    rx.close();
    while let Ok(command) = rx.try_recv() {
        match command {
            Command::Request(outgoing) => {
                if let Some(reply) = outgoing.reply {
                    let _ = reply.send(Err(shared.closed_error()));
                }
            }
            Command::Authenticate { reply, .. } => {
                let _ = reply.send(Err(shared.closed_error()));
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// One turn of the writer.
enum Step {
    Command(Command),
    Reauthenticate(SaslVersions),
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits until fewer than `max` requests are in flight. False if the connection died.
async fn wait_for_slot(shared: &Shared, max: usize) -> bool {
    loop {
        {
            let guard = sync::lock(&shared.in_flight);
            if guard.closed.is_some() {
                return false;
            }
            if guard.queue.len() < max {
                return true;
            }
        }
        // `notify_one` stores a permit when nobody waits, so a slot freed (or a poison)
        // between the check above and this wait is not missed.
        shared.slot_freed.notified().await;
    }
}
