//! State kept in memory per root host and written at checkpoints (see the stage runner):
//! which hosts changed since the last checkpoint, and, while a checkpoint is sealed, which
//! of them are still to be written as of the seal.
//!
//! A host's value is written once per checkpoint however many inputs changed it. While a
//! checkpoint is sealed, its hosts are written a few at a time between groups of records;
//! an input about to change a host not yet written has it written first, as it was at the
//! seal (copy on write), so that the checkpoint holds exactly the state its offsets reflect.

use healthstream_store::{StoreBatch, StoreError};

use crate::FastSet;

/// A write of a host's value: column family, key, value (`None`: delete).
pub(crate) type Write = (&'static str, Vec<u8>, Option<Vec<u8>>);

#[derive(Default)]
pub(crate) struct SealedHosts {
    /// Hosts changed since the last seal.
    changed: FastSet<String>,
    /// Hosts of the sealed checkpoint not yet written.
    sealing: FastSet<String>,
    /// The sealed hosts in the order they are written (those taken since are skipped).
    queue: Vec<String>,
    /// Values of the sealed checkpoint taken before their host changed again.
    taken: Vec<Write>,
    /// How many times the changed hosts were taken (sealed, written or dropped).
    taken_changed: u64,
}

impl SealedHosts {
    /// The generation of the changed hosts, from 1: it moves on whenever they are taken
    /// (a seal, a write, a clear). Whoever marks a host can remember the generation it
    /// marked it in and not mark it again in the same one (a set lookup of a name saved).
    pub(crate) fn generation(&self) -> u64 {
        self.taken_changed + 1
    }

    /// `host`'s value changed (after [`SealedHosts::take_before_change`]).
    pub(crate) fn mark(&mut self, host: &str) {
        if !self.changed.contains(host) {
            self.changed.insert(host.to_string());
        }
    }

    /// Marks every host of `hosts`.
    pub(crate) fn mark_all(&mut self, hosts: impl IntoIterator<Item = String>) {
        self.changed.extend(hosts);
    }

    /// Whether `host` is part of the sealed checkpoint and not written yet.
    pub(crate) fn is_sealing(&self, host: &str) -> bool {
        self.sealing.contains(host)
    }

    /// `host` is about to change: if the sealed checkpoint still needs its value, `value`
    /// gives it (as it is now, which is as of the seal) and it is kept for the checkpoint.
    pub(crate) fn take_before_change(
        &mut self,
        host: &str,
        value: impl FnOnce(&str) -> Option<Write>,
    ) {
        // (Most inputs come while no checkpoint is sealed.)
        if !self.sealing.is_empty() && self.sealing.remove(host) {
            self.taken.extend(value(host));
        }
    }

    /// A checkpoint is sealed: the hosts changed so far are written as of now.
    pub(crate) fn seal(&mut self) {
        debug_assert!(
            self.sealing.is_empty(),
            "a seal before the last was written"
        );
        self.queue.clear();
        self.queue.extend(self.changed.iter().cloned());
        std::mem::swap(&mut self.sealing, &mut self.changed);
        self.taken_changed += 1;
    }

    /// Writes what was taken into `batch`, then the values of up to `budget` more sealed
    /// hosts (from `value`); true when the seal is written whole.
    pub(crate) fn step(
        &mut self,
        batch: &mut StoreBatch,
        budget: usize,
        mut value: impl FnMut(&str) -> Option<Write>,
    ) -> Result<bool, StoreError> {
        for (cf, key, value) in self.taken.drain(..) {
            batch.set(cf, key, value)?;
        }
        let mut written = 0;
        while written < budget {
            let Some(host) = self.queue.pop() else {
                break;
            };
            // A host taken since the seal was written with what was taken.
            if self.sealing.remove(&host) {
                if let Some((cf, key, value)) = value(&host) {
                    batch.set(cf, key, value)?;
                }
                written += 1;
            }
        }
        Ok(self.sealing.is_empty())
    }

    /// Forgets everything (partitions moved: the runner stored it all first).
    pub(crate) fn clear(&mut self) {
        debug_assert!(
            self.sealing.is_empty() && self.taken.is_empty(),
            "a sealed checkpoint dropped unwritten"
        );
        self.changed.clear();
        self.taken_changed += 1;
        self.sealing.clear();
        self.queue.clear();
        self.taken.clear();
    }

    /// Puts every value kept in memory into `batch`, to be read from it (the kept state is
    /// read again from the store): the sealed hosts not written yet are taken first (the
    /// checkpoint keeps its copies), then the taken values and the changed hosts' values as
    /// they are now go to the batch, and the changed hosts are no longer marked.
    pub(crate) fn write_readable(
        &mut self,
        batch: &mut StoreBatch,
        mut value: impl FnMut(&str) -> Option<Write>,
    ) -> Result<(), StoreError> {
        self.take_all(&mut value);
        for (cf, key, value) in &self.taken {
            batch.set(cf, key.clone(), value.clone())?;
        }
        self.taken_changed += 1;
        for host in std::mem::take(&mut self.changed) {
            if let Some((cf, key, value)) = value(&host) {
                batch.set(cf, key, value)?;
            }
        }
        Ok(())
    }

    /// Whether a sealed checkpoint still has hosts to write.
    pub(crate) fn is_sealing_any(&self) -> bool {
        !self.sealing.is_empty()
    }

    /// Takes the value of every sealed host not written yet (an input may change any host).
    pub(crate) fn take_all(&mut self, mut value: impl FnMut(&str) -> Option<Write>) {
        for host in self.sealing.drain() {
            self.taken.extend(value(&host));
        }
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_store::Store;

    fn write(host: &str, v: &str) -> Option<Write> {
        Some(("cf", host.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
    }

    #[test]
    fn a_sealed_host_is_written_as_it_was_at_the_seal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["cf"]).expect("store");
        let mut hosts = SealedHosts::default();
        hosts.mark("a");
        hosts.mark("b");
        hosts.mark("c");
        hosts.seal();
        // "b" is about to change: its value as of the seal is taken first.
        hosts.take_before_change("b", |h| write(h, "b@seal"));
        hosts.mark("b");
        // A host not sealed gives nothing.
        hosts.take_before_change("d", |h| write(h, "never"));
        let mut batch = store.batch();
        assert!(!hosts
            .step(&mut batch, 1, |h| write(h, &format!("{h}@step")))
            .expect("step"));
        assert!(hosts
            .step(&mut batch, 1, |h| write(h, &format!("{h}@step")))
            .expect("step"));
        store.write(batch).expect("write");
        let get = |k: &str| {
            store
                .get("cf", k.as_bytes())
                .expect("get")
                .map(|v| String::from_utf8(v).expect("utf-8"))
        };
        assert_eq!(get("a").as_deref(), Some("a@step"));
        assert_eq!(get("b").as_deref(), Some("b@seal"));
        assert_eq!(get("c").as_deref(), Some("c@step"));
        assert_eq!(get("d"), None);
        // The change after the seal belongs to the next checkpoint.
        hosts.seal();
        let mut batch = store.batch();
        assert!(hosts
            .step(&mut batch, 10, |h| write(h, &format!("{h}@next")))
            .expect("step"));
        assert_eq!(batch.len(), 1, "only b changed since");
    }

    /// The generation moves on exactly when the changed hosts are taken: sealed, written
    /// to be read back, or dropped; marking, taking before a change and writing a seal's
    /// steps leave it.
    #[test]
    fn the_generation_moves_on_when_the_changed_hosts_are_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &["cf"]).expect("store");
        let mut batch = store.batch();
        let mut hosts = SealedHosts::default();
        assert_eq!(hosts.generation(), 1);
        hosts.mark("a");
        hosts.mark_all(["b".to_string()]);
        assert_eq!(hosts.generation(), 1);
        hosts.seal();
        assert_eq!(hosts.generation(), 2);
        hosts.take_before_change("a", |h| write(h, "a@seal"));
        hosts.step(&mut batch, 10, |h| write(h, "v")).expect("step");
        hosts.mark("a");
        assert_eq!(hosts.generation(), 2);
        hosts
            .write_readable(&mut batch, |h| write(h, "v"))
            .expect("write");
        assert_eq!(hosts.generation(), 3);
        hosts.clear();
        assert_eq!(hosts.generation(), 4);
    }
}
