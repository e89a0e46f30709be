//! Commands for collectors: `GET /v1/collectors/{root_host}/commands` answers the commands
//! (diagnostics, recoveries, tasks) addressed to a host's collector that have no result yet,
//! oldest first. They are read from the command topic and the task-result topic (every
//! partition, from the start of what the topics keep), so a restarted ingest serves the
//! same. A collector posts each result to `/v1/ingest/task-results`; a command whose result
//! came back, or whose time to run passed long ago, is no longer served.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use healthstream_bus::{Bus, BusError, ConsumerEvent};
use healthstream_contracts::records::{Command, TaskResult};
use healthstream_contracts::{Codec, Topic};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A command is no longer served this long after its time limit ran out (ms).
const STALE_AFTER_MS: i64 = 3_600_000;

/// How often commands past their time to be served are dropped (ms).
const PRUNE_EVERY_MS: i64 = 60_000;

/// How long the result of a command not read yet is remembered (ms): its command, on
/// another partition, comes within this or is not served anyway.
const RESULT_BEFORE_COMMAND_KEPT_MS: i64 = 24 * STALE_AFTER_MS;

/// The last time a command is served.
fn served_until(c: &Command) -> i64 {
    c.requested_at
        .saturating_add(i64::from(c.timeout_seconds).saturating_mul(1000))
        .saturating_add(STALE_AFTER_MS)
}

/// Whether a command is still served at `now`: it is never again once it is not.
fn served(c: &Command, now: i64) -> bool {
    now <= served_until(c)
}

/// The pending commands per host.
#[derive(Debug, Default)]
pub struct Pending {
    /// Root host -> command id -> command.
    by_host: HashMap<String, BTreeMap<String, Command>>,
    /// Commands with a result (seen before or after their command) -> until when that
    /// matters: the command's last time to be served (a copy of it read again then is not
    /// served), or, for a result read before its command, a while after it was read.
    done: HashMap<String, i64>,
    /// When commands no longer served were last dropped.
    pruned_at: i64,
}

impl Pending {
    /// A command read at `now`; those no longer served are dropped now and then (a host
    /// whose collector never asks would keep every command addressed to it).
    fn command(&mut self, c: Command, now: i64) {
        self.prune(now);
        if let Some(until) = self.done.get_mut(&c.id) {
            // Its result came first: now it is known how long that matters.
            *until = served_until(&c);
            return;
        }
        if served(&c, now) {
            self.by_host
                .entry(c.root_host.clone())
                .or_default()
                .insert(c.id.clone(), c);
        }
    }

    /// A result read at `now`.
    fn result(&mut self, r: &TaskResult, now: i64) {
        self.prune(now);
        let command = self
            .by_host
            .get_mut(&r.root_host)
            .and_then(|m| m.remove(&r.command_id));
        let until = match command {
            Some(c) => served_until(&c),
            None => now.saturating_add(RESULT_BEFORE_COMMAND_KEPT_MS),
        };
        let kept = self.done.entry(r.command_id.clone()).or_insert(until);
        *kept = (*kept).max(until);
    }

    /// Once a minute at most: drops the commands no longer served and the results that
    /// no longer matter.
    fn prune(&mut self, now: i64) {
        if now < self.pruned_at.saturating_add(PRUNE_EVERY_MS) {
            return;
        }
        self.pruned_at = now;
        for commands in self.by_host.values_mut() {
            commands.retain(|_, c| served(c, now));
        }
        self.by_host.retain(|_, commands| !commands.is_empty());
        self.done.retain(|_, until| now <= *until);
    }

    /// A host's commands without a result and not stale at `now`, oldest first.
    pub fn for_host(&self, host: &str, now: i64) -> Vec<Command> {
        let mut out: Vec<Command> = self
            .by_host
            .get(host)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|c| served(c, now))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then(a.id.cmp(&b.id)));
        out
    }
}

/// What the follower keeps.
pub type Commands = Arc<RwLock<Pending>>;

/// Follow the command and task-result topics into `Commands` until `stop`.
pub fn follow_commands(
    bus: Arc<dyn Bus>,
    mut stop: watch::Receiver<bool>,
) -> Result<(Commands, JoinHandle<Result<(), BusError>>), BusError> {
    let mut parts: Vec<(Topic, i32, i64)> = Vec::new();
    for topic in [Topic::Commands, Topic::TaskResults] {
        parts.extend((0..bus.partitions(topic)).map(|p| (topic, p, 0)));
    }
    let mut consumer = bus.reader(&parts)?;
    let pending: Commands = Arc::default();
    let out = pending.clone();
    let task = tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                e = consumer.next() => e?,
                _ = stop.changed() => return Ok(()),
            };
            let ConsumerEvent::Message(m) = event else {
                continue;
            };
            let Some(value) = m.value.as_deref() else {
                continue;
            };
            let codec = Codec::shared();
            let Ok(mut p) = pending.write() else {
                continue;
            };
            match m.topic {
                Topic::Commands => match codec.decode_command(value) {
                    Ok(c) => p.command(c, crate::now_ms()),
                    Err(e) => {
                        tracing::error!(offset = m.offset, error = %e, "command cannot be decoded; skipped")
                    }
                },
                Topic::TaskResults => match codec.decode::<TaskResult>(value) {
                    Ok(r) => p.result(&r, crate::now_ms()),
                    Err(e) => {
                        tracing::error!(offset = m.offset, error = %e, "task result cannot be decoded; skipped")
                    }
                },
                _ => {}
            }
        }
    });
    Ok((out, task))
}

