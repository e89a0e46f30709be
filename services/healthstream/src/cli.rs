//! Command-line interface.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use healthstream_contracts::{Contract, Topic};
use healthstream_topology::Topology;

use crate::wiring::{self, BusChoice, Runtime};

/// healthstream: model-based monitoring as an event-sourced stream processor.
#[derive(Debug, Parser)]
#[command(name = "healthstream", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every service in one process: over the embedded bus when no brokers are
    /// given, otherwise against Kafka.
    Run(RunArgs),
    /// Run the ingest service alone (collector-facing HTTP -> topics).
    Ingest(RunArgs),
    /// Run the instance-space processor alone.
    Discovery(RunArgs),
    /// Run the health processor alone; `health explain INSTANCE` shows an instance's monitor tree.
    Health(HealthArgs),
    /// Run the connector service alone (the operations API: packs).
    Connector(RunArgs),
    /// Create the topology's topics on the Kafka brokers and check existing ones.
    Topics(BusArgs),
    /// List the contracts: topics, schema files and Confluent schema ids.
    Schemas,
    /// Run the reference Linux collector on this machine.
    Collect(CollectArgs),
    /// Simulate a fleet of hosts sending to a deployment (seeded, reproducible, bounded).
    Simulate(crate::simulate_cmd::SimulateArgs),
    /// Measure the whole pipeline, embedded, on a generated fleet.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Read the instance space of a running deployment.
    Instances {
        #[command(subcommand)]
        command: crate::instances_cmd::InstancesCommand,
    },
    /// Management packs: validate, explain overrides, import SCOM packs, manage a deployment's packs.
    Pack {
        #[command(subcommand)]
        command: crate::pack_cmd::PackCommand,
    },
}

/// Where the bus is and how it is laid out.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// Kafka bootstrap brokers (`host:port,...`). Without it the embedded bus is used.
    #[arg(long, env = "HEALTHSTREAM_BROKERS")]
    pub brokers: Option<String>,
    /// Topology file. Default: the shipped `embedded` topology, or `single-broker` with
    /// `--brokers`.
    #[arg(long, env = "HEALTHSTREAM_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// Raw librdkafka option `key=value`, applied last (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Directory of the state stores and (embedded) the bus logs.
    #[arg(long, env = "HEALTHSTREAM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP endpoint (API, ingest, `/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "HEALTHSTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// fsync every embedded bus write (survives power loss; slower).
    #[arg(long)]
    pub sync_writes: bool,
    /// Also run the reference collector on this machine, sending to this process.
    #[arg(long)]
    pub collect: bool,
    /// Health processor workers in this process, each with its share of the partitions
    /// (0: one per core, at most one per partition).
    #[arg(long, env = "HEALTHSTREAM_HEALTH_WORKERS", default_value_t = 0)]
    pub health_workers: usize,
    /// Days of monitor state history, closed alerts and finished commands kept (each
    /// monitor's latest change and every open alert stay); 0 keeps all of it.
    #[arg(long, env = "HEALTHSTREAM_HISTORY_RETENTION_DAYS", default_value_t = 7)]
    pub history_retention_days: u64,
}

/// `healthstream health`: run the health processor, or explain an instance's health.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HealthArgs {
    #[command(subcommand)]
    pub command: Option<HealthCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Ingest to durable state-change event: values/s, CPU seconds per million values,
    /// latency p50/p99.
    Pipeline(crate::bench_cmd::BenchArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum HealthCommand {
    /// The monitor tree of an instance: each monitor's state, since when, and the data or the
    /// child that set it.
    Explain {
        /// Instance id.
        instance: String,
        #[command(flatten)]
        server: crate::pack_cmd::ServerArgs,
    },
}

/// `healthstream collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Base URL of ingest.
    #[arg(
        long,
        env = "HEALTHSTREAM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// This host's principal name; default: the host name.
    #[arg(long)]
    pub host: Option<String>,
    /// Address of the collector's `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "127.0.0.1:9104")]
    pub listen: SocketAddr,
    /// Records buffered at most while the pipeline is unreachable (oldest dropped beyond).
    #[arg(long, default_value_t = 100_000)]
    pub buffer_records: usize,
}

