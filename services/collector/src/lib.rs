//! The reference Linux collector (DESIGN.md section 8).
//!
//! It registers its computer and itself (a discovery snapshot of source
//! `healthstream.collector/<host>`), then follows its collection plan from ingest
//! (`GET /v1/plans/<host>`, polled with the plan's ETag): every planned data source runs at
//! its interval: perf counters, inventory (discovery snapshots, one per workflow copy),
//! service states, commands, journal events and log files; heartbeats go out every minute.
//! Everything goes to ingest as Avro batches, through a bounded outbox: while the pipeline is
//! unreachable batches wait, and past the bound the oldest are dropped and counted.
//!
//! How data types travel (the health processor maps them back):
//! - service state: perf samples `Service/Running/<unit>` and `Service/Automatic/<unit>`, 1 or 0;
//! - a command's property bag: an event of channel `propertybag`, source the data source id,
//!   the bag in its properties;
//! - a log file line: an event of channel `logfile`, source the path.

pub mod counters;
pub mod inventory;
pub mod journal;
mod metrics;
pub mod outbox;
pub mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use healthstream_contracts::records::{
    CollectionPlan, Command, DiscoveredInstance, DiscoveryData, DiscoveryMode, DiscoverySource,
    DiscoverySourceKind, Event, EventBatch, EventLevel, Heartbeat, PerfBatch, PerfSample,
    PlannedDataSource, Properties, PropertyValue, TaskResult,
};
use tokio::sync::watch;

use crate::counters::{select, Sampler};
use crate::inventory::Host;
use crate::outbox::{Batch, Outbox};

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Base URL of ingest.
    pub server: String,
    /// The host's principal name (its root host).
    pub host: String,
    /// Records buffered at most while the pipeline is unreachable.
    pub buffer_records: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// How often the plan is asked for.
    pub plan_poll: Duration,
    /// Registration is sent again this often.
    pub register_every: Duration,
    /// How often commands (diagnostics, recoveries, tasks) are asked for.
    pub command_poll: Duration,
    /// The command lines this collector may run.
    pub allow: tasks::AllowList,
    /// Output kept per command.
    pub max_output_bytes: usize,
}

impl CollectorConfig {
    pub fn new(server: &str, host: &str) -> CollectorConfig {
        CollectorConfig {
            server: server.to_string(),
            host: host.to_string(),
            buffer_records: 100_000,
            heartbeat: Duration::from_secs(60),
            plan_poll: Duration::from_secs(30),
            register_every: Duration::from_secs(3600),
            command_poll: Duration::from_secs(5),
            allow: tasks::AllowList::shipped(),
            max_output_bytes: tasks::MAX_OUTPUT_BYTES,
        }
    }
}

/// The local host name.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn snapshot(host: &str, source: &str, instances: Vec<DiscoveredInstance>) -> DiscoveryData {
    DiscoveryData {
        id: String::new(),
        root_host: host.to_string(),
        source: DiscoverySource {
            kind: DiscoverySourceKind::Discovery,
            id: source.to_string(),
            managing: true,
        },
        mode: DiscoveryMode::Snapshot,
        time: now_ms(),
        instances,
        relationships: vec![],
        removed_instances: vec![],
        removed_relationships: vec![],
    }
}

/// The registration: the computer and the collector on it.
pub fn registration(host: &Host) -> DiscoveryData {
    let mut instances = host.host();
    instances.truncate(1);
    instances.push(DiscoveredInstance {
        class: "System.Collector".into(),
        keys: Properties::new(),
        properties: [
            (
                "Version".to_string(),
                PropertyValue::String(env!("CARGO_PKG_VERSION").into()),
            ),
            (
                "HeartbeatIntervalSeconds".to_string(),
                PropertyValue::Long(60),
            ),
        ]
        .into_iter()
        .collect(),
        host: Some(host.computer_ref()),
    });
    snapshot(
        &host.name,
        &format!("healthstream.collector/{}", host.name),
        instances,
    )
}

