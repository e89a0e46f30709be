//! The kept states of a root host's unit monitors as one stored value, rewritten whenever
//! one of them changes (a perf batch changes many monitors of one host: one write instead
//! of one per monitor).
//!
//! Format (version 2): the version byte; the monitors' ids, each once (a count, then the
//! ids); the count of instances, then per instance its id and the count of its monitors,
//! and per monitor the index of its id, its health (one byte), its memory (a tag byte and
//! the tag's fields) and the readings held while in maintenance (a count, then a tag byte
//! and the reading each). Counts, lengths and indexes are variable-length integers.
//!
//! Version 1, still read, named each monitor in full and had counts and lengths in four
//! bytes: twice the size.
//!
//! The states of a root host's rollup monitors are another value of the host, written when
//! one of them changes (most samples change a unit monitor's memory, few change a state):
//! the version byte; the monitors' ids, each once; the count of instances, then per
//! instance its id, the count of its rollup monitors, and per rollup monitor the index of
//! its id and its health (one byte). Before, each was kept under a key of its own.

use healthstream_engine::detect::{Memory, ServiceReading};
use healthstream_engine::engine::{Held, KeptRollup, KeptUnit, Saved};
use healthstream_model::pack::Health;

use crate::wire::{at_byte, byte_of, index_in, put_var, put_vstr, Cursor};

const VERSION: u8 = 2;
/// Monitor ids in full, counts in four bytes.
const VERSION_1: u8 = 1;

/// The version of the rollup states' value.
const ROLLUPS_VERSION: u8 = 1;

/// Health states by their byte.
const HEALTHS: [Health; 4] = [
    Health::Uninitialized,
    Health::Healthy,
    Health::Warning,
    Health::Critical,
];

/// The byte of a health state.
pub(crate) fn health_byte(h: Health) -> u8 {
    byte_of(&HEALTHS, &h)
}

/// The health state of a byte, if it is one.
pub(crate) fn health_at(b: u8) -> Option<Health> {
    HEALTHS.get(usize::from(b)).copied()
}

/// Service readings (not read yet, off, on) by their byte.
const READINGS: [Option<bool>; 3] = [None, Some(false), Some(true)];

fn put_memory(out: &mut Vec<u8>, m: &Memory) {
    match m {
        Memory::None => out.push(0),
        Memory::Window(w) => {
            out.push(1);
            put_var(out, w.len() as u64);
            for v in w {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Memory::Run { beyond, length } => {
            out.push(2);
            out.push(u8::from(*beyond));
            put_var(out, u64::from(*length));
        }
        Memory::LastBad(t) => {
            out.push(3);
            out.extend_from_slice(&t.to_be_bytes());
        }
        Memory::Heartbeat { last, interval } => {
            out.push(4);
            out.extend_from_slice(&last.to_be_bytes());
            out.extend_from_slice(&interval.to_be_bytes());
        }
        Memory::Service { running, automatic } => {
            out.push(5);
            out.push(byte_of(&READINGS, running));
            out.push(byte_of(&READINGS, automatic));
        }
    }
}

fn put_held(out: &mut Vec<u8>, h: &Held) {
    match h {
        Held::Value(v) => {
            out.push(0);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Held::Service(ServiceReading::Running(on)) => out.extend([1, u8::from(*on)]),
        Held::Service(ServiceReading::Automatic(on)) => out.extend([2, u8::from(*on)]),
    }
}

/// Writes `version` and the ids of `monitors`, each once; returns the place in that table
/// of each of `monitors`, in order.
fn put_head<'a>(
    out: &mut Vec<u8>,
    version: u8,
    monitors: impl Iterator<Item = &'a str>,
) -> Vec<usize> {
    let mut table: Vec<&str> = Vec::new();
    let indexes = monitors.map(|m| index_in(&mut table, m)).collect();
    out.push(version);
    put_var(out, table.len() as u64);
    for m in &table {
        put_vstr(out, m);
    }
    indexes
}

/// `units` in runs of one instance each (they are listed by instance).
fn by_instance<'u, 'a>(units: &'u [KeptUnit<'a>]) -> impl Iterator<Item = &'u [KeptUnit<'a>]> {
    units.chunk_by(|a, b| a.instance == b.instance)
}

