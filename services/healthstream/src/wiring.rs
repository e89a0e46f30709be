//! Wiring: the bus, the stages, the HTTP endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use healthstream_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use healthstream_bus::kafka::{KafkaBus, KafkaConfig};
use healthstream_bus::Bus;
use healthstream_contracts::Topic;
use healthstream_ingest::{IngestLimits, INGEST_TOPICS};
use healthstream_store::Store;
use healthstream_telemetry::Readiness;
use healthstream_topology::{Service, Topology};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the health stage reads: everything about a hosting tree, co-partitioned.
const HEALTH_TOPICS: [Topic; 7] = [
    Topic::Instances,
    Topic::Perf,
    Topic::Events,
    Topic::Heartbeats,
    Topic::Operations,
    Topic::TaskResults,
    Topic::RollupMembers,
];

/// Which bus to use.
pub enum BusChoice {
    Embedded {
        dir: PathBuf,
        sync_writes: bool,
    },
    Kafka {
        brokers: String,
        options: BTreeMap<String, String>,
    },
}

/// The parts a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Ingest,
    Discovery,
    Health,
    Connector,
}

pub const ALL_SERVICES: [Part; 4] = [Part::Ingest, Part::Discovery, Part::Health, Part::Connector];

pub fn open_bus(choice: BusChoice, topology: &Topology) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match choice {
        BusChoice::Embedded { dir, sync_writes } => Arc::new(
            EmbeddedBus::open(&dir, topology, EmbeddedOptions { sync_writes })
                .with_context(|| format!("opening the embedded bus in {}", dir.display()))?,
        ),
        BusChoice::Kafka { brokers, options } => {
            let mut config = KafkaConfig::new(brokers);
            config.options = options;
            Arc::new(KafkaBus::new(config, topology.clone())?)
        }
    })
}

type StageTask = JoinHandle<Result<(), healthstream_stage::StageError>>;

/// Run a stage on its topics until shutdown; a failure is logged and returned on stop.
fn spawn_stage<P: healthstream_stage::Processor>(
    stage: P,
    bus: &Arc<dyn Bus>,
    group: String,
    topics: &[Topic],
    store: Store,
    readiness: &Readiness,
    shutdown: &watch::Receiver<bool>,
) -> StageTask {
    let (bus, readiness, shutdown) = (bus.clone(), readiness.clone(), shutdown.clone());
    let topics = topics.to_vec();
    tokio::spawn(async move {
        let name = stage.name();
        let result =
            healthstream_stage::run(stage, bus, &group, &topics, store, readiness, shutdown).await;
        if let Err(e) = &result {
            tracing::error!(stage = name, error = %e, "stage stopped");
        }
        result
    })
}

/// How many health stage workers a process runs: as asked, or one per core; never more
/// than the partitions (a worker without a partition would only wait).
pub fn health_worker_count(asked: usize, partitions: i32) -> usize {
    let wanted = if asked == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        asked
    };
    wanted.clamp(1, partitions.max(1) as usize)
}

/// How the health processor of a process runs.
#[derive(Debug, Clone, Copy)]
pub struct HealthOptions {
    /// Workers, each with its share of the partitions (0: one per core, at most one per
    /// partition).
    pub workers: usize,
    /// State history, closed alerts and finished commands kept (older ones go; each
    /// monitor's latest change stays); `None`: all.
    pub history_retention: Option<Duration>,
}

/// How often the health store is groomed.
const GROOM_PERIOD: Duration = Duration::from_secs(3600);

/// A running process.
pub struct Runtime {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    stages: Vec<StageTask>,
    followers: Vec<JoinHandle<Result<(), healthstream_packfeed::FeedError>>>,
    plan_followers: Vec<JoinHandle<Result<(), healthstream_bus::BusError>>>,
    /// Background upkeep (grooming), stopped with the stages.
    upkeep: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    bus: Arc<dyn Bus>,
}

