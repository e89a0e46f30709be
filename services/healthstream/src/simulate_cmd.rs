//! `healthstream simulate`: a seeded fleet posting to a deployment's ingest endpoint.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use healthstream_contracts::records::Record as ContractRecord;
use healthstream_contracts::Codec;
use healthstream_fleet::{check_faults, generate, Fault, FleetConfig, Record};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Base URL of the ingest endpoint.
    #[arg(
        long,
        env = "HEALTHSTREAM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Number of hosts.
    #[arg(long, default_value_t = 10)]
    pub hosts: usize,
    /// Instances per host (at least 8).
    #[arg(long, default_value_t = 100)]
    pub instances_per_host: usize,
    /// Simulated time to cover (e.g. `10m`).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Perf sample interval.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub perf_interval: Duration,
    /// Journal events per host per minute.
    #[arg(long, default_value_t = 2)]
    pub events_per_host_minute: u32,
    /// Seed: the same seed gives the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A scripted fault (repeatable): `disk-filling:HOST:MOUNT:AT:OVER`,
    /// `service-stops:HOST:UNIT:AT`, `heartbeats-stop:HOST:AT`, `event-burst:HOST:AT:OVER:PER_SECOND`.
    #[arg(long = "fault", value_parser = Fault::parse)]
    pub faults: Vec<Fault>,
    /// Send in simulated time (one simulated second per second) instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<usize>,
}

const BATCH: usize = 500;

pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = FleetConfig {
        seed: args.seed,
        hosts: args.hosts,
        instances_per_host: args.instances_per_host,
        duration: args.duration,
        perf_interval: args.perf_interval,
        events_per_host_minute: args.events_per_host_minute,
        faults: args.faults.clone(),
        ..FleetConfig::default()
    };
    check_faults(&config).map_err(|e| anyhow::anyhow!(e))?;
    let mut records = Vec::new();
    generate(&config, |r| records.push(r));
    if let Some(max) = args.max_records {
        records.truncate(max);
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut counts = [0usize; 4];
    let mut pending: [Vec<Record>; 4] = Default::default();
    let first_time = records.first().map_or(0, Record::time);
    let mut current_second = first_time;
    for r in records {
        if r.time() != current_second {
            flush(&client, &args.server, &mut pending, &mut counts).await?;
            current_second = r.time();
            if args.realtime {
                let due = Duration::from_millis((current_second - first_time).max(0) as u64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let slot = match &r {
            Record::Discovery(_) => 0,
            Record::Perf(_) => 1,
            Record::Events(_) => 2,
            Record::Heartbeat(_) => 3,
        };
        pending[slot].push(r);
        if pending[slot].len() >= BATCH {
            flush(&client, &args.server, &mut pending, &mut counts).await?;
        }
    }
    flush(&client, &args.server, &mut pending, &mut counts).await?;
    let secs = started.elapsed().as_secs_f64();
    let total: usize = counts.iter().sum();
    println!(
        "sent {total} records in {secs:.1} s ({:.0}/s): {} discovery, {} perf batches, {} event batches, {} heartbeats",
        total as f64 / secs.max(1e-9),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    Ok(())
}

async fn flush(
    client: &reqwest::Client,
    server: &str,
    pending: &mut [Vec<Record>; 4],
    counts: &mut [usize; 4],
) -> anyhow::Result<()> {
    for (slot, batch) in pending.iter_mut().enumerate() {
        if batch.is_empty() {
            continue;
        }
        let records = std::mem::take(batch);
        let (path, body) = match slot {
            0 => (
                "discovery",
                container(
                    records
                        .iter()
                        .filter_map(|r| {
                            if let Record::Discovery(d) = r {
                                Some(d.clone())
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>(),
                )?,
            ),
            1 => (
                "perf",
                container(
                    records
                        .iter()
                        .filter_map(|r| {
                            if let Record::Perf(d) = r {
                                Some(d.clone())
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>(),
                )?,
            ),
            2 => (
                "events",
                container(
                    records
                        .iter()
                        .filter_map(|r| {
                            if let Record::Events(d) = r {
                                Some(d.clone())
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>(),
                )?,
            ),
            _ => (
                "heartbeats",
                container(
                    records
                        .iter()
                        .filter_map(|r| {
                            if let Record::Heartbeat(d) = r {
                                Some(d.clone())
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>(),
                )?,
            ),
        };
        post(client, server, path, body).await?;
        counts[slot] += records.len();
    }
    Ok(())
}

fn container<R: ContractRecord>(records: Vec<R>) -> anyhow::Result<Vec<u8>> {
    Codec::shared()
        .container(&records)
        .map_err(|e| anyhow::anyhow!(e.to_string()))
}

/// Post one batch; on 503 wait as told and send it again (ingest is all-or-none).
pub async fn post(
    client: &reqwest::Client,
    server: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let url = format!("{}/v1/ingest/{path}", server.trim_end_matches('/'));
    for attempt in 0..10 {
        let resp = client
            .post(&url)
            .header("content-type", "application/avro")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 503 && attempt < 9 {
            tokio::time::sleep(Duration::from_secs(retry.unwrap_or(1))).await;
            continue;
        }
        bail!("{url}: {status}: {text}");
    }
    bail!("{url}: still unavailable after 10 attempts")
}