/// The value of a root host's unit states (`units` by instance, as
/// [`healthstream_engine::engine::Engine::host_units`] lists them).
pub(crate) fn encode_host_units(units: &[KeptUnit<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + units.len() * 48);
    let indexes = put_head(&mut out, VERSION, units.iter().map(|u| u.monitor));
    put_var(&mut out, by_instance(units).count() as u64);
    let mut indexes = indexes.into_iter();
    for run in by_instance(units) {
        put_vstr(&mut out, run[0].instance);
        put_var(&mut out, run.len() as u64);
        for (u, index) in run.iter().zip(indexes.by_ref()) {
            put_var(&mut out, index as u64);
            out.push(byte_of(&HEALTHS, &u.health));
            put_memory(&mut out, u.memory);
            put_var(&mut out, u.held.len() as u64);
            for h in u.held {
                put_held(&mut out, h);
            }
        }
    }
    out
}

/// The value of a root host's rollup states (`rollups` by instance, as
/// [`healthstream_engine::engine::Engine::host_rollups`] lists them).
pub(crate) fn encode_host_rollups(rollups: &[KeptRollup<'_>]) -> Vec<u8> {
    let runs: Vec<&[KeptRollup<'_>]> = rollups.chunk_by(|a, b| a.instance == b.instance).collect();
    let mut out = Vec::with_capacity(200 + runs.len() * 40 + rollups.len() * 2);
    let indexes = put_head(&mut out, ROLLUPS_VERSION, rollups.iter().map(|r| r.monitor));
    put_var(&mut out, runs.len() as u64);
    let mut indexes = indexes.into_iter();
    for run in runs {
        put_vstr(&mut out, run[0].instance);
        put_var(&mut out, run.len() as u64);
        for (r, index) in run.iter().zip(indexes.by_ref()) {
            put_var(&mut out, index as u64);
            out.push(byte_of(&HEALTHS, &r.health));
        }
    }
    out
}

/// What [`encode_host_rollups`] wrote: (instance, monitor, health).
pub(crate) fn decode_host_rollups(v: &[u8]) -> Result<Vec<(String, String, Health)>, String> {
    let mut c = Cursor::new(v, "rollup monitor states");
    match c.u8()? {
        ROLLUPS_VERSION => {}
        other => {
            return Err(format!(
                "rollup monitor states of version {other} (known: {ROLLUPS_VERSION})"
            ))
        }
    }
    let n = c.var_count(1)?;
    let mut monitors = Vec::with_capacity(n);
    for _ in 0..n {
        monitors.push(c.vstring()?);
    }
    let mut out = Vec::new();
    // An instance is at least its id's length and its count; a rollup, its index and
    // health.
    for _ in 0..c.var_count(2)? {
        let instance = c.vstring()?;
        for _ in 0..c.var_count(2)? {
            let monitor = c.index(&monitors, "monitor")?.clone();
            let health = at_byte(&mut c, &HEALTHS, "a health state")?;
            out.push((instance.clone(), monitor, health));
        }
    }
    if !c.done() {
        return Err(c.error("more than its instances"));
    }
    Ok(out)
}

fn bool_at(c: &mut Cursor<'_>) -> Result<bool, String> {
    at_byte(c, &[false, true], "a flag")
}

/// Counts and lengths in four bytes (version 1) or variable-length (version 2).
#[derive(Clone, Copy)]
enum Counts {
    Fixed,
    Variable,
}

impl Counts {
    fn count(self, c: &mut Cursor<'_>, min_size: usize) -> Result<usize, String> {
        match self {
            Counts::Fixed => c.count(min_size),
            Counts::Variable => c.var_count(min_size),
        }
    }

    fn string(self, c: &mut Cursor<'_>) -> Result<String, String> {
        match self {
            Counts::Fixed => c.string(),
            Counts::Variable => c.vstring(),
        }
    }
}

fn memory_at(c: &mut Cursor<'_>, counts: Counts) -> Result<Memory, String> {
    Ok(match c.u8()? {
        0 => Memory::None,
        1 => {
            let n = counts.count(c, 8)?;
            let mut w = std::collections::VecDeque::with_capacity(n);
            for _ in 0..n {
                w.push_back(c.f64()?);
            }
            Memory::Window(w)
        }
        2 => Memory::Run {
            beyond: bool_at(c)?,
            length: match counts {
                Counts::Fixed => c.u32()?,
                Counts::Variable => {
                    let at = c.position();
                    u32::try_from(c.var()?)
                        .map_err(|_| c.error_at(at, "a run longer than 2^32 samples"))?
                }
            },
        },
        3 => Memory::LastBad(c.i64()?),
        4 => Memory::Heartbeat {
            last: c.i64()?,
            interval: c.i64()?,
        },
        5 => Memory::Service {
            running: at_byte(c, &READINGS, "a service reading")?,
            automatic: at_byte(c, &READINGS, "a service reading")?,
        },
        t => return Err(c.error(format!("{t} is not a kind of monitor memory"))),
    })
}

fn held_at(c: &mut Cursor<'_>) -> Result<Held, String> {
    Ok(match c.u8()? {
        0 => Held::Value(c.f64()?),
        1 => Held::Service(ServiceReading::Running(bool_at(c)?)),
        2 => Held::Service(ServiceReading::Automatic(bool_at(c)?)),
        t => return Err(c.error(format!("{t} is not a kind of held reading"))),
    })
}

/// What [`encode_host_units`] wrote (or version 1 before it): (instance, monitor, what to
/// restore).
pub(crate) fn decode_host_units(v: &[u8]) -> Result<Vec<(String, String, Saved)>, String> {
    let mut c = Cursor::new(v, "unit monitor states");
    let (counts, monitors) = match c.u8()? {
        VERSION => {
            let n = c.var_count(1)?;
            let mut monitors = Vec::with_capacity(n);
            for _ in 0..n {
                monitors.push(c.vstring()?);
            }
            (Counts::Variable, Some(monitors))
        }
        VERSION_1 => (Counts::Fixed, None),
        other => {
            return Err(format!(
                "unit monitor states of version {other} (known: {VERSION_1}, {VERSION})"
            ))
        }
    };
    let mut out = Vec::new();
    // An instance is at least its id's length and its count of monitors.
    for _ in 0..counts.count(&mut c, 2)? {
        let instance = counts.string(&mut c)?;
        // A monitor is at least its id (or index), health, memory tag and held count.
        for _ in 0..counts.count(&mut c, 4)? {
            let monitor = match &monitors {
                None => c.string()?,
                Some(table) => c.index(table, "monitor")?.clone(),
            };
            let health = at_byte(&mut c, &HEALTHS, "a health state")?;
            let memory = memory_at(&mut c, counts)?;
            let mut held = Vec::new();
            for _ in 0..counts.count(&mut c, 2)? {
                held.push(held_at(&mut c)?);
            }
            let saved = Saved::Unit {
                health,
                memory,
                held,
            };
            out.push((instance.clone(), monitor, saved));
        }
    }
    if !c.done() {
        return Err(c.error("more than its instances"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{assert_refused_at, put_str};

    /// Version 1, as an earlier version wrote it (kept to check that it is still read).
    fn encode_v1(units: &[KeptUnit<'_>]) -> Vec<u8> {
        fn memory(out: &mut Vec<u8>, m: &Memory) {
            match m {
                Memory::Window(w) => {
                    out.push(1);
                    out.extend_from_slice(&(w.len() as u32).to_be_bytes());
                    for v in w {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
                Memory::Run { beyond, length } => {
                    out.extend([2, u8::from(*beyond)]);
                    out.extend_from_slice(&length.to_be_bytes());
                }
                other => put_memory(out, other),
            }
        }
        let mut out = vec![VERSION_1];
        out.extend_from_slice(&(by_instance(units).count() as u32).to_be_bytes());
        for run in by_instance(units) {
            put_str(&mut out, run[0].instance);
            out.extend_from_slice(&(run.len() as u32).to_be_bytes());
            for u in run {
                put_str(&mut out, u.monitor);
                out.push(byte_of(&HEALTHS, &u.health));
                memory(&mut out, u.memory);
                out.extend_from_slice(&(u.held.len() as u32).to_be_bytes());
                for h in u.held {
                    put_held(&mut out, h);
                }
            }
        }
        out
    }

    fn units<'a>(memories: &'a [Memory], held: &'a [Held]) -> Vec<KeptUnit<'a>> {
        memories
            .iter()
            .enumerate()
            .map(|(i, m)| KeptUnit {
                instance: if i < 2 { "fs-1" } else { "web" },
                monitor: ["Fill", "Free", "Cpu", "Sshd", "Beat", "Timer"][i % 6],
                health: [
                    Health::Healthy,
                    Health::Critical,
                    Health::Uninitialized,
                    Health::Warning,
                ][i % 4],
                memory: m,
                held: if i == 3 { held } else { &[] },
            })
            .collect()
    }

    fn every_memory() -> Vec<Memory> {
        vec![
            Memory::Window([50.0, 48.5, -1.0, f64::MAX].into()),
            Memory::None,
            Memory::Run {
                beyond: true,
                length: 7,
            },
            Memory::Service {
                running: Some(false),
                automatic: None,
            },
            Memory::Heartbeat {
                last: 1_700_000_000_000,
                interval: 60_000,
            },
            Memory::LastBad(i64::MIN),
        ]
    }

    /// The states read, as the engine lists them.
    fn units_of(read: &[(String, String, Saved)]) -> Vec<KeptUnit<'_>> {
        read.iter()
            .map(|(instance, monitor, saved)| match saved {
                Saved::Unit {
                    health,
                    memory,
                    held,
                } => KeptUnit {
                    instance,
                    monitor,
                    health: *health,
                    memory,
                    held,
                },
                other => panic!("a unit state reads as {other:?}"),
            })
            .collect()
    }

    /// What decoding `units` must give back.
    fn expected(units: &[KeptUnit<'_>]) -> Vec<(String, String, Saved)> {
        units
            .iter()
            .map(|u| (u.instance.into(), u.monitor.into(), u.to_saved()))
            .collect()
    }

    const HELD: [Held; 3] = [
        Held::Value(-3.5),
        Held::Service(ServiceReading::Running(true)),
        Held::Service(ServiceReading::Automatic(false)),
    ];

    #[test]
    fn every_kind_of_state_is_read_back_as_written() {
        let memories = every_memory();
        let units = units(&memories, &HELD);
        let bytes = encode_host_units(&units);
        assert_eq!(decode_host_units(&bytes).expect("decode"), expected(&units));
        // Each instance's id once; no names of fields or states.
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("fs-1").count(), 1, "{text}");
        assert!(
            !text.contains("ealthy") && !text.contains("Window"),
            "{text}"
        );
        assert_eq!(decode_host_units(&encode_host_units(&[])), Ok(vec![]));
    }

    const ENTITY: &str = "System.Health.EntityState";

    /// Rollups of "fs-1" (two), "host" and "web".
    fn rollups() -> Vec<KeptRollup<'static>> {
        [
            ("fs-1", ENTITY, Health::Critical),
            ("fs-1", "System.Health.AvailabilityState", Health::Healthy),
            ("host", ENTITY, Health::Warning),
            ("web", ENTITY, Health::Uninitialized),
        ]
        .map(|(instance, monitor, health)| KeptRollup {
            instance,
            monitor,
            health,
        })
        .to_vec()
    }

    #[test]
    fn rollup_states_are_read_back_as_written() {
        let rollups = rollups();
        let bytes = encode_host_rollups(&rollups);
        let want: Vec<(String, String, Health)> = rollups
            .iter()
            .map(|r| (r.instance.into(), r.monitor.into(), r.health))
            .collect();
        assert_eq!(decode_host_rollups(&bytes).expect("decode"), want);
        // Each instance and each monitor once; a rollup is its index and its health.
        let text = String::from_utf8_lossy(&bytes);
        for once in ["fs-1", "host", "web", ENTITY] {
            assert_eq!(text.matches(once).count(), 1, "{once}: {text}");
        }
        let alone = encode_host_rollups(&rollups[2..3]);
        assert_eq!(alone.len(), 1 + 1 + 1 + ENTITY.len() + 1 + 1 + 4 + 1 + 2);
        assert_eq!(decode_host_rollups(&encode_host_rollups(&[])), Ok(vec![]));
    }

    #[test]
    fn rollup_states_that_do_not_read_say_what_and_where() {
        let bytes = encode_host_rollups(&rollups());
        let err = |b: &[u8]| decode_host_rollups(b).expect_err("refused");
        for end in 0..bytes.len() {
            let cut = decode_host_rollups(&bytes[..end]);
            assert!(cut.is_err(), "cut at {end}: {cut:?}");
        }
        assert!(err(&[]).contains("end at byte 0"), "{}", err(&[]));
        assert!(err(&[2]).contains("version 2"), "{}", err(&[2]));
        let one = encode_host_rollups(&rollups()[2..3]);
        let (index_at, health_at) = (one.len() - 2, one.len() - 1);
        let decode = decode_host_rollups;
        assert_refused_at(decode, &one, health_at, 4, "4 is not a health state");
        assert_refused_at(decode, &one, index_at, 1, "monitor 1 of 1 listed");
        let mut too_many = one[..index_at - 1].to_vec();
        put_var(&mut too_many, 1 << 40);
        assert!(err(&too_many).contains("cannot fit"), "{}", err(&too_many));
        let mut longer = one.clone();
        longer.push(0);
        assert!(
            err(&longer).contains("more than its instances"),
            "{}",
            err(&longer)
        );
    }

    #[test]
    fn version_1_values_are_still_read() {
        let memories = every_memory();
        let units = units(&memories, &HELD);
        assert_eq!(
            decode_host_units(&encode_v1(&units)).expect("v1"),
            expected(&units)
        );
    }

    /// A host of the simulated fleet's shape: ten filesystems, each with a free-space
    /// threshold and a fill-rate window of five samples.
    #[test]
    fn a_host_of_filesystems_takes_about_half_the_bytes_of_version_1() {
        let ids: Vec<String> = (0..10).map(|i| format!("{i:032x}")).collect();
        let window = Memory::Window([50.0, 49.5, 49.0, 48.5, 48.0].into());
        let units: Vec<KeptUnit<'_>> = ids
            .iter()
            .flat_map(|id| {
                [
                    ("Linux.Monitor.FilesystemFillRate", &window),
                    ("Linux.Monitor.FilesystemFreeSpace", &Memory::None),
                ]
                .map(|(monitor, memory)| KeptUnit {
                    instance: id,
                    monitor,
                    health: Health::Healthy,
                    memory,
                    held: &[],
                })
            })
            .collect();
        let (v1, v2) = (encode_v1(&units).len(), encode_host_units(&units).len());
        assert!(
            v2 * 100 <= v1 * 55,
            "version 2: {v2} bytes, version 1: {v1}"
        );
        assert_eq!(
            decode_host_units(&encode_host_units(&units)).expect("v2"),
            decode_host_units(&encode_v1(&units)).expect("v1")
        );
    }

    /// A version 2 value listing the monitor "Cpu" and the instance "web" with one
    /// monitor, up to where that monitor's index goes.
    fn v2_up_to_a_unit() -> Vec<u8> {
        let mut v = vec![VERSION];
        put_var(&mut v, 1);
        put_vstr(&mut v, "Cpu");
        put_var(&mut v, 1);
        put_vstr(&mut v, "web");
        put_var(&mut v, 1);
        v
    }

    #[test]
    fn a_version_2_value_that_does_not_read_says_what_and_where() {
        let err = |b: &[u8]| decode_host_units(b).expect_err("refused");
        // One monitor listed, the unit names the second.
        let mut v = v2_up_to_a_unit();
        let unit_at = v.len();
        put_var(&mut v, 1);
        v.extend([1, 0, 0]);
        let e = err(&v);
        assert!(
            e.contains("monitor 1 of 1 listed") && e.contains(&format!("at byte {unit_at}")),
            "{e}"
        );
        // More monitors listed than the value holds.
        let mut many = vec![VERSION];
        put_var(&mut many, 1 << 40);
        assert!(err(&many).contains("cannot fit"), "{}", err(&many));
        // A run too long for its field.
        let mut run = v2_up_to_a_unit();
        put_var(&mut run, 0);
        run.extend([1, 2, 1]);
        put_var(&mut run, 1 << 33);
        run.push(0);
        assert!(err(&run).contains("longer than 2^32"), "{}", err(&run));
    }

    #[test]
    fn a_value_that_does_not_read_says_what_and_where() {
        let memories = every_memory();
        let bytes = encode_host_units(&units(&memories, &HELD));
        // Cut anywhere: an error, never a panic, never a partial answer.
        for end in 0..bytes.len() {
            let cut = decode_host_units(&bytes[..end]);
            assert!(cut.is_err(), "cut at {end}: {cut:?}");
        }
        let err = |b: &[u8]| decode_host_units(b).expect_err("refused");
        assert!(err(&[]).contains("end at byte 0"), "{}", err(&[]));
        assert!(err(&[9]).contains("version 9"), "{}", err(&[9]));
        // An instance claiming more monitors than the value holds.
        let mut huge = vec![VERSION_1, 0, 0, 0, 1];
        put_str(&mut huge, "web");
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(err(&huge).contains("cannot fit"), "{}", err(&huge));
        // Unknown health, memory and held tags, flags that are not flags.
        let one = |health: u8, memory: &[u8], held: &[u8]| {
            let mut v = vec![VERSION_1, 0, 0, 0, 1];
            put_str(&mut v, "web");
            v.extend_from_slice(&1u32.to_be_bytes());
            put_str(&mut v, "Cpu");
            v.push(health);
            v.extend_from_slice(memory);
            v.extend_from_slice(held);
            v
        };
        let no_held = 0u32.to_be_bytes();
        let mut one_held = 1u32.to_be_bytes().to_vec();
        one_held.extend([9, 0]);
        for (bad, expected) in [
            (one(7, &[0], &no_held), "7 is not a health state"),
            (one(1, &[6], &no_held), "6 is not a kind of monitor memory"),
            (one(1, &[2, 5, 0, 0, 0, 1], &no_held), "5 is not a flag"),
            (one(1, &[5, 3, 0], &no_held), "3 is not a service reading"),
            (one(1, &[0], &one_held), "9 is not a kind of held reading"),
        ] {
            let e = err(&bad);
            assert!(e.contains(expected) && e.contains("at byte"), "{e}");
        }
        assert_eq!(
            decode_host_units(&one(1, &[0], &no_held)).expect("a good one"),
            [(
                "web".to_string(),
                "Cpu".to_string(),
                Saved::Unit {
                    health: Health::Healthy,
                    memory: Memory::None,
                    held: vec![]
                }
            )]
        );
        let mut longer = one(1, &[0], &no_held);
        longer.push(0);
        assert!(
            err(&longer).contains("more than its instances"),
            "{}",
            err(&longer)
        );
        let mut not_utf8 = vec![VERSION_1, 0, 0, 0, 1];
        not_utf8.extend_from_slice(&2u32.to_be_bytes());
        not_utf8.extend([0xff, 0xfe, 0, 0, 0, 0]);
        assert!(err(&not_utf8).contains("not UTF-8"), "{}", err(&not_utf8));
    }

    proptest::proptest! {
        /// Any bytes are refused or read; what is read is written again as the same states
        /// (compared as bytes: a window read from any bytes may hold NaN).
        #[test]
        fn any_bytes_are_read_or_refused(
            version in proptest::sample::select(vec![VERSION_1, VERSION]),
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut v = vec![version];
            v.extend(bytes);
            if let Ok(read) = decode_host_units(&v) {
                let written = encode_host_units(&units_of(&read));
                let again = decode_host_units(&written).expect("written again");
                proptest::prop_assert_eq!(encode_host_units(&units_of(&again)), written);
            }
        }

        /// Any bytes are refused or read; what is read is written again as the same states.
        #[test]
        fn any_rollup_bytes_are_read_or_refused(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut v = vec![ROLLUPS_VERSION];
            v.extend(bytes);
            if let Ok(read) = decode_host_rollups(&v) {
                let listed: Vec<KeptRollup<'_>> = read
                    .iter()
                    .map(|(instance, monitor, health)| KeptRollup { instance, monitor, health: *health })
                    .collect();
                let written = encode_host_rollups(&listed);
                proptest::prop_assert_eq!(decode_host_rollups(&written).expect("written again"), read);
            }
        }

        #[test]
        fn windows_of_any_values_are_read_back(values in proptest::collection::vec(proptest::num::f64::NORMAL | proptest::num::f64::ZERO, 0..40)) {
            let memory = [Memory::Window(values.into())];
            let units = units(&memory, &[]);
            let back = decode_host_units(&encode_host_units(&units)).expect("reads");
            proptest::prop_assert_eq!(back, vec![("fs-1".to_string(), "Fill".to_string(), units[0].to_saved())]);
        }
    }
}