impl Runtime {
    pub async fn start(
        choice: BusChoice,
        topology: Topology,
        data_dir: &Path,
        listen: SocketAddr,
        parts: &[Part],
        health: HealthOptions,
    ) -> anyhow::Result<Runtime> {
        let bus = open_bus(choice, &topology)?;
        bus.ensure_topics().await.context("preparing topics")?;
        let readiness = Readiness::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut app = healthstream_telemetry::router(readiness.clone());
        let mut stages = Vec::new();
        let mut followers = Vec::new();
        let mut plan_followers = Vec::new();
        let mut upkeep = Vec::new();
        // Every processor follows the pack topic: imports and upgrades apply while it runs.
        let packs = if parts
            .iter()
            .any(|p| matches!(p, Part::Discovery | Part::Health | Part::Connector))
        {
            let (rx, task) = healthstream_packfeed::follow(bus.clone(), shutdown_rx.clone())
                .context("following the pack topic")?;
            followers.push(task);
            Some(rx)
        } else {
            None
        };
        if let (true, Some(packs)) = (parts.contains(&Part::Connector), &packs) {
            topology.check_produces(Service::Connector, Topic::Packs)?;
            topology.check_consumes(Service::Connector, Topic::Packs)?;
            let api = healthstream_connector::PackApi::new(bus.clone(), packs.clone());
            let seeded = healthstream_connector::seed(&api, &healthstream_model::SHIPPED)
                .await
                .map_err(|e| anyhow::anyhow!("importing the shipped packs: {e}"))?;
            if !seeded.is_empty() {
                tracing::info!(packs = ?seeded, "shipped packs imported");
            }
            app = app.merge(healthstream_connector::router(api));
        }
        if let (true, Some(packs)) = (parts.contains(&Part::Discovery), &packs) {
            topology.check_consumes(Service::Discovery, Topic::Discovery)?;
            topology.check_consumes(Service::Discovery, Topic::Packs)?;
            topology.check_produces(Service::Discovery, Topic::Instances)?;
            topology.check_produces(Service::Discovery, Topic::CollectionPlans)?;
            // Classes are checked against the packs: read them all before the first record.
            let mut rx = packs.clone();
            healthstream_packfeed::catch_up(
                bus.as_ref(),
                &mut rx,
                std::time::Duration::from_secs(60),
            )
            .await
            .context("reading the pack topic before discovery starts")?;
            let group = topology.group(Service::Discovery)?.to_string();
            let dir = data_dir.join("state").join("discovery");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let store = Store::open(&dir, healthstream_discovery::DISCOVERY_CFS)?;
            app = app.merge(healthstream_discovery::api::router(
                store.clone(),
                packs.clone(),
            ));
            let stage = healthstream_discovery::DiscoveryStage::new(
                bus.partitions(Topic::Discovery),
                bus.partitions(Topic::DeadLetters),
                packs.clone(),
            );
            if rx.borrow().store.packs().next().is_some() {
                stages.push(spawn_stage(
                    stage,
                    &bus,
                    group,
                    &[Topic::Discovery],
                    store,
                    &readiness,
                    &shutdown_rx,
                ));
            } else {
                // No packs yet (the connector imports them at its first start): discovery
                // data would name unknown classes. Wait for them, not ready meanwhile.
                readiness.register("packs");
                readiness.set_not_ready("packs", "waiting for the connector to import the packs");
                let (bus, readiness, mut stop) =
                    (bus.clone(), readiness.clone(), shutdown_rx.clone());
                stages.push(tokio::spawn(async move {
                    loop {
                        if rx.borrow_and_update().store.packs().next().is_some() {
                            break;
                        }
                        tracing::warn!("no packs on the pack topic yet: discovery waits for them");
                        tokio::select! {
                            r = rx.changed() => if r.is_err() { return Ok(()) },
                            _ = stop.changed() => return Ok(()),
                            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                        }
                    }
                    readiness.set_ready("packs");
                    spawn_stage(
                        stage,
                        &bus,
                        group,
                        &[Topic::Discovery],
                        store,
                        &readiness,
                        &stop,
                    )
                    .await
                    .unwrap_or_else(|e| {
                        Err(healthstream_stage::StageError::Internal {
                            stage: "discovery".into(),
                            message: e.to_string(),
                        })
                    })
                }));
            }
        }
        if parts.contains(&Part::Ingest) {
            for topic in INGEST_TOPICS {
                topology.check_produces(Service::Ingest, topic)?;
            }
            app = app.merge(healthstream_ingest::router(
                bus.clone(),
                IngestLimits::default(),
            )?);
            topology.check_consumes(Service::Ingest, Topic::CollectionPlans)?;
            let (plans, task) =
                healthstream_ingest::plans::follow_plans(bus.clone(), shutdown_rx.clone())
                    .context("following the collection plans")?;
            plan_followers.push(task);
            app = app.merge(healthstream_ingest::plans::router(plans));
            topology.check_consumes(Service::Ingest, Topic::Commands)?;
            topology.check_consumes(Service::Ingest, Topic::TaskResults)?;
            let (commands, task) =
                healthstream_ingest::commands::follow_commands(bus.clone(), shutdown_rx.clone())
                    .context("following the commands")?;
            plan_followers.push(task);
            app = app.merge(healthstream_ingest::commands::router(commands));
        }
        if parts.contains(&Part::Health) {
            for topic in HEALTH_TOPICS {
                topology.check_consumes(Service::Health, topic)?;
            }
            topology.check_produces(Service::Health, Topic::State)?;
            topology.check_produces(Service::Health, Topic::Alerts)?;
            let group = topology.group(Service::Health)?.to_string();
            let dir = data_dir.join("state").join("health");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let store = healthstream_health::open_store(&dir)?;
            app = app.merge(healthstream_health::router(
                store.clone(),
                bus.partitions(Topic::Perf),
            ));
            topology.check_produces(Service::Health, Topic::Operations)?;
            app = app.merge(healthstream_health::operations_router(
                store.clone(),
                bus.producer()?,
                bus.partitions(Topic::Operations),
            ));
            if let Some(packs) = &packs {
                topology.check_consumes(Service::Health, Topic::Packs)?;
                app = app.merge(healthstream_health::model_router(
                    packs.clone(),
                    store.clone(),
                    bus.partitions(Topic::Perf),
                ));
            }
            let Some(packs) = &packs else {
                anyhow::bail!("the health stage needs the packs");
            };
            topology.check_produces(Service::Health, Topic::RollupMembers)?;
            topology.check_produces(Service::Health, Topic::Commands)?;
            // Workers of one process share its store: every key they write belongs to one
            // partition (or is the same for all), and the group gives each its partitions.
            if let Some(retention) = health.history_retention {
                upkeep.push(tokio::spawn(healthstream_health::groom_periodically(
                    store.clone(),
                    retention,
                    GROOM_PERIOD,
                    shutdown_rx.clone(),
                )));
            }
            for _ in 0..health_worker_count(health.workers, bus.partitions(Topic::Perf)) {
                let stage = healthstream_health::HealthStage::new(
                    bus.partitions(Topic::Perf),
                    packs.clone(),
                );
                stages.push(spawn_stage(
                    stage,
                    &bus,
                    group.clone(),
                    &HEALTH_TOPICS,
                    store.clone(),
                    &readiness,
                    &shutdown_rx,
                ));
            }
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local_addr = listener.local_addr()?;
        let mut rx = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            let graceful = async move {
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        Ok(Runtime {
            local_addr,
            shutdown,
            stages,
            followers,
            plan_followers,
            upkeep,
            server,
            bus,
        })
    }

    /// The bus the services run on.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// Stops the stages after their current record, then the server; syncs the bus.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for stage in self.stages {
            match stage.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!(e));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!("stage task: {e}"));
                }
            }
        }
        for f in self.followers {
            match f.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!(e));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!("pack feed task: {e}"));
                }
            }
        }
        for f in self.plan_followers {
            if let Ok(Err(e)) = f.await {
                first_error.get_or_insert_with(|| anyhow::anyhow!(e));
            }
        }
        for task in self.upkeep {
            let _ = task.await;
        }
        let _ = self.server.await;
        self.bus.close().await?;
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
