//! A simulated fleet of Linux hosts: the records their collectors would send (discovery
//! snapshots per the Linux pack, perf samples, journal events, heartbeats), with scripted
//! faults. Seeded and reproducible: the same [`FleetConfig`] always yields the same records
//! in the same order. Bounded: a run covers `duration` of simulated time.
//!
//! Service states travel as perf samples, as the reference collector sends them:
//! `Service/Running/<unit>` and `Service/Automatic/<unit>`, 1 or 0.

use std::collections::BTreeMap;
use std::time::Duration;

use healthstream_contracts::records::{
    DiscoveredInstance, DiscoveryData, DiscoveryMode, DiscoverySource, DiscoverySourceKind, Event,
    EventBatch, EventLevel, Heartbeat, InstanceRef, PerfBatch, PerfSample, Properties,
    PropertyValue,
};

/// A scripted fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// From `at`, the filesystem `mount` of host `host` fills up, reaching 0% free at `at + over`.
    DiskFilling {
        host: usize,
        mount: String,
        at: Duration,
        over: Duration,
    },
    /// From `at`, the service `unit` of host `host` is stopped.
    ServiceStops {
        host: usize,
        unit: String,
        at: Duration,
    },
    /// From `at`, host `host` sends nothing (its collector is down): no heartbeats, no data.
    HeartbeatsStop { host: usize, at: Duration },
    /// From `at` for `over`, host `host` logs `per_second` error events each second.
    EventBurst {
        host: usize,
        at: Duration,
        over: Duration,
        per_second: u32,
    },
}

impl Fault {
    /// Parse `disk-filling:HOST:MOUNT:AT:OVER`, `service-stops:HOST:UNIT:AT`,
    /// `heartbeats-stop:HOST:AT`, `event-burst:HOST:AT:OVER:PER_SECOND` (durations like `5m`).
    pub fn parse(text: &str) -> Result<Fault, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let host = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{text:?}: host {s:?} is not a host number"))
        };
        let dur =
            |s: &str| humantime::parse_duration(s).map_err(|e| format!("{text:?}: {s:?}: {e}"));
        match parts.as_slice() {
            ["disk-filling", h, mount, at, over] => Ok(Fault::DiskFilling { host: host(h)?, mount: mount.to_string(), at: dur(at)?, over: dur(over)? }),
            ["service-stops", h, unit, at] => Ok(Fault::ServiceStops { host: host(h)?, unit: unit.to_string(), at: dur(at)? }),
            ["heartbeats-stop", h, at] => Ok(Fault::HeartbeatsStop { host: host(h)?, at: dur(at)? }),
            ["event-burst", h, at, over, rate] => Ok(Fault::EventBurst {
                host: host(h)?,
                at: dur(at)?,
                over: dur(over)?,
                per_second: rate.parse().map_err(|_| format!("{text:?}: {rate:?} is not a count"))?,
            }),
            _ => Err(format!(
                "{text:?}: write disk-filling:HOST:MOUNT:AT:OVER, service-stops:HOST:UNIT:AT, heartbeats-stop:HOST:AT or event-burst:HOST:AT:OVER:PER_SECOND"
            )),
        }
    }

    fn host(&self) -> usize {
        match self {
            Fault::DiskFilling { host, .. }
            | Fault::ServiceStops { host, .. }
            | Fault::HeartbeatsStop { host, .. }
            | Fault::EventBurst { host, .. } => *host,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    pub seed: u64,
    pub hosts: usize,
    /// Instances per host (computer, OS, collector, then filesystems, disks, interfaces and
    /// services in proportion); at least 8.
    pub instances_per_host: usize,
    /// Simulated time covered.
    pub duration: Duration,
    /// Perf sample interval.
    pub perf_interval: Duration,
    /// Journal events per host per minute (information and warning, a few errors).
    pub events_per_host_minute: u32,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Discovery snapshots are re-sent every this long (identical unless a fault changes them).
    pub discovery_interval: Duration,
    /// Start of simulated time, ms since the epoch.
    pub start_ms: i64,
    pub faults: Vec<Fault>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            seed: 1,
            hosts: 10,
            instances_per_host: 100,
            duration: Duration::from_secs(600),
            perf_interval: Duration::from_secs(60),
            events_per_host_minute: 2,
            heartbeat_interval: Duration::from_secs(60),
            discovery_interval: Duration::from_secs(3600),
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            faults: Vec::new(),
        }
    }
}