/// The route.
pub fn router(commands: Commands) -> Router {
    Router::new()
        .route("/v1/collectors/{root_host}/commands", get(list))
        .with_state(commands)
}

async fn list(State(commands): State<Commands>, Path(host): Path<String>) -> Response {
    let now = crate::now_ms();
    let list = commands
        .read()
        .map(|p| p.for_host(&host, now))
        .unwrap_or_default();
    Json(serde_json::json!({ "root_host": host, "commands": list })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use healthstream_contracts::records::{CommandKind, TaskStatus};

    fn command(id: &str, host: &str, at: i64) -> Command {
        Command {
            id: id.into(),
            root_host: host.into(),
            collector: host.into(),
            kind: CommandKind::Diagnostic,
            workflow_id: "Linux.Diagnostic.TopProcesses".into(),
            instance_id: "web".into(),
            module: "exec".into(),
            parameters: BTreeMap::from([("argv".into(), "[\"ps\"]".into())]),
            timeout_seconds: 30,
            requested_by: "health".into(),
            requested_at: at,
            alert_id: None,
        }
    }

    fn result(id: &str, host: &str) -> TaskResult {
        TaskResult {
            id: format!("r-{id}"),
            command_id: id.into(),
            root_host: host.into(),
            collector: host.into(),
            status: TaskStatus::Succeeded,
            exit_code: Some(0),
            output: String::new(),
            truncated: false,
            started_at: 0,
            finished_at: 0,
        }
    }

    #[test]
    fn pending_until_a_result_or_stale() {
        let mut p = Pending::default();
        p.command(command("b", "web-01", 2_000), 2_000);
        p.command(command("a", "web-01", 1_000), 2_000);
        p.command(command("c", "db-01", 1_000), 2_000);
        let ids = |v: Vec<Command>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(p.for_host("web-01", 3_000)), ["a", "b"], "oldest first");
        p.result(&result("a", "web-01"), 2_900);
        assert_eq!(ids(p.for_host("web-01", 3_000)), ["b"]);
        // A result read before its command (another partition) still counts.
        p.result(&result("d", "web-01"), 2_400);
        p.command(command("d", "web-01", 2_500), 2_500);
        assert_eq!(ids(p.for_host("web-01", 3_000)), ["b"]);
        // Long after its time limit, a command is not served any more.
        assert!(p
            .for_host("web-01", 2_000 + 30_000 + STALE_AFTER_MS + 1)
            .is_empty());
        assert_eq!(ids(p.for_host("db-01", 3_000)), ["c"]);
        assert!(p.for_host("nobody", 3_000).is_empty());
    }

    #[test]
    fn commands_no_longer_served_are_dropped() {
        let kept = |p: &Pending| p.by_host.values().map(BTreeMap::len).sum::<usize>();
        let mut p = Pending::default();
        let window = 30_000 + STALE_AFTER_MS;
        p.command(command("old", "gone-01", 0), 0);
        p.command(command("new", "web-01", window), window);
        assert_eq!(kept(&p), 2, "dropped at most once a minute");
        // A minute later the first is past its window: dropped, with its host.
        let later = window + PRUNE_EVERY_MS;
        p.command(command("newer", "web-01", later), later);
        assert_eq!(kept(&p), 2);
        assert!(!p.by_host.contains_key("gone-01"));
        let ids: Vec<String> = p
            .for_host("web-01", later)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["new", "newer"]);
        // A command read after its window (a replay from the topic's start) is not kept.
        p.command(command("replayed", "db-01", 0), later);
        assert_eq!(kept(&p), 2);
        assert!(!p.by_host.contains_key("db-01"));
    }

    /// A result is remembered while a copy of its command could still be served, and
    /// forgotten after: a long-running ingest does not keep every result it ever read.
    #[test]
    fn results_are_forgotten_once_they_no_longer_matter() {
        let mut p = Pending::default();
        let window = 30_000 + STALE_AFTER_MS;
        p.command(command("a", "web-01", 0), 0);
        p.result(&result("a", "web-01"), 1_000);
        // The command read again (a duplicate after a restart of the health processor)
        // within its window: not served.
        p.command(command("a", "web-01", 0), 2_000);
        assert!(p.for_host("web-01", 2_000).is_empty());
        // A result whose command comes later, and one whose command never comes.
        p.result(&result("b", "web-01"), 2_000);
        p.result(&result("orphan", "web-01"), 2_000);
        p.command(command("b", "web-01", 1_500), 3_000);
        assert!(
            p.for_host("web-01", 3_000).is_empty(),
            "b's result came first"
        );
        assert_eq!(p.done.len(), 3);
        // Past a's and b's windows (pruned with the next record read): only the orphan
        // is left, until a day after it was read.
        p.command(command("c", "db-01", window + 2_000), window + 2_000);
        assert_eq!(p.done.keys().collect::<Vec<_>>(), ["orphan"]);
        let day = 2_000 + RESULT_BEFORE_COMMAND_KEPT_MS;
        p.command(command("d", "db-01", day + 1), day + 1);
        assert!(p.done.is_empty());
    }
}