/// A command's output as a property bag: a JSON object, or `key=value` lines.
pub fn property_bag(output: &str) -> BTreeMap<String, String> {
    if let Ok(serde_json::Value::Object(o)) =
        serde_json::from_str::<serde_json::Value>(output.trim())
    {
        return o
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
    }
    output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The collector's running state.
pub struct Collector {
    config: CollectorConfig,
    host: Host,
    sampler: Sampler,
    outbox: Outbox,
    client: reqwest::Client,
    plan: Option<CollectionPlan>,
    etag: Option<String>,
    /// When each planned data source last ran.
    last_run: HashMap<String, Instant>,
    /// Log files followed: path -> bytes read so far.
    log_offsets: HashMap<String, u64>,
    heartbeat_seq: i64,
    /// Commands started (not run twice), oldest first, bounded.
    started: std::collections::VecDeque<String>,
    results_tx: tokio::sync::mpsc::UnboundedSender<TaskResult>,
    results_rx: tokio::sync::mpsc::UnboundedReceiver<TaskResult>,
}

/// Command ids remembered as started.
const STARTED_KEPT: usize = 10_000;

impl Collector {
    pub fn new(config: CollectorConfig) -> Collector {
        let host = Host::local(&config.host);
        let (results_tx, results_rx) = tokio::sync::mpsc::unbounded_channel();
        Collector {
            sampler: Sampler::new(host.clone()),
            outbox: Outbox::new(config.buffer_records),
            client: reqwest::Client::new(),
            host,
            config,
            plan: None,
            etag: None,
            last_run: HashMap::new(),
            log_offsets: HashMap::new(),
            heartbeat_seq: 0,
            started: std::collections::VecDeque::new(),
            results_tx,
            results_rx,
        }
    }

    /// Ask ingest for this host's commands; start each new one (allow-list, time limit and
    /// output bound applied); results are queued as they finish.
    pub async fn poll_commands(&mut self) {
        let url = format!(
            "{}/v1/collectors/{}/commands",
            self.config.server.trim_end_matches('/'),
            self.host.name
        );
        #[derive(serde::Deserialize)]
        struct Listing {
            commands: Vec<Command>,
        }
        let listing = match self
            .client
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => match r.json::<Listing>().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "the command list cannot be read");
                    return;
                }
            },
            Ok(r) => {
                tracing::debug!(status = %r.status(), "no command list");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "ingest unreachable for commands");
                return;
            }
        };
        for c in listing.commands {
            if self.started.contains(&c.id) {
                continue;
            }
            self.started.push_back(c.id.clone());
            if self.started.len() > STARTED_KEPT {
                self.started.pop_front();
            }
            tracing::info!(command = %c.id, workflow = %c.workflow_id, "running a command");
            let (allow, max, tx) = (
                self.config.allow.clone(),
                self.config.max_output_bytes,
                self.results_tx.clone(),
            );
            tokio::spawn(async move {
                let r = tasks::run(&c, &allow, max).await;
                let _ = tx.send(r);
            });
        }
    }

    /// Queue the results of the commands that finished.
    fn collect_results(&mut self) {
        while let Ok(r) = self.results_rx.try_recv() {
            self.outbox.push(Batch::TaskResult(r));
        }
    }

    /// The current plan.
    pub fn plan(&self) -> Option<&CollectionPlan> {
        self.plan.as_ref()
    }

    /// Batches waiting.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Ask ingest for the plan (keeps the current one when unchanged or unreachable).
    pub async fn refresh_plan(&mut self) {
        let url = format!(
            "{}/v1/plans/{}",
            self.config.server.trim_end_matches('/'),
            self.host.name
        );
        let mut req = self.client.get(&url).timeout(Duration::from_secs(10));
        if let Some(etag) = &self.etag {
            req = req.header("if-none-match", etag.as_str());
        }
        match req.send().await {
            Ok(r) if r.status().as_u16() == 304 => {}
            Ok(r) if r.status().is_success() => {
                let etag = r
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match r.json::<CollectionPlan>().await {
                    Ok(plan) => {
                        tracing::info!(data_sources = plan.data_sources.len(), digest = %plan.digest, "collection plan");
                        self.plan = Some(plan);
                        self.etag = etag;
                    }
                    Err(e) => tracing::warn!(error = %e, "the collection plan cannot be read"),
                }
            }
            Ok(r) => tracing::debug!(status = %r.status(), "no collection plan yet"),
            Err(e) => tracing::debug!(error = %e, "ingest unreachable for the plan"),
        }
    }

    fn due(&mut self, id: &str, interval: Duration) -> bool {
        let now = Instant::now();
        match self.last_run.get(id) {
            Some(t) if now.duration_since(*t) < interval => false,
            _ => {
                self.last_run.insert(id.to_string(), now);
                true
            }
        }
    }

    /// One pass: queue what is due, then send. Returns an error when the pipeline was
    /// unreachable (what is queued stays queued).
    pub async fn tick(&mut self) -> Result<(), String> {
        if self.due("#register", self.config.register_every) {
            self.outbox.push(Batch::Discovery(registration(&self.host)));
        }
        // Until there is a plan, ask often: the registration is being processed.
        let poll = if self.plan.is_none() {
            Duration::from_secs(2)
        } else {
            self.config.plan_poll
        };
        if self.due("#plan", poll) {
            self.refresh_plan().await;
        }
        if self.due("#heartbeat", self.config.heartbeat) {
            self.heartbeat_seq += 1;
            self.outbox.push(Batch::Heartbeat(Heartbeat {
                id: String::new(),
                collector: self.host.name.clone(),
                root_host: self.host.name.clone(),
                time: now_ms(),
                interval_seconds: i32::try_from(self.config.heartbeat.as_secs()).unwrap_or(60),
                sequence: self.heartbeat_seq,
                version: env!("CARGO_PKG_VERSION").to_string(),
            }));
        }
        if self.plan.is_some() && self.due("#commands", self.config.command_poll) {
            self.poll_commands().await;
        }
        self.collect_results();
        self.run_plan().await;
        self.outbox
            .flush(&self.client, &self.config.server)
            .await
            .map(|_| ())
    }

    async fn run_plan(&mut self) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let due: Vec<PlannedDataSource> = plan
            .data_sources
            .into_iter()
            .filter(|d| d.module != "event" && d.module != "heartbeat" && d.module != "schedule")
            .collect();
        let mut samples: Vec<PerfSample> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut reading = None;
        for ds in due {
            let interval =
                Duration::from_secs(u64::try_from(ds.interval_seconds.max(1)).unwrap_or(60));
            let interval = if ds.module == "log_file" {
                Duration::from_secs(1)
            } else {
                interval
            };
            if !self.due(&ds.id, interval) {
                continue;
            }
            let now = now_ms();
            match ds.module.as_str() {
                "perf" => {
                    let r = reading.get_or_insert_with(|| self.sampler.sample());
                    let (o, c) = (
                        ds.config.get("object").cloned().unwrap_or_default(),
                        ds.config.get("counter").cloned().unwrap_or_default(),
                    );
                    for (instance, value) in
                        select(r, &o, &c, ds.config.get("instance").map(String::as_str))
                    {
                        samples.push(PerfSample {
                            time: now,
                            object: o.clone(),
                            counter: c.clone(),
                            instance: instance.to_string(),
                            value,
                        });
                    }
                }
                "inventory" => {
                    let provider = ds.config.get("provider").cloned().unwrap_or_default();
                    let Some(instances) = self.host.inventory(&provider) else {
                        tracing::warn!(provider, "unknown inventory provider in the plan");
                        continue;
                    };
                    for copy in &ds.workflows {
                        self.outbox.push(Batch::Discovery(snapshot(
                            &self.host.name,
                            copy,
                            instances.clone(),
                        )));
                    }
                }
                "service" => {
                    let unit = ds.config.get("service").cloned().unwrap_or_default();
                    let ask = |verb: &str| {
                        std::process::Command::new("systemctl")
                            .args([verb, &unit])
                            .output()
                            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                            .unwrap_or_default()
                    };
                    let running = ask("is-active") == "active";
                    let automatic = ask("is-enabled") == "enabled";
                    for (counter, v) in [("Running", running), ("Automatic", automatic)] {
                        samples.push(PerfSample {
                            time: now,
                            object: "Service".into(),
                            counter: counter.into(),
                            instance: unit.clone(),
                            value: if v { 1.0 } else { 0.0 },
                        });
                    }
                }
                "command" => {
                    let argv: Vec<String> = ds
                        .config
                        .get("command")
                        .and_then(|c| serde_json::from_str(c).ok())
                        .unwrap_or_default();
                    let Some((program, args)) = argv.split_first() else {
                        continue;
                    };
                    let timeout = ds
                        .config
                        .get("timeout")
                        .and_then(|t| humantime::parse_duration(t).ok())
                        .unwrap_or(Duration::from_secs(30));
                    let run = tokio::process::Command::new(program)
                        .args(args)
                        .kill_on_drop(true)
                        .output();
                    let (level, properties, message) =
                        match tokio::time::timeout(timeout, run).await {
                            Ok(Ok(o)) if o.status.success() => (
                                EventLevel::Information,
                                property_bag(&String::from_utf8_lossy(&o.stdout)),
                                String::new(),
                            ),
                            Ok(Ok(o)) => (
                                EventLevel::Error,
                                BTreeMap::new(),
                                format!(
                                    "exited with {}: {}",
                                    o.status,
                                    String::from_utf8_lossy(&o.stderr).trim()
                                ),
                            ),
                            Ok(Err(e)) => (
                                EventLevel::Error,
                                BTreeMap::new(),
                                format!("cannot run {program}: {e}"),
                            ),
                            Err(_) => (
                                EventLevel::Error,
                                BTreeMap::new(),
                                format!("timed out after {timeout:?}"),
                            ),
                        };
                    events.push(Event {
                        time: now,
                        channel: "propertybag".into(),
                        source: ds.id.clone(),
                        event_id: 0,
                        level,
                        message,
                        params: vec![],
                        properties,
                    });
                }
                "log_file" => {
                    let path = ds.config.get("path").cloned().unwrap_or_default();
                    events.extend(self.read_log(&path, now));
                }
                other => tracing::debug!(module = other, "module not run by this collector"),
            }
        }
        if !samples.is_empty() {
            self.outbox.push(Batch::Perf(PerfBatch {
                id: String::new(),
                collector: self.host.name.clone(),
                root_host: self.host.name.clone(),
                samples,
            }));
        }
        if !events.is_empty() {
            self.push_events(events);
        }
    }

    /// Queue journal events (or any others) in one batch.
    pub fn push_events(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.outbox.push(Batch::Events(EventBatch {
            id: String::new(),
            collector: self.host.name.clone(),
            root_host: self.host.name.clone(),
            events,
        }));
    }

    /// New lines of a log file since the last read (from its end the first time).
    fn read_log(&mut self, path: &str, now: i64) -> Vec<Event> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Vec::new();
        };
        let len = meta.len();
        let from = match self.log_offsets.get(path) {
            None => {
                self.log_offsets.insert(path.to_string(), len);
                return Vec::new();
            }
            Some(o) if *o > len => 0, // truncated or rotated
            Some(o) => *o,
        };
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            f.take(1 << 20).read_to_string(&mut text)
        });
        let Ok(n) = read else { return Vec::new() };
        self.log_offsets.insert(path.to_string(), from + n as u64);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Event {
                time: now,
                channel: "logfile".into(),
                source: path.to_string(),
                event_id: 0,
                level: EventLevel::Information,
                message: l.to_string(),
                params: vec![],
                properties: BTreeMap::new(),
            })
            .collect()
    }

    /// Run until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let journal =
            if self.plan_has_events() || std::path::Path::new("/run/systemd/journal").exists() {
                journal::follow()
            } else {
                None
            };
        tracing::info!(host = %self.host.name, server = %self.config.server, journal = journal.is_some(), "collector started");
        let mut unreachable_since: Option<Instant> = None;
        loop {
            if let Some(j) = &journal {
                let events: Vec<Event> = j
                    .lock()
                    .map(|mut b| std::mem::take(&mut *b))
                    .unwrap_or_default();
                self.push_events(events);
            }
            match self.tick().await {
                Ok(()) => unreachable_since = None,
                Err(e) => {
                    if unreachable_since.is_none() {
                        tracing::warn!(error = %e, buffered = self.outbox.len(), "pipeline unreachable; buffering");
                        unreachable_since = Some(Instant::now());
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
        let _ = self.outbox.flush(&self.client, &self.config.server).await;
        tracing::info!("collector stopped");
    }

    fn plan_has_events(&self) -> bool {
        self.plan
            .as_ref()
            .is_some_and(|p| p.data_sources.iter().any(|d| d.module == "event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_bags() {
        let json = property_bag(r#"{"state": "running", "count": 3}"#);
        assert_eq!(json["state"], "running");
        assert_eq!(json["count"], "3");
        let kv = property_bag("allocated=1234\n junk line \n=nokey\nstate = degraded\n");
        assert_eq!(kv.len(), 2);
        assert_eq!(kv["allocated"], "1234");
        assert_eq!(kv["state"], "degraded");
        assert!(property_bag("").is_empty());
    }

    #[test]
    fn registration_names_the_computer_and_the_collector() {
        let r = registration(&Host::local("web-01"));
        assert_eq!(r.source.id, "healthstream.collector/web-01");
        let classes: Vec<&str> = r.instances.iter().map(|i| i.class.as_str()).collect();
        assert_eq!(classes, ["Linux.Computer", "System.Collector"]);
    }
}
