//! Background tasks that are watched: if one panics (a bug, never an input: library
//! code does not panic on input), whoever waits on it gets an error instead of hanging
//! (a `recv` with no fetcher behind it, a delivery with no sender).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tracing::error;

/// Spawns `task`; if it panics, `on_panic` runs with the panic's message. A task that is
/// aborted (its handle's `abort`) or returns runs nothing.
pub(crate) fn spawn_watched<F>(
    name: &'static str,
    task: F,
    on_panic: impl FnOnce(String) + Send + 'static,
) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
            let message = panic_message(&*panic);
            error!(task = name, panic = %message, "background task panicked");
            on_panic(format!("the {name} task stopped unexpectedly: {message}"));
        }
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_reports_instead_of_vanishing() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = spawn_watched("fetcher", async { panic!("boom") }, move |m| {
            let _ = tx.send(m);
        });
        handle.await.unwrap();
        let message = rx.await.unwrap();
        assert!(
            message.contains("fetcher") && message.contains("boom"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_or_is_aborted_reports_nothing() {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<String>();
        spawn_watched("sender", async {}, move |m| {
            let _ = tx.send(m);
        })
        .await
        .unwrap();
        assert!(rx.try_recv().is_err());
    }
}