const EMBEDDED_TOPOLOGY: &str = include_str!("../../../topologies/embedded.toml");
const SINGLE_BROKER_TOPOLOGY: &str = include_str!("../../../topologies/single-broker.toml");

impl BusArgs {
    pub fn topology(&self) -> anyhow::Result<Topology> {
        Ok(match (&self.topology, &self.brokers) {
            (Some(path), _) => Topology::load(path)?,
            (None, None) => {
                Topology::parse(EMBEDDED_TOPOLOGY, "topologies/embedded.toml".as_ref())?
            }
            (None, Some(_)) => Topology::parse(
                SINGLE_BROKER_TOPOLOGY,
                "topologies/single-broker.toml".as_ref(),
            )?,
        })
    }

    pub fn choice(
        &self,
        data_dir: &std::path::Path,
        sync_writes: bool,
    ) -> anyhow::Result<BusChoice> {
        match &self.brokers {
            None => {
                if !self.kafka_options.is_empty() {
                    bail!("--kafka-option needs --brokers");
                }
                Ok(BusChoice::Embedded {
                    dir: data_dir.join("bus"),
                    sync_writes,
                })
            }
            Some(brokers) => {
                let mut options = BTreeMap::new();
                for kv in &self.kafka_options {
                    let (k, v) = kv
                        .split_once('=')
                        .with_context(|| format!("--kafka-option {kv:?} is not KEY=VALUE"))?;
                    options.insert(k.trim().to_string(), v.trim().to_string());
                }
                Ok(BusChoice::Kafka {
                    brokers: brokers.clone(),
                    options,
                })
            }
        }
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => serve(args, &wiring::ALL_SERVICES).await,
        Command::Ingest(args) => serve(args, &[wiring::Part::Ingest]).await,
        Command::Discovery(args) => serve(args, &[wiring::Part::Discovery]).await,
        Command::Health(args) => match args.command {
            Some(HealthCommand::Explain { instance, server }) => {
                explain_health(&instance, &server.server).await
            }
            None => serve(args.run, &[wiring::Part::Health]).await,
        },
        Command::Connector(args) => serve(args, &[wiring::Part::Connector]).await,
        Command::Topics(args) => {
            if args.brokers.is_none() {
                bail!("topics needs --brokers (the embedded bus creates its topics itself)");
            }
            let topology = args.topology()?;
            let bus = wiring::open_bus(args.choice(std::path::Path::new("."), false)?, &topology)?;
            bus.ensure_topics().await?;
            for spec in topology.topics() {
                println!(
                    "{:<34} partitions={:<3} cleanup={:<8} key={:?}",
                    spec.topic.name(),
                    spec.partitions,
                    spec.cleanup_policy.as_kafka(),
                    spec.key
                );
            }
            Ok(())
        }
        Command::Pack { command } => crate::pack_cmd::run(command).await,
        Command::Instances { command } => crate::instances_cmd::run(command).await,
        Command::Simulate(args) => crate::simulate_cmd::run(args).await,
        Command::Bench {
            command: BenchCommand::Pipeline(args),
        } => crate::bench_cmd::run(args).await,
        Command::Collect(args) => collect(args).await,
        Command::Schemas => {
            println!(
                "{:<32} {:<18} {:>8} {:>10}",
                "topic", "contract", "version", "schema id"
            );
            for topic in Topic::ALL {
                let c: Contract = topic.contract();
                for v in c.versions() {
                    println!(
                        "{:<32} {:<18} {:>8} {:>10}",
                        topic.name(),
                        c.name(),
                        v.version,
                        v.schema_id
                    );
                }
            }
            Ok(())
        }
    }
}

