//! A map keyed by (instance, workflow), as the engine keeps monitor copies and rollup
//! states: a hash of instances, each with its workflows in order.
//!
//! A partition holds hundreds of thousands of copies. One ordered map of string pairs made
//! every lookup a long walk of string comparisons over memory far apart (the largest item of
//! the engine's profile at fleet size); here a lookup hashes the instance id once and then
//! searches the few workflows of that instance. What is iterated is always one instance's
//! workflows, in workflow order, so outputs stay deterministic. An instance's workflows are
//! a sorted vector, allocated to their number: an ordered map's node has room for eleven
//! values, which for an instance with two monitor copies wasted kilobytes (about half the
//! engine's memory at fleet size).
//!
//! [`Slots`] adds a handle to each value: the perf index names the copies it dispatches to by
//! handle, so a sample reaches its copies without hashing or comparing their names.

use std::sync::Arc;

use crate::{FastMap, FastSet};

/// (instance, workflow) -> `V`.
///
/// The workflow names are kept once for the whole map (a few hundred names for hundreds of
/// thousands of instances): the names an instance's search compares are the same few
/// strings for every instance, in cache, not a copy of each per instance far apart.
#[derive(Debug, Clone)]
pub struct PairMap<V> {
    by_instance: FastMap<String, Vec<(Arc<str>, V)>>,
    names: FastSet<Arc<str>>,
}

impl<V> Default for PairMap<V> {
    fn default() -> Self {
        PairMap {
            by_instance: FastMap::default(),
            names: FastSet::default(),
        }
    }
}

/// The map's one copy of a workflow name.
fn intern(names: &mut FastSet<Arc<str>>, workflow: &str) -> Arc<str> {
    match names.get(workflow) {
        Some(n) => n.clone(),
        None => {
            let n: Arc<str> = Arc::from(workflow);
            names.insert(n.clone());
            n
        }
    }
}

impl<V> PairMap<V> {
    pub fn get(&self, instance: &str, workflow: &str) -> Option<&V> {
        let w = self.by_instance.get(instance)?;
        let i = find(w, workflow).ok()?;
        Some(&w[i].1)
    }

    pub fn get_mut(&mut self, instance: &str, workflow: &str) -> Option<&mut V> {
        let w = self.by_instance.get_mut(instance)?;
        let i = find(w, workflow).ok()?;
        Some(&mut w[i].1)
    }

    pub fn contains(&self, instance: &str, workflow: &str) -> bool {
        self.get(instance, workflow).is_some()
    }

    /// How many instances have a value.
    pub fn instances(&self) -> usize {
        self.by_instance.len()
    }

    pub fn clear(&mut self) {
        self.by_instance.clear();
    }

    /// Keeps the instances `keep` says to keep, with their values.
    pub fn retain_instances(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.by_instance.retain(|instance, _| keep(instance));
    }

    /// Inserts, returning the value it replaces.
    pub fn insert(&mut self, instance: &str, workflow: &str, value: V) -> Option<V> {
        let workflows = match self.by_instance.get_mut(instance) {
            Some(w) => w,
            None => self.by_instance.entry(instance.to_string()).or_default(),
        };
        match find(workflows, workflow) {
            Ok(i) => Some(std::mem::replace(&mut workflows[i].1, value)),
            Err(i) => {
                workflows.insert(i, (intern(&mut self.names, workflow), value));
                None
            }
        }
    }

