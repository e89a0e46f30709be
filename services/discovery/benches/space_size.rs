//! The size of the instance space in RocksDB and the time to open it again.
//!
//! Loads `HOSTS` hosts (default 10,000) of 100 instances each through the instance-space core
//! into a fresh store, compacts it, and prints: load rate, bytes per instance (on disk, all
//! column families), and the time to reopen the store and answer a read. Set
//! `HEALTHSTREAM_SPACE_DIR` to keep the store (to restart a real process on it).

use std::path::PathBuf;
use std::time::Instant;

use healthstream_contracts::records::EntityKind;
use healthstream_discovery::space;
use healthstream_discovery::state::{WorkingSet, INSTANCES_CF};
use healthstream_discovery::{Classes, DISCOVERY_CFS};
use healthstream_fleet::{discovery, host_shape};
use healthstream_model::{shipped, Catalog};
use healthstream_store::Store;

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("space_size: bench");
        return;
    }
    let hosts: usize = std::env::var("HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let kept = std::env::var("HEALTHSTREAM_SPACE_DIR")
        .ok()
        .map(PathBuf::from);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = kept.clone().unwrap_or_else(|| tmp.path().join("discovery"));
    std::fs::create_dir_all(&path).expect("dir");
    let mut classes = Classes::new(Catalog::new(shipped().expect("packs")));
    let started = Instant::now();
    let mut instances = 0usize;
    {
        let store = Store::open(&path, DISCOVERY_CFS).expect("store");
        let mut seq = 0;
        for h in 0..hosts {
            for d in discovery(&host_shape(h, 100), 1_000) {
                seq += 1;
                let mut batch = store.batch();
                let mut ws = WorkingSet::new(&mut batch);
                let out = space::apply(&mut ws, &mut classes, &d, seq).expect("applies");
                ws.flush().expect("flush");
                store.write(batch).expect("write");
                instances += out
                    .changes
                    .iter()
                    .filter(|c| {
                        c.kind == EntityKind::Instance
                            && c.view.as_ref().is_some_and(|v| v.claimed_by.len() == 1)
                    })
                    .count();
            }
        }
        store.flush().expect("flush");
        store.compact().expect("compact");
    }
    let load = started.elapsed();
    let bytes = dir_size(&path);
    let reopen = Instant::now();
    let store = Store::open(&path, DISCOVERY_CFS).expect("reopen");
    let first = store
        .scan_prefix_limit(INSTANCES_CF, &[0x20], 1)
        .expect("read");
    let reopened = reopen.elapsed();
    assert_eq!(first.len(), 1);
    println!("hosts: {hosts}, instances: {instances}");
    println!(
        "load: {:.1} s, {:.0} instances/s ({:.0} µs per host of 6 snapshots)",
        load.as_secs_f64(),
        instances as f64 / load.as_secs_f64(),
        load.as_secs_f64() * 1e6 / hosts as f64
    );
    println!(
        "on disk: {bytes} bytes, {:.0} bytes per instance (all column families, compacted)",
        bytes as f64 / instances.max(1) as f64
    );
    println!(
        "reopen and first read: {:.0} ms",
        reopened.as_secs_f64() * 1e3
    );
}
