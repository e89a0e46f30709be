//! Test harness: a real Kafka-protocol broker on a free port, and the two bus backends
//! behind one factory so that one conformance suite runs against both.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use healthstream_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use healthstream_bus::kafka::{KafkaBus, KafkaConfig};
use healthstream_bus::Bus;
use healthstream_topology::Topology;

/// Root of the repository.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A shipped topology.
pub fn topology(name: &str) -> Topology {
    Topology::load(repo().join("topologies").join(format!("{name}.toml")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Kafka-compatible broker used by the tests (`nisshi`, installed by the README's test
/// command): `HEALTHSTREAM_NISSHI`, else the install cache, else `PATH`.
pub fn nisshi_binary() -> PathBuf {
    if let Ok(p) = std::env::var("HEALTHSTREAM_NISSHI") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("HEALTHSTREAM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                .join(".cache/healthstream")
        })
        .join("nisshi/bin/nisshi");
    if cache.exists() {
        return cache;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nisshi"))
            .find(|p| p.exists())
    }) {
        return found;
    }
    panic!(
        "the Kafka-protocol test broker (nisshi) is not installed: run the README's test command \
         (`make test`), which installs it, or set HEALTHSTREAM_NISSHI to its path"
    );
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A broker process, killed on drop.
pub struct Broker {
    child: Child,
    pub bootstrap: String,
    _log_dir: tempfile::TempDir,
}

impl Broker {
    /// Starts an in-memory broker on a free port and waits until it accepts connections.
    pub fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log_dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(log_dir.path().join("broker.log")).expect("log file");
        let child = Command::new(nisshi_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://nisshi/",
                "--group-initial-rebalance-delay",
                "0s",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on {bootstrap} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            child,
            bootstrap,
            _log_dir: log_dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test's bus lives; `connect` gives a fresh connection (a "restarted process").
pub enum Backend {
    Embedded {
        dir: tempfile::TempDir,
        topology: Topology,
    },
    Kafka {
        broker: Broker,
        topology: Topology,
    },
}

impl Backend {
    pub fn embedded() -> Backend {
        Backend::Embedded {
            dir: tempfile::tempdir().expect("tempdir"),
            topology: topology("embedded"),
        }
    }

    pub fn kafka() -> Backend {
        Backend::Kafka {
            broker: Broker::start(),
            topology: topology("embedded"),
        }
    }

    /// A new bus handle over the same data: for the embedded backend the logs are
    /// reopened from disk, as after a process restart.
    pub async fn connect(&self) -> Arc<dyn Bus> {
        let bus: Arc<dyn Bus> = match self {
            Backend::Embedded { dir, topology } => Arc::new(
                EmbeddedBus::open(dir.path(), topology, EmbeddedOptions::default())
                    .expect("embedded bus"),
            ),
            Backend::Kafka { broker, topology } => {
                let mut config = KafkaConfig::new(broker.bootstrap.clone());
                config.statistics_interval = Duration::from_secs(1);
                Arc::new(KafkaBus::new(config, topology.clone()).expect("kafka bus"))
            }
        };
        bus.ensure_topics().await.expect("topics");
        bus
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded { .. } => "embedded",
            Backend::Kafka { .. } => "kafka",
        }
    }
}