    /// Sets workflows of one instance to `values`, looking the instance up once: a
    /// workflow without a value gets one only when `worth` says so. Returns each workflow
    /// whose value changed, in the order of `values`, with the value it had (`None`: none)
    /// and its new one.
    pub fn set_each<'w>(
        &mut self,
        instance: &str,
        values: &[(&'w str, V)],
        worth: impl Fn(&V) -> bool,
    ) -> Vec<(&'w str, Option<V>, V)>
    where
        V: Clone + PartialEq,
    {
        let mut moved = Vec::new();
        let workflows = match self.by_instance.get_mut(instance) {
            Some(w) => w,
            None if !values.iter().any(|(_, v)| worth(v)) => return moved,
            None => self.by_instance.entry(instance.to_string()).or_default(),
        };
        for (workflow, value) in values {
            match find(workflows, workflow) {
                Ok(i) if workflows[i].1 == *value => {}
                Ok(i) => {
                    let old = std::mem::replace(&mut workflows[i].1, value.clone());
                    moved.push((*workflow, Some(old), value.clone()));
                }
                Err(i) if worth(value) => {
                    workflows.insert(i, (intern(&mut self.names, workflow), value.clone()));
                    moved.push((*workflow, None, value.clone()));
                }
                Err(_) => {}
            }
        }
        moved
    }

    pub fn remove(&mut self, instance: &str, workflow: &str) -> Option<V> {
        let workflows = self.by_instance.get_mut(instance)?;
        let old = find(workflows, workflow)
            .ok()
            .map(|i| workflows.remove(i).1);
        if workflows.is_empty() {
            self.by_instance.remove(instance);
        }
        old
    }

    /// The workflows of one instance, in order.
    pub fn of(&self, instance: &str) -> impl Iterator<Item = (&str, &V)> {
        self.by_instance
            .get(instance)
            .into_iter()
            .flatten()
            .map(|(w, v)| (&**w, v))
    }

    /// The keys of one instance, in order, owned (to change the map while going through).
    pub fn keys_of(&self, instance: &str) -> Vec<(String, String)> {
        self.of(instance)
            .map(|(w, _)| (instance.to_string(), w.to_string()))
            .collect()
    }
}

/// A bounded cache keyed like [`PairMap`]: values of at most twice `per_generation`
/// instances, in two generations. Inserts go to the new one; when it holds `per_generation`
/// instances it becomes the old one and the old one is dropped; a value read from the old
/// one moves to the new one. What is used again and again stays, however many other
/// instances pass through (clearing everything once full emptied a cache of a working set a
/// little larger than it over and over).
#[derive(Debug, Clone)]
pub struct RecentPairs<V> {
    new: PairMap<V>,
    old: PairMap<V>,
    per_generation: usize,
}

impl<V: Clone> RecentPairs<V> {
    pub fn new(per_generation: usize) -> RecentPairs<V> {
        RecentPairs {
            new: PairMap::default(),
            old: PairMap::default(),
            per_generation: per_generation.max(1),
        }
    }

    /// The value kept for (instance, workflow), moved to the new generation if it was in
    /// the old one.
    pub fn get(&mut self, instance: &str, workflow: &str) -> Option<V> {
        if let Some(v) = self.new.get(instance, workflow) {
            return Some(v.clone());
        }
        let v = self.old.remove(instance, workflow)?;
        self.insert(instance, workflow, v.clone());
        Some(v)
    }

    pub fn insert(&mut self, instance: &str, workflow: &str, value: V) {
        if self.new.instances() >= self.per_generation
            && !self.new.by_instance.contains_key(instance)
        {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(instance, workflow, value);
    }

    /// Forgets everything kept of an instance.
    pub fn forget(&mut self, instance: &str) {
        self.new.by_instance.remove(instance);
        self.old.by_instance.remove(instance);
    }

    pub fn clear(&mut self) {
        self.new.clear();
        self.old.clear();
    }

    /// How many instances have a value (in either generation).
    pub fn instances(&self) -> usize {
        self.new.instances() + self.old.instances()
    }
}

/// Where a workflow is (or would go) among an instance's sorted workflows.
fn find<S: std::borrow::Borrow<str>, V>(
    workflows: &[(S, V)],
    workflow: &str,
) -> Result<usize, usize> {
    workflows.binary_search_by(|(w, _)| w.borrow().cmp(workflow))
}

/// An (instance, workflow) key, shared by a value's slot and whatever names it.
pub type Key = Arc<(String, String)>;

/// Where a value of [`Slots`] lives. A handle of a value that was removed reads nothing,
/// even once its place holds another value (the generation differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    index: u32,
    generation: u32,
}

#[derive(Debug, Clone)]
struct Slot<V> {
    generation: u32,
    value: Option<(Key, V)>,
}

/// (instance, workflow) -> `V`, each value also reachable by a [`Handle`] that stays the same
/// while the value is replaced in place.
#[derive(Debug, Clone)]
pub struct Slots<V> {
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    by_key: PairMap<Handle>,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            by_key: PairMap::default(),
        }
    }
}

