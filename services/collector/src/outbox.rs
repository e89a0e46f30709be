//! What the collector sends, buffered within a bound while the pipeline is unreachable: past
//! the bound the oldest batches are dropped, and counted.

use std::collections::VecDeque;
use std::time::Duration;

use healthstream_contracts::records::{
    DiscoveryData, EventBatch, Heartbeat, PerfBatch, TaskResult,
};
use healthstream_contracts::Codec;

use crate::metrics;

/// One batch to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    Discovery(DiscoveryData),
    Perf(PerfBatch),
    Events(EventBatch),
    Heartbeat(Heartbeat),
    TaskResult(TaskResult),
}

impl Batch {
    /// Kind label and ingest path.
    pub fn kind(&self) -> &'static str {
        match self {
            Batch::Discovery(_) => "discovery",
            Batch::Perf(_) => "perf",
            Batch::Events(_) => "events",
            Batch::Heartbeat(_) => "heartbeats",
            Batch::TaskResult(_) => "task-results",
        }
    }

    /// Records it counts for in the bound (samples, events, instances, or 1).
    pub fn weight(&self) -> usize {
        match self {
            Batch::Discovery(d) => d.instances.len().max(1),
            Batch::Perf(p) => p.samples.len().max(1),
            Batch::Events(e) => e.events.len().max(1),
            Batch::Heartbeat(_) | Batch::TaskResult(_) => 1,
        }
    }

    fn body(&self) -> Result<Vec<u8>, String> {
        let c = Codec::shared();
        match self {
            Batch::Discovery(d) => c.container(std::slice::from_ref(d)),
            Batch::Perf(p) => c.container(std::slice::from_ref(p)),
            Batch::Events(e) => c.container(std::slice::from_ref(e)),
            Batch::Heartbeat(h) => c.container(std::slice::from_ref(h)),
            Batch::TaskResult(r) => c.container(std::slice::from_ref(r)),
        }
        .map_err(|e| e.to_string())
    }
}

/// The bounded queue.
pub struct Outbox {
    queue: VecDeque<Batch>,
    weight: usize,
    /// Most records held.
    pub bound: usize,
}

impl Outbox {
    pub fn new(bound: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            weight: 0,
            bound,
        }
    }

    /// Queue a batch; drop the oldest beyond the bound.
    pub fn push(&mut self, b: Batch) {
        self.weight += b.weight();
        self.queue.push_back(b);
        while self.weight > self.bound {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.weight -= old.weight();
            metrics::DROPPED
                .with_label_values(&[old.kind()])
                .inc_by(old.weight() as u64);
        }
        metrics::BUFFERED.set(self.weight as i64);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Send what is queued, oldest first; stop at the first failure (kept for the next try).
    pub async fn flush(&mut self, client: &reqwest::Client, server: &str) -> Result<usize, String> {
        let mut sent = 0;
        while let Some(b) = self.queue.front() {
            let body = match b.body() {
                Ok(body) => body,
                Err(e) => {
                    // Cannot be encoded: never will be. Drop it, loudly.
                    tracing::error!(kind = b.kind(), error = %e, "batch cannot be encoded; dropped");
                    if let Some(old) = self.queue.pop_front() {
                        self.weight -= old.weight();
                        metrics::DROPPED
                            .with_label_values(&[old.kind()])
                            .inc_by(old.weight() as u64);
                    }
                    continue;
                }
            };
            let url = format!("{}/v1/ingest/{}", server.trim_end_matches('/'), b.kind());
            let resp = client
                .post(&url)
                .header("content-type", "application/avro")
                .timeout(Duration::from_secs(30))
                .body(body)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    if let Some(old) = self.queue.pop_front() {
                        self.weight -= old.weight();
                        metrics::SENT
                            .with_label_values(&[old.kind()])
                            .inc_by(old.weight() as u64);
                    }
                    sent += 1;
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::error!(kind = b.kind(), %status, response = %text, "ingest refused a batch; dropped");
                    if let Some(old) = self.queue.pop_front() {
                        self.weight -= old.weight();
                        metrics::DROPPED
                            .with_label_values(&[old.kind()])
                            .inc_by(old.weight() as u64);
                    }
                }
                Ok(r) => {
                    metrics::SEND_FAILURES.inc();
                    metrics::BUFFERED.set(self.weight as i64);
                    return Err(format!("{url}: {}", r.status()));
                }
                Err(e) => {
                    metrics::SEND_FAILURES.inc();
                    metrics::BUFFERED.set(self.weight as i64);
                    return Err(format!("{url}: {e}"));
                }
            }
        }
        metrics::BUFFERED.set(self.weight as i64);
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(seq: i64) -> Batch {
        Batch::Heartbeat(Heartbeat {
            id: String::new(),
            collector: "c".into(),
            root_host: "h".into(),
            time: seq,
            interval_seconds: 60,
            sequence: seq,
            version: "1".into(),
        })
    }

    #[test]
    fn the_oldest_go_first_past_the_bound_and_are_counted() {
        let before = metrics::DROPPED.with_label_values(&["heartbeats"]).get();
        let mut o = Outbox::new(3);
        for i in 0..5 {
            o.push(hb(i));
        }
        assert_eq!(o.len(), 3);
        assert_eq!(o.queue.front(), Some(&hb(2)));
        assert_eq!(
            metrics::DROPPED.with_label_values(&["heartbeats"]).get() - before,
            2
        );
    }

    #[tokio::test]
    async fn an_unreachable_pipeline_keeps_the_batches() {
        let mut o = Outbox::new(10);
        o.push(hb(1));
        let client = reqwest::Client::new();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let r = o.flush(&client, &format!("http://127.0.0.1:{port}")).await;
        assert!(r.is_err());
        assert_eq!(o.len(), 1, "kept for the next try");
    }
}
