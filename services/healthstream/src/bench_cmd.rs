//! `healthstream bench pipeline`: the whole pipeline, embedded, measured end to end.
//!
//! A fleet of H hosts with N numeric items each (filesystems of the Linux pack, each read
//! by its free-space threshold monitor and its fill-rate delta monitor) is discovered
//! through ingest; values inside the thresholds are sent until every monitor is
//! initialized (not measured); then R rounds of one
//! value per item are posted to ingest as JSON, 1% of the values beyond the threshold
//! (`--beyond-percent`; a different 1% each round, so states really change, roll up,
//! alert and run their diagnostics). Measured: samples per second from the first post to the last sample
//! applied by the health processor, the process's CPU seconds per million samples over
//! the same span (request bodies are built beforehand), and the same without the threads
//! that send the requests (the load, as collectors are other processes) and read the state
//! changes (the observer, as a downstream consumer would), and the latency from a crossing
//! value's time to its state-change event being durable on the state topic (p50, p99).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use healthstream_bus::{Bus, Consumer, ConsumerEvent};
use healthstream_contracts::records::{HealthState, StateChange};
use healthstream_contracts::{Codec, Topic};
use serde_json::json;

use crate::wiring::{BusChoice, Runtime, ALL_SERVICES};

/// `healthstream bench pipeline`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Hosts in the fleet.
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// Numeric items per host, each with a threshold monitor.
    #[arg(long, default_value_t = 10)]
    pub items: usize,
    /// Values sent per item (measured). The default spans several checkpoints of the
    /// state and the store's flushes and compactions: a run of a second or two measures
    /// the pipeline before most of that work comes due.
    #[arg(long, default_value_t = 60)]
    pub rounds: usize,
    /// Percent of the values beyond the threshold (a different set of items each round).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=50))]
    pub beyond_percent: u8,
    /// Requests to ingest in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Values per second to send at (paced); default: as fast as ingest takes them.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Hosts per request to ingest (0: as many as make 5,000 values). A collector sends
    /// its own host's values: 1 measures latency as a fleet of collectors sees it.
    #[arg(long, default_value_t = 0)]
    pub hosts_per_request: usize,
    /// Health processor workers (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub health_workers: usize,
}

const FREE_SPACE: &str = "Linux.Monitor.FilesystemFreeSpace";
const FILL_RATE: &str = "Linux.Monitor.FilesystemFillRate";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// CPU seconds used by this process so far (user + system).
fn cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// Reads state changes until `stop`, keeping the latency of each free-space monitor's turn
/// to critical: from the value's time to the change readable on the bus.
async fn observe(reader: &mut dyn Consumer, latencies: &Mutex<Vec<i64>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let event = match tokio::time::timeout(Duration::from_millis(200), reader.next()).await {
            Ok(Ok(e)) => e,
            Ok(Err(_)) => return,
            Err(_) => continue,
        };
        let ConsumerEvent::Message(m) = event else {
            continue;
        };
        // The key is "instance/monitor": only the free-space monitor's changes are decoded.
        let free_space = m
            .key
            .as_deref()
            .is_some_and(|k| k.ends_with(FREE_SPACE.as_bytes()));
        let Some(v) = m.value.filter(|_| free_space) else {
            continue;
        };
        if let Ok(s) = Codec::shared().decode::<StateChange>(&v) {
            if s.monitor_id == FREE_SPACE
                && s.old_state == HealthState::Healthy
                && s.new_state == HealthState::Critical
            {
                if let Ok(mut l) = latencies.lock() {
                    l.push(now_ms() - s.time);
                }
            }
        }
    }
}

/// The statistics file of the calling thread, readable from any thread of the process.
fn thread_stat_path() -> String {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    format!("/proc/self/task/{tid}/stat")
}

fn cpu_seconds_of(stat: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn applied(stage: &str, topic: Topic) -> u64 {
    healthstream_stage::STAGE_RECORDS
        .with_label_values(&[stage, topic.name(), "applied"])
        .get()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> anyhow::Result<()> {
    loop {
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        match r.status().as_u16() {
            200 => return Ok(()),
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            s => bail!("{url}: {s} {}", r.text().await.unwrap_or_default()),
        }
    }
}

/// Posts the rounds' bodies, `concurrency` requests in flight, at `rate` values per second
/// from `t0` when given (else as fast as ingest takes them).
async fn send_rounds(
    rounds: Vec<Vec<String>>,
    url: String,
    rate: Option<u64>,
    concurrency: usize,
    per_request: f64,
    t0: Instant,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut sends = Vec::new();
    let mut sent = 0f64;
    for body in rounds.into_iter().flatten() {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent / rate as f64);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        sent += per_request;
        let body = stamped(&body);
        let permit = sem.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.clone());
        sends.push(tokio::spawn(async move {
            let r = post(&client, &url, body).await;
            drop(permit);
            r
        }));
    }
    for s in sends {
        s.await??;
    }
    Ok(())
}

/// Most warm-up rounds before the bench gives up on a steady state.
const MAX_WARM_UP_ROUNDS: usize = 20;