impl<V> Slots<V> {
    pub fn handle(&self, instance: &str, workflow: &str) -> Option<Handle> {
        self.by_key.get(instance, workflow).copied()
    }

    pub fn get(&self, instance: &str, workflow: &str) -> Option<&V> {
        self.at(self.handle(instance, workflow)?).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, instance: &str, workflow: &str) -> Option<&mut V> {
        let h = self.handle(instance, workflow)?;
        self.at_mut(h).map(|(_, v)| v)
    }

    /// The key and value a handle names, if the value is still there.
    pub fn at(&self, h: Handle) -> Option<(&Key, &V)> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_ref().map(|(k, v)| (k, v))
    }

    /// Reads the values of `handles` through `probe`, one read not waiting for another:
    /// values far apart in memory (a host's among thousands) then come into cache
    /// together, before they are used one after the other. Returns what `probe` gave,
    /// summed (so that the reads are made).
    pub fn touch(&self, handles: &[Handle], probe: impl Fn(&V) -> u64) -> u64 {
        handles
            .iter()
            .filter_map(|h| self.at(*h))
            .fold(0u64, |sum, (_, v)| sum.wrapping_add(probe(v)))
    }

    pub fn at_mut(&mut self, h: Handle) -> Option<(&Key, &mut V)> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.value.as_mut().map(|(k, v)| (&*k, v))
    }

    /// Inserts, returning the value's handle (the old one when it replaces a value) and
    /// the value it replaces.
    pub fn insert(&mut self, instance: &str, workflow: &str, value: V) -> (Handle, Option<V>) {
        if let Some(h) = self.handle(instance, workflow) {
            if let Some((_, old)) = self.at_mut(h) {
                return (h, Some(std::mem::replace(old, value)));
            }
        }
        let key = Arc::new((instance.to_string(), workflow.to_string()));
        let h = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.value = Some((key, value));
                Handle {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 copies");
                self.slots.push(Slot {
                    generation: 0,
                    value: Some((key, value)),
                });
                Handle {
                    index,
                    generation: 0,
                }
            }
        };
        self.by_key.insert(instance, workflow, h);
        (h, None)
    }

    pub fn remove(&mut self, instance: &str, workflow: &str) -> Option<V> {
        let h = self.by_key.remove(instance, workflow)?;
        let slot = self.slots.get_mut(h.index as usize)?;
        let (_, v) = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.index);
        Some(v)
    }

    /// The workflows of one instance, in order.
    pub fn of(&self, instance: &str) -> impl Iterator<Item = (&str, &V)> {
        self.by_key
            .of(instance)
            .filter_map(|(w, h)| self.at(*h).map(|(_, v)| (w, v)))
    }

    /// The keys of one instance, in order, owned (to change the map while going through).
    pub fn keys_of(&self, instance: &str) -> Vec<(String, String)> {
        self.by_key.keys_of(instance)
    }

    /// The handles of one instance's values, in workflow order.
    pub fn handles_of<'a>(&'a self, instance: &str) -> impl Iterator<Item = Handle> + 'a {
        self.by_key.of(instance).map(|(_, h)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Workflow names of a few lengths, up to twelve an instance.
    fn workflow(w: u8) -> String {
        format!("w{w}{}", "-".repeat(usize::from(w % 3)))
    }

    /// A workflow's name is kept once however many instances have it, through inserts and
    /// sets alike.
    #[test]
    fn workflow_names_are_kept_once() {
        let mut m = PairMap::default();
        m.insert("i1", "w", 1);
        m.insert("i2", "w", 2);
        m.set_each("i3", &[("w", 3), ("v", 0)], |v| *v > 0);
        let name = |i: &str| m.by_instance[i][0].0.clone();
        assert!(Arc::ptr_eq(&name("i1"), &name("i2")));
        assert!(Arc::ptr_eq(&name("i1"), &name("i3")));
        assert_eq!(m.names.len(), 1, "a value not worth setting keeps no name");
        assert_eq!(m.of("i3").collect::<Vec<_>>(), [("w", &3)]);
    }

    /// The cache keeps at most two generations, keeps what is used while others pass
    /// through, and forgets an instance in both generations.
    #[test]
    fn recent_pairs_keep_what_is_used() {
        let mut c = RecentPairs::new(4);
        c.insert("hot", "w", 0u32);
        for i in 0..50u32 {
            c.insert(&format!("i{i}"), "w", i);
            assert!(c.instances() <= 8, "{} instances kept", c.instances());
            if i % 3 == 2 {
                assert_eq!(c.get("hot", "w"), Some(0), "lost after i{i}");
            }
        }
        assert_eq!(c.get("i0", "w"), None, "long unused: dropped");
        assert_eq!(c.get("i49", "w"), Some(49));
        // In the old generation, then forgotten there.
        for i in 50..54u32 {
            c.insert(&format!("i{i}"), "w", i);
        }
        c.forget("i49");
        assert_eq!(c.get("i49", "w"), None);
        c.forget("i53");
        assert_eq!(c.get("i53", "w"), None);
        assert_eq!(c.get("i52", "w"), Some(52));
        c.clear();
        assert_eq!((c.instances(), c.get("i52", "w")), (0, None));
    }

    proptest! {
        /// Any sequence of inserts and removes, then of sets of several workflows of one
        /// instance, leaves what an ordered map of pairs would.
        #[test]
        fn same_as_an_ordered_map_of_pairs(
            ops in prop::collection::vec((0u8..4, 0u8..12, any::<bool>(), any::<u16>()), 0..120),
            sets in prop::collection::vec(
                (0u8..5, prop::collection::vec((0u8..12, 0u16..6), 0..6)),
                0..10,
            ),
        ) {
            let mut m = PairMap::default();
            let mut model: BTreeMap<(String, String), u16> = BTreeMap::new();
            for (i, w, insert, v) in ops {
                let (i, w) = (format!("i{i}"), workflow(w));
                if insert {
                    prop_assert_eq!(m.insert(&i, &w, v), model.insert((i.clone(), w.clone()), v));
                } else {
                    prop_assert_eq!(m.remove(&i, &w), model.remove(&(i.clone(), w.clone())));
                }
            }
            // Several workflows of one instance set at once (odd values are not worth a new
            // entry): what changed, and the map, as the model says.
            let names: Vec<String> = (0..12).map(workflow).collect();
            for (i, values) in sets {
                let i = format!("i{i}");
                let values: Vec<(&str, u16)> =
                    values.iter().map(|(w, v)| (names[usize::from(*w)].as_str(), *v)).collect();
                let mut want = Vec::new();
                for (w, v) in &values {
                    let key = (i.clone(), w.to_string());
                    match model.get(&key).copied() {
                        Some(old) if old == *v => {}
                        Some(old) => {
                            model.insert(key, *v);
                            want.push((*w, Some(old), *v));
                        }
                        None if v % 2 == 0 => {
                            model.insert(key, *v);
                            want.push((*w, None, *v));
                        }
                        None => {}
                    }
                }
                prop_assert_eq!(m.set_each(&i, &values, |v| v % 2 == 0), want);
            }
            for i in 0..4 {
                let i = format!("i{i}");
                let got: Vec<(String, u16)> = m.of(&i).map(|(w, v)| (w.to_string(), *v)).collect();
                let want: Vec<(String, u16)> = model
                    .iter()
                    .filter(|((mi, _), _)| *mi == i)
                    .map(|((_, w), v)| (w.clone(), *v))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn behaves_as_a_map_of_pairs() {
        let mut m = PairMap::default();
        assert!(m.of("i1").next().is_none());
        assert_eq!(m.insert("i1", "b", 1), None);
        assert_eq!(m.insert("i1", "a", 2), None);
        assert_eq!(m.insert("i2", "a", 3), None);
        assert_eq!(m.insert("i1", "b", 4), Some(1));
        assert_eq!(m.get("i1", "b"), Some(&4));
        assert!(m.contains("i2", "a") && !m.contains("i2", "b") && !m.contains("i3", "a"));
        *m.get_mut("i2", "a").expect("there") += 10;
        assert_eq!(m.get("i2", "a"), Some(&13));
        let of: Vec<(&str, &i32)> = m.of("i1").collect();
        assert_eq!(of.len(), 2);
        assert_eq!((of[0].0, of[1].0), ("a", "b"), "in order");
        assert_eq!(
            m.keys_of("i1"),
            vec![("i1".into(), "a".into()), ("i1".into(), "b".into())]
        );
        assert_eq!(m.remove("i1", "a"), Some(2));
        assert_eq!(m.remove("i1", "a"), None);
        assert_eq!(m.remove("i1", "b"), Some(4));
        assert_eq!(
            m.of("i1").count(),
            0,
            "an instance without workflows is gone"
        );
        assert_eq!(m.get("i2", "a"), Some(&13), "the other instance stays");
        assert_eq!(m.remove("nobody", "a"), None);
    }

    proptest! {
        /// Slots behave as a map of pairs, and every handle handed out reads its own value
        /// while it is there and nothing once it was removed, even after its place is reused
        /// (touched too).
        #[test]
        fn slots_are_a_map_of_pairs_with_handles(
            ops in prop::collection::vec((0u8..4, 0u8..12, any::<bool>(), any::<u16>()), 0..120)
        ) {
            let mut m = Slots::default();
            let mut model: BTreeMap<(String, String), u16> = BTreeMap::new();
            let mut handed: Vec<(Handle, (String, String))> = Vec::new();
            for (i, w, insert, v) in ops {
                let (i, w) = (format!("i{i}"), workflow(w));
                if insert {
                    let (h, old) = m.insert(&i, &w, v);
                    prop_assert_eq!(old, model.insert((i.clone(), w.clone()), v));
                    handed.push((h, (i, w)));
                } else {
                    prop_assert_eq!(m.remove(&i, &w), model.remove(&(i.clone(), w.clone())));
                }
                for (h, key) in &handed {
                    let live = m.handle(&key.0, &key.1) == Some(*h);
                    match m.at(*h) {
                        Some((k, v)) => {
                            prop_assert!(live);
                            prop_assert_eq!(&**k, key);
                            prop_assert_eq!(Some(v), model.get(key));
                        }
                        None => prop_assert!(!live),
                    }
                }
                // Touching the handed handles reads the live values only.
                let handles: Vec<Handle> = handed.iter().map(|(h, _)| *h).collect();
                let live: u64 = handed
                    .iter()
                    .filter(|(h, key)| m.handle(&key.0, &key.1) == Some(*h))
                    .map(|(_, key)| u64::from(model[key]))
                    .sum();
                prop_assert_eq!(m.touch(&handles, |v| u64::from(*v)), live);
            }
            for i in 0..4 {
                let i = format!("i{i}");
                let got: Vec<(String, u16)> = m.of(&i).map(|(w, v)| (w.to_string(), *v)).collect();
                let want: Vec<(String, u16)> = model
                    .iter()
                    .filter(|((mi, _), _)| *mi == i)
                    .map(|((_, w), v)| (w.clone(), *v))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn a_removed_value_s_handle_reads_nothing_after_its_place_is_reused() {
        let mut m = Slots::default();
        let (a, _) = m.insert("i1", "a", 1);
        assert_eq!(m.insert("i1", "a", 2), (a, Some(1)), "replaced in place");
        assert_eq!(m.remove("i1", "a"), Some(2));
        assert!(m.at(a).is_none());
        let (b, _) = m.insert("i2", "b", 3);
        assert!(m.at(a).is_none(), "same place, another generation");
        assert_eq!(m.at(b).map(|(k, v)| (k.1.as_str(), *v)), Some(("b", 3)));
        *m.at_mut(b).expect("there").1 += 1;
        assert_eq!(m.get("i2", "b"), Some(&4));
        assert!(m.at_mut(a).is_none());
    }
}
