//! The pack topic (`healthstream.packs`: compacted, keyed by pack id, one partition).
//!
//! - [`publish`] writes a change the [`PackStore`] accepted and waits until it is durable;
//! - [`follow`] reads the topic from the beginning and keeps a [`PackSnapshot`] current in a
//!   `watch` channel: every processor holds the same packs, and sees imports, upgrades and
//!   removals while it runs, without a restart.

mod metrics;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use healthstream_bus::{Bus, BusError, ConsumerEvent, OutboundRecord};
use healthstream_contracts::records::{PackChange as RecordChange, PackRecord};
use healthstream_contracts::{Codec, Topic};
use healthstream_model::pack::Version;
use healthstream_model::store::{ChangeKind, PackChange, PackStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The packs in force, as of an offset of the pack topic.
#[derive(Debug, Clone, Default)]
pub struct PackSnapshot {
    pub store: PackStore,
    /// The next offset of the pack topic to apply (everything before it is in `store`).
    pub next_offset: i64,
}

/// The live packs: always the latest snapshot.
pub type Packs = watch::Receiver<Arc<PackSnapshot>>;

/// Packs that never change: the shipped packs, then `extra` (pack texts), each imported as
/// the pack API would import it, as a snapshot the processors read like the followed one.
/// For running a stage without the pack topic (tools, tests); an error names the pack that
/// does not import.
pub fn fixed(extra: &[String]) -> Result<Packs, String> {
    let mut store = PackStore::new();
    let mut imported = 0;
    let texts = healthstream_model::SHIPPED
        .iter()
        .map(|(path, text)| (*path, *text))
        .chain(extra.iter().map(|t| ("extra.toml", t.as_str())));
    for (path, text) in texts {
        let change = store
            .plan_import(text, path)
            .map_err(|e| format!("{path}: {e}"))?;
        store.apply(&change).map_err(|e| format!("{path}: {e}"))?;
        imported += 1;
    }
    // As if each import were one record of the pack topic. The sender goes: the snapshot
    // is read, never awaited for a change.
    let (_, rx) = watch::channel(Arc::new(PackSnapshot {
        store,
        next_offset: imported,
    }));
    Ok(rx)
}

/// The task following the pack topic.
pub type FeedTask = JoinHandle<Result<(), FeedError>>;

/// Errors of the pack feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("pack topic: {0}")]
    Bus(#[from] BusError),
    #[error("encoding a pack record: {0}")]
    Encode(String),
    #[error("the pack feed stopped")]
    Stopped,
    #[error("the pack feed did not reach offset {0} within {1:?}")]
    Timeout(i64, Duration),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The record for a change.
pub fn record(change: &PackChange, changed_by: &str) -> PackRecord {
    PackRecord {
        id: format!("{}@{}#{}", change.pack_id, change.version, change.digest),
        pack_id: change.pack_id.clone(),
        version: change.version.to_string(),
        sealed: change.sealed,
        change: match change.kind {
            ChangeKind::Import => RecordChange::Import,
            ChangeKind::Upgrade => RecordChange::Upgrade,
            ChangeKind::Remove => RecordChange::Remove,
        },
        content: change.content.clone(),
        digest: change.digest.clone(),
        changed_by: changed_by.to_string(),
        time: now_ms(),
    }
}

/// The change a record carries.
pub fn change_of(r: &PackRecord) -> Result<PackChange, String> {
    Ok(PackChange {
        pack_id: r.pack_id.clone(),
        version: Version::parse(&r.version)?,
        sealed: r.sealed,
        kind: match r.change {
            RecordChange::Import => ChangeKind::Import,
            RecordChange::Upgrade => ChangeKind::Upgrade,
            RecordChange::Remove => ChangeKind::Remove,
        },
        content: r.content.clone(),
        digest: r.digest.clone(),
    })
}

/// Publish a checked change; returns the offset it was written at.
pub async fn publish(
    bus: &dyn Bus,
    change: &PackChange,
    changed_by: &str,
) -> Result<i64, FeedError> {
    let rec = record(change, changed_by);
    let value = Codec::shared()
        .encode(&rec)
        .map_err(|e| FeedError::Encode(e.to_string()))?;
    let delivery = bus
        .producer()?
        .send(OutboundRecord {
            topic: Topic::Packs,
            partition: 0,
            key: Some(change.pack_id.as_bytes().to_vec()),
            value: Some(value),
            timestamp_ms: rec.time,
        })
        .await?;
    metrics::PUBLISHED.inc();
    Ok(delivery.offset)
}

/// Follow the pack topic from its beginning. The receiver always holds the latest snapshot;
/// the task ends when `stop` turns true or the bus fails.
pub fn follow(
    bus: Arc<dyn Bus>,
    mut stop: watch::Receiver<bool>,
) -> Result<(Packs, FeedTask), FeedError> {
    let mut consumer = bus.reader(&[(Topic::Packs, 0, 0)])?;
    let (tx, rx) = watch::channel(Arc::new(PackSnapshot::default()));
    let task = tokio::spawn(async move {
        let mut snapshot = PackSnapshot::default();
        loop {
            let event = tokio::select! {
                e = consumer.next() => e?,
                _ = stop.changed() => return Ok(()),
            };
            let ConsumerEvent::Message(m) = event else {
                continue;
            };
            snapshot.next_offset = m.offset + 1;
            match m
                .value
                .as_deref()
                .map(|v| Codec::shared().decode::<PackRecord>(v))
            {
                None => {
                    // A tombstone: the pack's key was deleted outright.
                    if let Some(key) = m.key.as_deref().map(String::from_utf8_lossy) {
                        let _ = snapshot.store.apply(&PackChange {
                            pack_id: key.to_string(),
                            version: Version(vec![0]),
                            sealed: false,
                            kind: ChangeKind::Remove,
                            content: String::new(),
                            digest: String::new(),
                        });
                    }
                }
                Some(Err(e)) => {
                    metrics::REJECTED.inc();
                    tracing::error!(offset = m.offset, error = %e, "pack record cannot be decoded; skipped");
                }
                Some(Ok(r)) => match change_of(&r)
                    .map(|c| snapshot.store.apply(&c).map_err(|e| e.to_string()))
                {
                    Ok(Ok(())) => {
                        metrics::APPLIED.inc();
                        tracing::info!(pack = %r.pack_id, version = %r.version, change = ?r.change, by = %r.changed_by, "pack change applied");
                    }
                    Ok(Err(e)) | Err(e) => {
                        metrics::REJECTED.inc();
                        tracing::error!(offset = m.offset, pack = %r.pack_id, error = %e, "pack record rejected; skipped");
                    }
                },
            }
            metrics::IN_FORCE
                .set(i64::try_from(snapshot.store.packs().count()).unwrap_or(i64::MAX));
            if tx.send(Arc::new(snapshot.clone())).is_err() {
                return Ok(());
            }
        }
    });
    Ok((rx, task))
}

/// Wait until the snapshot has applied everything before `offset`.
pub async fn wait_for(
    rx: &mut watch::Receiver<Arc<PackSnapshot>>,
    offset: i64,
    timeout: Duration,
) -> Result<Arc<PackSnapshot>, FeedError> {
    let wait = async {
        loop {
            let s = rx.borrow_and_update().clone();
            if s.next_offset >= offset {
                return Ok(s);
            }
            if rx.changed().await.is_err() {
                return Err(FeedError::Stopped);
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| FeedError::Timeout(offset, timeout))?
}

/// Wait until the snapshot has caught up with the end of the pack topic as it is now.
pub async fn catch_up(
    bus: &dyn Bus,
    rx: &mut watch::Receiver<Arc<PackSnapshot>>,
    timeout: Duration,
) -> Result<Arc<PackSnapshot>, FeedError> {
    let end = bus.end_offset(Topic::Packs, 0).await?;
    wait_for(rx, end, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_packs_hold_the_shipped_ones_and_the_extra() {
        let extra = "[pack]\nid = \"Extra\"\nversion = \"1\"\n\
                     [[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n"
            .to_string();
        let packs = fixed(&[extra]).expect("imports");
        let snapshot = packs.borrow().clone();
        let ids: Vec<String> = snapshot
            .store
            .packs()
            .map(|p| p.pack.pack.id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.contains(&"Extra".to_string()), "{ids:?}");
        assert_eq!(snapshot.next_offset, 3);
    }

    #[test]
    fn a_pack_that_does_not_import_is_named() {
        let e = fixed(&["[pack\nid = ".to_string()]).expect_err("malformed");
        assert!(e.starts_with("extra.toml: "), "{e}");
        let unknown = "[pack]\nid = \"X\"\nversion = \"1\"\n\
                       [[reference]]\npack = \"Nope\"\nversion = \"1.0\"\n"
            .to_string();
        let e = fixed(&[unknown]).expect_err("unknown reference");
        assert!(e.contains("Nope"), "{e}");
    }
}