/// One record the fleet sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Discovery(DiscoveryData),
    Perf(PerfBatch),
    Events(EventBatch),
    Heartbeat(Heartbeat),
}

impl Record {
    /// The simulated time it is sent at.
    pub fn time(&self) -> i64 {
        match self {
            Record::Discovery(d) => d.time,
            Record::Perf(p) => p.samples.first().map_or(0, |s| s.time),
            Record::Events(e) => e.events.first().map_or(0, |e| e.time),
            Record::Heartbeat(h) => h.time,
        }
    }
}

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// One simulated host's shape.
#[derive(Debug, Clone)]
pub struct HostShape {
    pub name: String,
    pub filesystems: Vec<(String, String)>,
    pub disks: Vec<String>,
    pub interfaces: Vec<String>,
    pub services: Vec<String>,
}

const SERVICES: [&str; 12] = [
    "sshd",
    "cron",
    "nginx",
    "postgresql",
    "redis",
    "docker",
    "chronyd",
    "rsyslog",
    "node-exporter",
    "containerd",
    "haproxy",
    "kafka",
];

/// The name of host `i`.
pub fn host_name(i: usize) -> String {
    format!("host-{i:05}")
}

/// The shape of host `i` (3 fixed instances; the rest split among filesystems, disks,
/// interfaces and services).
pub fn host_shape(i: usize, instances: usize) -> HostShape {
    let rest = instances.max(8) - 3;
    let fs = (rest * 3 / 10).max(1);
    let disks = (rest / 10).max(1);
    let nics = (rest / 10).max(1);
    let services = rest - fs - disks - nics;
    let mut filesystems = vec![("/".to_string(), "ext4".to_string())];
    for n in 1..fs {
        let kind = if n % 5 == 4 { "tmpfs" } else { "xfs" };
        let mount = if kind == "tmpfs" {
            format!("/run/user/{n}")
        } else {
            format!("/data/{n:03}")
        };
        filesystems.push((mount, kind.to_string()));
    }
    HostShape {
        name: host_name(i),
        filesystems,
        disks: (0..disks)
            .map(|n| format!("sd{}{}", (b'a' + (n % 26) as u8) as char, n / 26))
            .collect(),
        interfaces: (0..nics).map(|n| format!("eth{n}")).collect(),
        services: (0..services)
            .map(|n| {
                if n < SERVICES.len() {
                    SERVICES[n].to_string()
                } else {
                    format!("app-{n:03}")
                }
            })
            .collect(),
    }
}

fn s(v: &str) -> PropertyValue {
    PropertyValue::String(v.to_string())
}