async fn serve(args: RunArgs, parts: &[wiring::Part]) -> anyhow::Result<()> {
    let topology = args.bus.topology()?;
    let choice = args.bus.choice(&args.data_dir, args.sync_writes)?;
    let runtime = Runtime::start(
        choice,
        topology,
        &args.data_dir,
        args.listen,
        parts,
        wiring::HealthOptions {
            workers: args.health_workers,
            history_retention: (args.history_retention_days > 0)
                .then(|| std::time::Duration::from_secs(args.history_retention_days * 86_400)),
        },
    )
    .await?;
    tracing::info!(listen = %runtime.local_addr, "healthstream is up; Ctrl-C or SIGTERM stops it");
    let (stop_collector, stopped) = tokio::sync::watch::channel(false);
    let collector = args.collect.then(|| {
        let config = healthstream_collector::CollectorConfig::new(
            &format!("http://{}", runtime.local_addr),
            &healthstream_collector::local_host_name(),
        );
        tokio::spawn(healthstream_collector::Collector::new(config).run(stopped))
    });
    eprintln!(
        "healthstream is running: ingest at http://{addr}/v1/ingest/perf, metrics at http://{addr}/metrics (Ctrl-C stops it)",
        addr = runtime.local_addr
    );
    wait_for_stop_signal().await?;
    let _ = stop_collector.send(true);
    if let Some(c) = collector {
        let _ = c.await;
    }
    runtime.stop().await
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let host = args
        .host
        .unwrap_or_else(healthstream_collector::local_host_name);
    let mut config = healthstream_collector::CollectorConfig::new(&args.server, &host);
    config.buffer_records = args.buffer_records;
    let readiness = healthstream_telemetry::Readiness::new();
    let app = healthstream_telemetry::router(readiness);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await;
    });
    eprintln!(
        "collector for {host} sending to {} (metrics on http://{}/metrics)",
        args.server, args.listen
    );
    let task = tokio::spawn(healthstream_collector::Collector::new(config).run(stopped));
    wait_for_stop_signal().await?;
    let _ = stop.send(true);
    let _ = task.await;
    let _ = server.await;
    Ok(())
}

/// Ctrl-C (SIGINT) or SIGTERM (what container runtimes send): stop cleanly.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing the records in flight");
    Ok(())
}

async fn explain_health(instance: &str, server: &str) -> anyhow::Result<()> {
    let v = crate::instances_cmd::get(server, &format!("/v1/health/{instance}/tree"), &[]).await?;
    fn show(n: &serde_json::Value, depth: usize) {
        let since = n["since"]
            .as_i64()
            .map(|t| format!(" since {t}"))
            .unwrap_or_default();
        let cause = n["cause"]
            .as_str()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        println!(
            "{}{} [{}] {}{since}{cause}",
            "  ".repeat(depth),
            n["monitor_id"].as_str().unwrap_or(""),
            n["kind"].as_str().unwrap_or(""),
            n["state"].as_str().unwrap_or("")
        );
        for m in n["members"].as_array().into_iter().flatten() {
            let flags = [
                ("in maintenance", "in_maintenance"),
                ("unavailable", "unavailable"),
            ]
            .iter()
            .filter(|(_, f)| m[*f] == true)
            .map(|(text, _)| format!(", {text}"))
            .collect::<String>();
            println!(
                "{}member {} ({}): {}{flags}",
                "  ".repeat(depth + 1),
                m["member_id"].as_str().unwrap_or(""),
                m["class"].as_str().unwrap_or(""),
                m["state"].as_str().unwrap_or("")
            );
        }
        for c in n["children"].as_array().into_iter().flatten() {
            show(c, depth + 1);
        }
    }
    println!("{instance}");
    for n in v["tree"].as_array().into_iter().flatten() {
        show(n, 1);
    }
    Ok(())
}