/// A request body with each value's time set to now (when it is sent).
fn stamped(body: &str) -> String {
    body.replace("\"time\":0", &format!("\"time\":{}", now_ms()))
}

/// Id of a filesystem of the fleet, from the instance API.
async fn probe_filesystem(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let url = format!("{base}/v1/instances?class=Linux.Filesystem&limit=1");
    let page: serde_json::Value = client.get(&url).send().await?.json().await?;
    page["instances"][0]["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{url} lists no filesystem: {page}"))
}

/// Are the free-space and fill-rate monitors of the filesystem `id` both initialized?
async fn initialized(client: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<bool> {
    let r = client.get(format!("{base}/v1/health/{id}")).send().await?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    let health: serde_json::Value = r.json().await?;
    Ok([FREE_SPACE, FILL_RATE].iter().all(|m| {
        health["monitors"][m]
            .as_str()
            .is_some_and(|s| s != "uninitialized")
    }))
}

/// Records on all partitions of `topic`.
async fn total_end(bus: &dyn Bus, topic: Topic) -> anyhow::Result<i64> {
    let mut n = 0;
    for p in 0..bus.partitions(topic) {
        n += bus.end_offset(topic, p).await?;
    }
    Ok(n)
}

/// Wait until `count()` stops moving for `quiet`.
async fn settle(count: impl Fn() -> u64, quiet: Duration) -> u64 {
    let mut last = count();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.hosts == 0 || args.items == 0 || args.rounds == 0 {
        bail!("--hosts, --items and --rounds must be at least 1");
    }
    let dir = tempfile::tempdir().context("a data directory")?;
    let topology = healthstream_topology::Topology::parse(
        include_str!("../../../topologies/embedded.toml"),
        "topologies/embedded.toml".as_ref(),
    )?;
    let rt = Runtime::start(
        BusChoice::Embedded {
            dir: dir.path().join("bus"),
            sync_writes: false,
        },
        topology,
        dir.path(),
        "127.0.0.1:0".parse()?,
        &ALL_SERVICES,
        crate::wiring::HealthOptions {
            workers: args.health_workers,
            history_retention: None,
        },
    )
    .await?;
    let base = format!("http://{}", rt.local_addr);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!("the pipeline did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let host_name = |h: usize| format!("host-{h:05}");
    let mount = |i: usize| format!("/data{i}");

    // The fleet.
    eprintln!(
        "discovering {} hosts x {} items ...",
        args.hosts, args.items
    );
    let started = Instant::now();
    let per_request = 200;
    for chunk in (0..args.hosts).collect::<Vec<_>>().chunks(per_request) {
        let records: Vec<serde_json::Value> = chunk
            .iter()
            .map(|h| {
                let name = host_name(*h);
                let host = json!({"class": "Linux.Computer", "keys": {"PrincipalName": name}});
                let mut instances = vec![host.clone()];
                for i in 0..args.items {
                    instances.push(json!({"class": "Linux.Filesystem", "keys": {"MountPoint": mount(i)}, "properties": {"Type": "xfs"}, "host": host}));
                }
                json!({
                    "root_host": name,
                    "source": {"kind": "discovery", "id": format!("bench/{name}")},
                    "mode": "snapshot",
                    "time": "2026-11-22T00:00:00Z",
                    "instances": instances,
                })
            })
            .collect();
        post(
            &client,
            &format!("{base}/v1/ingest/discovery"),
            serde_json::to_string(&records)?,
        )
        .await?;
    }
    let changes = settle(
        || applied("health", Topic::Instances),
        Duration::from_secs(2),
    )
    .await;
    eprintln!(
        "  {} instance changes applied by the health processor in {:.1} s",
        changes,
        started.elapsed().as_secs_f64()
    );

    // The rounds, built beforehand; the first, sent until no state changes and not
    // measured, brings every monitor from uninitialized to healthy (the steady state is
    // what is measured).
    let hosts_per_request = match args.hosts_per_request {
        0 => (5_000 / args.items).max(1),
        n => n,
    };
    let mut bodies: Vec<Vec<String>> = Vec::new();
    let mut crossing = 0usize;
    let beyond = usize::from(args.beyond_percent);
    for r in 0..=args.rounds {
        let r = if r == 0 { usize::MAX } else { r };
        let mut round = Vec::new();
        for chunk in (0..args.hosts)
            .collect::<Vec<_>>()
            .chunks(hosts_per_request)
        {
            let records: Vec<serde_json::Value> = chunk
                .iter()
                .map(|h| {
                    let samples: Vec<serde_json::Value> = (0..args.items)
                        .map(|i| {
                            let low = r != usize::MAX
                                && (h * args.items + i + r * beyond) % 100 < beyond;
                            if low {
                                crossing += 1;
                            }
                            json!({"time": 0, "object": "Filesystem", "counter": "% Free Space",
                                   "instance": mount(i), "value": if low { 4.0 } else { 50.0 }})
                        })
                        .collect();
                    json!({"collector": host_name(*h), "root_host": host_name(*h), "samples": samples})
                })
                .collect();
            round.push(serde_json::to_string(&records)?);
        }
        bodies.push(round);
    }
    let total = (args.hosts * args.items * args.rounds) as u64;

    eprintln!(
        "sending {total} values in {} rounds ({crossing} beyond the threshold) ...",
        args.rounds
    );
    let bus = rt.bus();
    let url = format!("{base}/v1/ingest/perf");
    let mut bodies = bodies.into_iter();
    // Warm-up: rounds of values inside the thresholds until both monitors of a filesystem
    // are initialized (the fill rate, a delta monitor, needs six samples) and a round
    // changes no state: every host gets the same values, so the whole fleet is steady.
    let warm_up = bodies.next().unwrap_or_default();
    let probe = probe_filesystem(&client, &base).await?;
    let mut warm_rounds = 0;
    loop {
        let states_before = total_end(&*bus, Topic::State).await?;
        let warm = applied("health", Topic::Perf);
        for body in &warm_up {
            post(&client, &url, stamped(body)).await?;
        }
        while applied("health", Topic::Perf) - warm < args.hosts as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        settle(
            || applied("health", Topic::Instances),
            Duration::from_millis(300),
        )
        .await;
        warm_rounds += 1;
        if total_end(&*bus, Topic::State).await? == states_before
            && initialized(&client, &base, &probe).await?
        {
            break;
        }
        if warm_rounds == MAX_WARM_UP_ROUNDS {
            bail!("monitors still change state after {warm_rounds} rounds of steady values");
        }
    }
    eprintln!("  every monitor initialized after {warm_rounds} rounds of steady values");
    let outputs = [
        Topic::State,
        Topic::Alerts,
        Topic::Commands,
        Topic::RollupMembers,
    ];
    let mut emitted_before = Vec::new();
    for topic in outputs {
        emitted_before.push(total_end(&*bus, topic).await?);
    }
    // Crossing values become state-change events: read them as they become durable.
    let mut positions = Vec::new();
    for p in 0..bus.partitions(Topic::State) {
        positions.push((Topic::State, p, bus.end_offset(Topic::State, p).await?));
    }
    let mut reader = bus.reader(&positions)?;
    let latencies: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // The observer reads from a thread and runtime of its own, as a downstream consumer
    // would from its process: its CPU is told apart from the pipeline's. It starts with
    // the measured rounds.
    let (stat_tx, stat_rx) = std::sync::mpsc::sync_channel(1);
    let watcher = {
        let (latencies, stop) = (latencies.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bench-observer".into())
            .spawn(move || -> anyhow::Result<()> {
                let _ = stat_tx.send(thread_stat_path());
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(observe(&mut *reader, &latencies, &stop));
                Ok(())
            })?
    };
    let observer_stat = stat_rx.recv()?;
    let observer_cpu0 = cpu_seconds_of(&observer_stat);
    let before = applied("health", Topic::Perf);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    // The measured rounds are sent from a thread and runtime of their own (as collectors
    // are other processes), so that the sender's CPU can be told apart from the pipeline's.
    let sender = {
        let (url, rate) = (url.clone(), args.rate.filter(|r| *r > 0));
        let (concurrency, per_request) = (
            args.concurrency.max(1),
            (hosts_per_request * args.items) as f64,
        );
        let rounds: Vec<Vec<String>> = bodies.collect();
        std::thread::Builder::new()
            .name("bench-sender".into())
            .spawn(move || -> anyhow::Result<f64> {
                let stat = thread_stat_path();
                let cpu_start = cpu_seconds_of(&stat);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(send_rounds(rounds, url, rate, concurrency, per_request, t0))?;
                Ok(cpu_seconds_of(&stat) - cpu_start)
            })?
    };
    let sender_cpu = tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    let batches = (args.hosts * args.rounds) as u64;
    while applied("health", Topic::Perf) - before < batches {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let observer_cpu = cpu_seconds_of(&observer_stat) - observer_cpu0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || watcher.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the observer thread panicked"))??;
    let mut emitted = Vec::new();
    for (topic, was) in outputs.into_iter().zip(emitted_before) {
        let n = total_end(&*bus, topic).await?;
        emitted.push(format!("{} {}", topic.name(), n - was));
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    println!(
        "hosts {} x items {} x rounds {}: {} values, {} beyond the threshold",
        args.hosts, args.items, args.rounds, total, crossing
    );
    println!(
        "throughput: {:.0} values/s ({:.2} s from the first post to the last value applied)",
        total as f64 / elapsed,
        elapsed
    );
    println!(
        "CPU: {:.2} s per million values ({:.2} CPU s in all)",
        cpu / (total as f64 / 1e6),
        cpu
    );
    println!(
        "CPU of the pipeline: {:.2} s per million values (without the sender's thread, {:.2} CPU s, \
         and the observer's, {:.2} CPU s)",
        (cpu - sender_cpu - observer_cpu) / (total as f64 / 1e6),
        sender_cpu,
        observer_cpu
    );
    println!(
        "records on the output topics while measured: {}",
        emitted.join(", ")
    );
    println!(
        "latency, value to durable state-change event: p50 {} ms, p99 {} ms, max {} ms ({} events)",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
        lat.len()
    );
    rt.stop().await
}
