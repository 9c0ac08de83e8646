//! A local HTTP peer served in the background until its owner stops it.

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `true` is sent on (or the owner drops) the answer.
pub fn in_background(listener: TcpListener, router: axum::Router, what: &'static str) -> watch::Sender<bool> {
    let (shutdown, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.changed().await;
        };
        if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
            tracing::error!(%error, "{what} stopped");
        }
    });
    shutdown
}
