//! Grooming of the state history: what is older than the retention goes, except each
//! monitor's latest change (see [`crate::groom_history`]), as an operations manager grooms
//! its state-change data.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthstream_store::Store;
use tokio::sync::watch;

use crate::engine_stage::groom_history;

/// Grooms the history of `store` once a `period`, keeping `retention` of it, until
/// `shutdown` turns true. A failed round is logged and tried again the next period.
pub async fn groom_periodically(
    store: Store,
    retention: Duration,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let before = now.saturating_sub(retention).as_millis();
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let s = store.clone();
        match tokio::task::spawn_blocking(move || groom_history(&s, before)).await {
            Ok(Ok(dropped)) => {
                crate::metrics::HISTORY_GROOMED.inc_by(dropped);
                tracing::info!(dropped, before, "state history groomed");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "grooming the state history failed"),
            Err(e) => tracing::warn!(error = %e, "grooming the state history stopped"),
        }
    }
}