fn props(pairs: &[(&str, PropertyValue)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn computer_ref(name: &str) -> InstanceRef {
    InstanceRef {
        class: "Linux.Computer".into(),
        keys: props(&[("PrincipalName", s(name))]),
        host: None,
    }
}

fn hosted(
    class: &str,
    key: &str,
    value: &str,
    host: &str,
    properties: Properties,
) -> DiscoveredInstance {
    DiscoveredInstance {
        class: class.into(),
        keys: props(&[(key, s(value))]),
        properties,
        host: Some(computer_ref(host)),
    }
}

/// The discovery snapshots of a host, one per discovery of the Linux pack (and the
/// collector's registration), at `time`.
pub fn discovery(shape: &HostShape, time: i64) -> Vec<DiscoveryData> {
    let name = &shape.name;
    let snapshot = |source: String, instances: Vec<DiscoveredInstance>| DiscoveryData {
        id: String::new(),
        root_host: name.clone(),
        source: DiscoverySource {
            kind: DiscoverySourceKind::Discovery,
            id: source,
            managing: true,
        },
        mode: DiscoveryMode::Snapshot,
        time,
        instances,
        relationships: vec![],
        removed_instances: vec![],
        removed_relationships: vec![],
    };
    let computer = DiscoveredInstance {
        class: "Linux.Computer".into(),
        keys: props(&[("PrincipalName", s(name))]),
        properties: props(&[
            ("NetworkName", s(&format!("{name}.example.net"))),
            ("CpuCount", PropertyValue::Long(8)),
            ("MemoryBytes", PropertyValue::Long(32 << 30)),
            ("Architecture", s("x86_64")),
        ]),
        host: None,
    };
    let collector = DiscoveredInstance {
        class: "System.Collector".into(),
        keys: Properties::new(),
        properties: props(&[
            ("Version", s(env!("CARGO_PKG_VERSION"))),
            ("HeartbeatIntervalSeconds", PropertyValue::Long(60)),
        ]),
        host: Some(computer_ref(name)),
    };
    vec![
        snapshot(
            format!("healthstream.collector/{name}"),
            vec![computer.clone(), collector],
        ),
        snapshot(
            format!("Linux.Discovery.Computer/{name}"),
            vec![
                computer,
                DiscoveredInstance {
                    class: "Linux.OperatingSystem".into(),
                    keys: Properties::new(),
                    properties: props(&[
                        ("Distribution", s("Debian")),
                        ("Version", s("12")),
                        ("Kernel", s("6.1.0")),
                    ]),
                    host: Some(computer_ref(name)),
                },
            ],
        ),
        snapshot(
            format!("Linux.Discovery.Filesystems/{name}"),
            shape
                .filesystems
                .iter()
                .map(|(m, k)| {
                    hosted(
                        "Linux.Filesystem",
                        "MountPoint",
                        m,
                        name,
                        props(&[
                            ("Type", s(k)),
                            ("SizeBytes", PropertyValue::Long(100 << 30)),
                        ]),
                    )
                })
                .collect(),
        ),
        snapshot(
            format!("Linux.Discovery.BlockDevices/{name}"),
            shape
                .disks
                .iter()
                .map(|d| {
                    hosted(
                        "Linux.BlockDevice",
                        "Name",
                        d,
                        name,
                        props(&[
                            ("SizeBytes", PropertyValue::Long(500 << 30)),
                            ("Rotational", PropertyValue::Boolean(false)),
                        ]),
                    )
                })
                .collect(),
        ),
        snapshot(
            format!("Linux.Discovery.NetworkInterfaces/{name}"),
            shape
                .interfaces
                .iter()
                .map(|n| {
                    hosted(
                        "Linux.NetworkInterface",
                        "Name",
                        n,
                        name,
                        props(&[("SpeedMbps", PropertyValue::Long(10_000))]),
                    )
                })
                .collect(),
        ),
        snapshot(
            format!("Linux.Discovery.Services/{name}"),
            shape
                .services
                .iter()
                .map(|u| {
                    hosted(
                        "Linux.Service",
                        "Name",
                        &format!("{u}.service"),
                        name,
                        props(&[("StartMode", s("enabled"))]),
                    )
                })
                .collect(),
        ),
    ]
}

/// The records of a whole run, in time order (ties: host order, then kind).
pub fn run(config: &FleetConfig) -> Vec<Record> {
    let mut out = Vec::new();
    generate(config, |r| out.push(r));
    out
}

/// Generate the records of a run, calling `emit` for each, in time order.
pub fn generate(config: &FleetConfig, mut emit: impl FnMut(Record)) {
    let shapes: Vec<HostShape> = (0..config.hosts)
        .map(|i| host_shape(i, config.instances_per_host))
        .collect();
    let mut rngs: Vec<Rng> = (0..config.hosts)
        .map(|i| Rng::new(config.seed ^ (i as u64).wrapping_mul(0x9E37_79B9)))
        .collect();
    let mut cpu: Vec<f64> = rngs.iter_mut().map(|r| 10.0 + 30.0 * r.unit()).collect();
    let mut sequence = vec![0i64; config.hosts];
    let ticks = config.duration.as_secs();
    let every = |d: Duration, t: u64| d.as_secs() > 0 && t % d.as_secs() == 0;
    for t in 0..=ticks {
        let now = config.start_ms + (t as i64) * 1000;
        let since = Duration::from_secs(t);
        for (h, shape) in shapes.iter().enumerate() {
            let down = config.faults.iter().any(
                |f| matches!(f, Fault::HeartbeatsStop { host, at } if *host == h && since >= *at),
            );
            if down {
                continue;
            }
            if every(config.discovery_interval, t) {
                for d in discovery(shape, now) {
                    emit(Record::Discovery(d));
                }
            }
            if every(config.heartbeat_interval, t) {
                sequence[h] += 1;
                emit(Record::Heartbeat(Heartbeat {
                    id: String::new(),
                    collector: shape.name.clone(),
                    root_host: shape.name.clone(),
                    time: now,
                    interval_seconds: config.heartbeat_interval.as_secs() as i32,
                    sequence: sequence[h],
                    version: env!("CARGO_PKG_VERSION").to_string(),
                }));
            }
            let rng = &mut rngs[h];
            if every(config.perf_interval, t) {
                cpu[h] = (cpu[h] + (rng.unit() - 0.5) * 10.0).clamp(0.0, 100.0);
                let sample = |object: &str, counter: &str, instance: &str, value: f64| PerfSample {
                    time: now,
                    object: object.into(),
                    counter: counter.into(),
                    instance: instance.into(),
                    value,
                };
                let mut samples = vec![
                    sample("Processor", "% Processor Time", "_Total", cpu[h]),
                    sample("Processor", "% IO Wait", "_Total", 5.0 * rng.unit()),
                    sample("Memory", "% Available Memory", "", 40.0 + 20.0 * rng.unit()),
                    sample("System", "Load Average 1m", "", 8.0 * cpu[h] / 100.0),
                ];
                for (mount, _) in &shape.filesystems {
                    let mut free = 50.0 + 10.0 * ((h as f64 + mount.len() as f64).sin());
                    for f in &config.faults {
                        if let Fault::DiskFilling {
                            host,
                            mount: m,
                            at,
                            over,
                        } = f
                        {
                            if *host == h && m == mount && since >= *at {
                                let progress =
                                    (since - *at).as_secs_f64() / over.as_secs_f64().max(1.0);
                                free *= (1.0 - progress).max(0.0);
                            }
                        }
                    }
                    samples.push(sample("Filesystem", "% Free Space", mount, free));
                }
                for d in &shape.disks {
                    samples.push(sample("BlockDevice", "% Busy", d, 20.0 * rng.unit()));
                }
                for n in &shape.interfaces {
                    samples.push(sample(
                        "NetworkInterface",
                        "Bytes Received/sec",
                        n,
                        1e6 * rng.unit(),
                    ));
                    samples.push(sample(
                        "NetworkInterface",
                        "Bytes Sent/sec",
                        n,
                        1e6 * rng.unit(),
                    ));
                }
                for u in &shape.services {
                    let unit = format!("{u}.service");
                    let stopped = config.faults.iter().any(|f| matches!(f, Fault::ServiceStops { host, unit: x, at } if *host == h && (x == u || *x == unit) && since >= *at));
                    samples.push(sample(
                        "Service",
                        "Running",
                        &unit,
                        if stopped { 0.0 } else { 1.0 },
                    ));
                    samples.push(sample("Service", "Automatic", &unit, 1.0));
                }
                emit(Record::Perf(PerfBatch {
                    id: String::new(),
                    collector: shape.name.clone(),
                    root_host: shape.name.clone(),
                    samples,
                }));
            }
            let mut events = Vec::new();
            let per_minute = config.events_per_host_minute as u64;
            if per_minute > 0 && rng.below(60) < per_minute {
                let error = rng.below(10) == 0;
                events.push(journal(
                    now,
                    if error {
                        EventLevel::Error
                    } else {
                        EventLevel::Information
                    },
                    &shape.services[rng.below(shape.services.len() as u64) as usize],
                    rng,
                ));
            }
            for f in &config.faults {
                if let Fault::EventBurst {
                    host,
                    at,
                    over,
                    per_second,
                } = f
                {
                    if *host == h && since >= *at && since < *at + *over {
                        for _ in 0..*per_second {
                            events.push(journal(now, EventLevel::Error, "app-burst", rng));
                        }
                    }
                }
            }
            if !events.is_empty() {
                emit(Record::Events(EventBatch {
                    id: String::new(),
                    collector: shape.name.clone(),
                    root_host: shape.name.clone(),
                    events,
                }));
            }
        }
    }
}

fn journal(time: i64, level: EventLevel, unit: &str, rng: &mut Rng) -> Event {
    let message = match level {
        EventLevel::Error => format!(
            "{unit}.service: Main process exited, code=exited, status={}/FAILURE",
            1 + rng.below(3)
        ),
        _ => format!("{unit}.service: request handled in {} ms", rng.below(200)),
    };
    Event {
        time,
        channel: "journal".into(),
        source: format!("{unit}.service"),
        event_id: 0,
        level,
        message,
        params: vec![],
        properties: BTreeMap::from([("_SYSTEMD_UNIT".to_string(), format!("{unit}.service"))]),
    }
}

/// Hosts a fault list refers to that are outside the fleet.
pub fn check_faults(config: &FleetConfig) -> Result<(), String> {
    for f in &config.faults {
        if f.host() >= config.hosts {
            return Err(format!(
                "{f:?}: host {} is outside the fleet of {} hosts",
                f.host(),
                config.hosts
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> FleetConfig {
        FleetConfig {
            hosts: 3,
            instances_per_host: 20,
            duration: Duration::from_secs(180),
            ..FleetConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_records() {
        assert_eq!(run(&small()), run(&small()));
        let other = FleetConfig { seed: 2, ..small() };
        assert_ne!(run(&small()), run(&other));
    }

    #[test]
    fn hosts_have_the_requested_instance_count() {
        for n in [8, 20, 100, 250] {
            let d = discovery(&host_shape(0, n), 0);
            // The computer appears in two sources; count distinct instances.
            let mut distinct = std::collections::BTreeSet::new();
            for s in &d {
                for i in &s.instances {
                    distinct.insert(format!("{}|{:?}", i.class, i.keys));
                }
            }
            assert_eq!(distinct.len(), n, "{n}");
        }
    }

    #[test]
    fn faults_show_in_the_data() {
        let mut c = small();
        c.faults = vec![
            Fault::parse("disk-filling:1:/:60s:60s").expect("parses"),
            Fault::parse("service-stops:0:sshd:120s").expect("parses"),
            Fault::parse("heartbeats-stop:2:60s").expect("parses"),
            Fault::parse("event-burst:0:30s:10s:5").expect("parses"),
        ];
        check_faults(&c).expect("in the fleet");
        let records = run(&c);
        let free_at = |t: i64| {
            records.iter().find_map(|r| match r {
                Record::Perf(p)
                    if p.root_host == "host-00001"
                        && p.samples[0].time == c.start_ms + t * 1000 =>
                {
                    p.samples
                        .iter()
                        .find(|s| s.counter == "% Free Space" && s.instance == "/")
                        .map(|s| s.value)
                }
                _ => None,
            })
        };
        assert!(free_at(60).expect("sample") > 1.0);
        assert!(
            free_at(120).expect("sample") < 1e-9,
            "full after the fill time"
        );
        let running = records.iter().rev().find_map(|r| match r {
            Record::Perf(p) if p.root_host == "host-00000" => p
                .samples
                .iter()
                .find(|s| s.counter == "Running" && s.instance == "sshd.service")
                .map(|s| s.value),
            _ => None,
        });
        assert_eq!(running, Some(0.0));
        let last_heartbeat = records
            .iter()
            .filter_map(|r| match r {
                Record::Heartbeat(h) if h.root_host == "host-00002" => Some(h.time),
                _ => None,
            })
            .max();
        assert!(last_heartbeat.expect("some") < c.start_ms + 60_000);
        let burst = records.iter().filter(|r| matches!(r, Record::Events(e) if e.root_host == "host-00000" && e.events.iter().any(|x| x.source == "app-burst.service"))).count();
        assert_eq!(burst, 10);
        assert!(Fault::parse("disk-filling:x").is_err());
        assert!(check_faults(&FleetConfig {
            faults: vec![Fault::HeartbeatsStop {
                host: 9,
                at: Duration::ZERO
            }],
            ..small()
        })
        .is_err());
    }
}
