//! Grooming: the state history older than the retention goes, except each monitor's latest
//! change (see [`crate::groom_history`]), and so do alerts closed and commands finished
//! (or never answered) before it, as an operations manager grooms its state-change and
//! resolved-alert data.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthstream_store::Store;
use tokio::sync::watch;

use crate::engine_stage::{groom_alerts, groom_commands, groom_history};

/// Grooms `store` a minute after the start and then once a `period`, keeping `retention`
/// of it, until `shutdown` turns true. A failed round is logged and tried again the next
/// period.
pub async fn groom_periodically(
    store: Store,
    retention: Duration,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    // The first round a minute after the start (a process restarted more often than once a
    // period still grooms), then once a period.
    let mut wait = period.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        wait = period;
        if *shutdown.borrow() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let before = now.saturating_sub(retention).as_millis();
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let s = store.clone();
        let groomed = tokio::task::spawn_blocking(move || {
            Ok::<_, healthstream_store::StoreError>([
                ("history", groom_history(&s, before)?),
                ("alerts", groom_alerts(&s, before)?),
                ("commands", groom_commands(&s, before)?),
            ])
        })
        .await;
        match groomed {
            Ok(Ok(counts)) => {
                for (kind, dropped) in counts {
                    crate::metrics::GROOMED
                        .with_label_values(&[kind])
                        .inc_by(dropped);
                }
                tracing::info!(
                    ?counts,
                    before,
                    "state history, alerts and commands groomed"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "grooming failed"),
            Err(e) => tracing::warn!(error = %e, "grooming stopped"),
        }
    }
}
