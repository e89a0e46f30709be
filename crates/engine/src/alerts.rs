//! Alerts (DESIGN.md section 6), as a pure state machine.
//!
//! - Monitor alerts: raised when the monitor reaches the configured state (warning, or only
//!   critical); the same alert's severity follows the state while it stays unhealthy; closed
//!   when the monitor is healthy again if auto-resolve is on; an operator cannot close it while
//!   the monitor is still unhealthy.
//! - Rule alerts: a firing whose suppression values equal an open alert's increments that
//!   alert's repeat count instead of raising a new one.
//! - Storms: a rule firing more than `limit` times within `window` is suspended for
//!   `suspension`; an alert says so, and firings while suspended are counted, not raised.
//!
//! Every change is recorded in the alert's history with who made it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use healthstream_model::pack::{Health, Priority, Severity};

/// Resolution states (SCOM's numbers): new and closed; others are custom.
pub const NEW: i32 = 0;
pub const CLOSED: i32 = 255;

/// Who raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    Monitor,
    Rule,
}

/// One change of an alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub sequence: i64,
    pub by: String,
    pub at: i64,
    pub comment: String,
    /// (field, old, new).
    pub fields: Vec<(String, Option<String>, Option<String>)>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub priority: Priority,
    pub instance_id: String,
    pub workflow_id: String,
    pub source: Source,
    pub raised_at: i64,
    pub modified_at: i64,
    pub resolution_state: i32,
    pub repeat_count: i64,
    /// Suppression values of a rule alert.
    pub suppression: Vec<String>,
    /// Values substituted into the name and description from the data item.
    #[serde(default)]
    pub parameters: Vec<String>,
    pub history: Vec<Change>,
}

/// What a monitor's alert settings say, resolved for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorAlert {
    pub on: Health,
    pub auto_resolve: bool,
    /// `None`: follow the state.
    pub severity: Option<Severity>,
    pub priority: Priority,
    pub name: String,
    pub description: String,
}

/// A rule's alert, resolved for one firing.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAlert {
    pub name: String,
    pub description: String,
    /// The values of the data item the name and description read, in order.
    pub parameters: Vec<String>,
    pub severity: Severity,
    pub priority: Priority,
    pub suppression: Vec<String>,
}

/// Storm containment figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormLimits {
    pub limit: usize,
    pub window_ms: i64,
    pub suspension_ms: i64,
}

impl Default for StormLimits {
    fn default() -> Self {
        StormLimits {
            limit: 50,
            window_ms: 60_000,
            suspension_ms: 600_000,
        }
    }
}

/// Why an operator change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoSuchAlert(String),
    MonitorStillUnhealthy { alert: String, state: Health },
    AlreadyClosed(String),
}

/// A rule's storm bookkeeping (kept by the processor between inputs).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Storm {
    pub firings: VecDeque<i64>,
    pub suspended_until: Option<i64>,
    pub dropped: u64,
}

/// The alerts of a partition.
#[derive(Debug, Default)]
pub struct Alerts {
    alerts: BTreeMap<String, Alert>,
    open_monitor: HashMap<(String, String), String>,
    open_rule: HashMap<(String, String, Vec<String>), String>,
    storms: HashMap<String, Storm>,
}

fn severity_text(s: Severity) -> String {
    format!("{s:?}").to_lowercase()
}

fn severity_of(h: Health, fixed: Option<Severity>) -> Severity {
    fixed.unwrap_or(match h {
        Health::Critical => Severity::Critical,
        Health::Warning => Severity::Warning,
        _ => Severity::Information,
    })
}

impl Alerts {
    pub fn new() -> Alerts {
        Alerts::default()
    }

    /// Put back an alert read from storage (open alerts are indexed again).
    pub fn load(&mut self, alert: Alert) {
        if alert.resolution_state != CLOSED {
            match alert.source {
                Source::Monitor => {
                    self.open_monitor.insert(
                        (alert.instance_id.clone(), alert.workflow_id.clone()),
                        alert.id.clone(),
                    );
                }
                Source::Rule => {
                    self.open_rule.insert(
                        (
                            alert.instance_id.clone(),
                            alert.workflow_id.clone(),
                            alert.suppression.clone(),
                        ),
                        alert.id.clone(),
                    );
                }
            }
        }
        self.alerts.insert(alert.id.clone(), alert);
    }

    /// An alert by id.
    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    /// Open alerts.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.resolution_state != CLOSED)
    }

    fn record(
        &mut self,
        id: &str,
        by: &str,
        at: i64,
        comment: &str,
        fields: Vec<(String, Option<String>, Option<String>)>,
    ) -> Option<Alert> {
        let a = self.alerts.get_mut(id)?;
        let sequence = a.history.len() as i64 + 1;
        a.history.push(Change {
            sequence,
            by: by.to_string(),
            at,
            comment: comment.to_string(),
            fields,
        });
        a.modified_at = at;
        Some(a.clone())
    }

    /// Attach a note to an alert's history (a diagnostic's output, a recovery's outcome).
    pub fn annotate(&mut self, id: &str, by: &str, at: i64, comment: &str) -> Option<Alert> {
        self.record(id, by, at, comment, Vec::new())
    }

    /// A monitor changed state. Returns the alerts that changed (raised, updated, closed).
    /// `new_id` gives the id of a newly raised alert.
    pub fn monitor_changed(
        &mut self,
        settings: &MonitorAlert,
        instance: &str,
        monitor: &str,
        health: Health,
        at: i64,
        new_id: impl FnOnce() -> String,
    ) -> Vec<Alert> {
        let key = (instance.to_string(), monitor.to_string());
        let alerting = match settings.on {
            Health::Warning => matches!(health, Health::Warning | Health::Critical),
            _ => health == Health::Critical,
        };
        let open = self.open_monitor.get(&key).cloned();
        match (open, alerting) {
            (None, true) => {
                let id = new_id();
                let severity = severity_of(health, settings.severity);
                self.alerts.insert(
                    id.clone(),
                    Alert {
                        id: id.clone(),
                        name: settings.name.clone(),
                        description: settings.description.clone(),
                        severity,
                        priority: settings.priority,
                        instance_id: instance.to_string(),
                        workflow_id: monitor.to_string(),
                        source: Source::Monitor,
                        raised_at: at,
                        modified_at: at,
                        resolution_state: NEW,
                        repeat_count: 0,
                        suppression: vec![],
                        parameters: vec![],
                        history: vec![],
                    },
                );
                self.open_monitor.insert(key, id.clone());
                self.record(
                    &id,
                    "system",
                    at,
                    "raised",
                    vec![
                        ("resolution_state".into(), None, Some(NEW.to_string())),
                        ("severity".into(), None, Some(severity_text(severity))),
                    ],
                )
                .into_iter()
                .collect()
            }
            (Some(id), true) => {
                let severity = severity_of(health, settings.severity);
                let old = self.alerts.get(&id).map(|a| a.severity);
                if old == Some(severity) {
                    return vec![];
                }
                if let Some(a) = self.alerts.get_mut(&id) {
                    a.severity = severity;
                }
                self.record(
                    &id,
                    "system",
                    at,
                    &format!("the monitor is {health}"),
                    vec![(
                        "severity".into(),
                        old.map(severity_text),
                        Some(severity_text(severity)),
                    )],
                )
                .into_iter()
                .collect()
            }
            (Some(id), false) if health == Health::Healthy && settings.auto_resolve => {
                self.open_monitor.remove(&key);
                let old = self.alerts.get(&id).map(|a| a.resolution_state);
                if let Some(a) = self.alerts.get_mut(&id) {
                    a.resolution_state = CLOSED;
                }
                self.record(
                    &id,
                    "system",
                    at,
                    "resolved: the monitor is healthy again",
                    vec![(
                        "resolution_state".into(),
                        old.map(|o| o.to_string()),
                        Some(CLOSED.to_string()),
                    )],
                )
                .into_iter()
                .collect()
            }
            _ => vec![],
        }
    }

    /// An operator closes an alert; a monitor alert stays open while its monitor is unhealthy.
    pub fn close(
        &mut self,
        id: &str,
        by: &str,
        at: i64,
        monitor_state: Health,
    ) -> Result<Alert, Refused> {
        let a = self
            .alerts
            .get(id)
            .ok_or_else(|| Refused::NoSuchAlert(id.to_string()))?;
        if a.resolution_state == CLOSED {
            return Err(Refused::AlreadyClosed(id.to_string()));
        }
        if a.source == Source::Monitor
            && matches!(monitor_state, Health::Warning | Health::Critical)
        {
            return Err(Refused::MonitorStillUnhealthy {
                alert: id.to_string(),
                state: monitor_state,
            });
        }
        let key = (a.instance_id.clone(), a.workflow_id.clone());
        let suppression = a.suppression.clone();
        let source = a.source;
        let old = a.resolution_state;
        if let Some(a) = self.alerts.get_mut(id) {
            a.resolution_state = CLOSED;
        }
        match source {
            Source::Monitor => {
                self.open_monitor.remove(&key);
            }
            Source::Rule => {
                self.open_rule.remove(&(key.0, key.1, suppression));
            }
        }
        self.record(
            id,
            by,
            at,
            "closed",
            vec![(
                "resolution_state".into(),
                Some(old.to_string()),
                Some(CLOSED.to_string()),
            )],
        )
        .ok_or_else(|| Refused::NoSuchAlert(id.to_string()))
    }

    /// A rule fired. Returns the alerts that changed; `new_id` gives ids of new alerts (the
    /// rule's own, or the storm alert).
    pub fn rule_fired(
        &mut self,
        rule: &str,
        instance: &str,
        alert: &RuleAlert,
        at: i64,
        limits: StormLimits,
        mut new_id: impl FnMut() -> String,
    ) -> Vec<Alert> {
        let storm = self.storms.entry(rule.to_string()).or_default();
        if let Some(until) = storm.suspended_until {
            if at < until {
                storm.dropped += 1;
                return vec![];
            }
            storm.suspended_until = None;
            storm.firings.clear();
        }
        storm.firings.push_back(at);
        while storm
            .firings
            .front()
            .is_some_and(|t| at - *t >= limits.window_ms)
        {
            storm.firings.pop_front();
        }
        if storm.firings.len() > limits.limit {
            storm.suspended_until = Some(at + limits.suspension_ms);
            storm.firings.clear();
            let id = new_id();
            self.alerts.insert(
                id.clone(),
                Alert {
                    id: id.clone(),
                    name: format!("Alert storm: rule {rule} suspended"),
                    description: format!(
                        "Rule {rule} raised more than {} alerts within {} s; it is suspended for {} minutes.",
                        limits.limit,
                        limits.window_ms / 1000,
                        limits.suspension_ms / 60_000
                    ),
                    severity: Severity::Warning,
                    priority: Priority::High,
                    instance_id: instance.to_string(),
                    workflow_id: rule.to_string(),
                    source: Source::Rule,
                    raised_at: at,
                    modified_at: at,
                    resolution_state: NEW,
                    repeat_count: 0,
                    suppression: vec!["#storm".into()],
                    parameters: vec![],
                    history: vec![],
                },
            );
            return self
                .record(
                    &id,
                    "system",
                    at,
                    "raised: alert storm",
                    vec![("resolution_state".into(), None, Some(NEW.to_string()))],
                )
                .into_iter()
                .collect();
        }
        let key = (
            instance.to_string(),
            rule.to_string(),
            alert.suppression.clone(),
        );
        if let Some(id) = self.open_rule.get(&key).cloned() {
            let old = self.alerts.get(&id).map(|a| a.repeat_count).unwrap_or(0);
            if let Some(a) = self.alerts.get_mut(&id) {
                a.repeat_count += 1;
            }
            return self
                .record(
                    &id,
                    "system",
                    at,
                    "repeated",
                    vec![(
                        "repeat_count".into(),
                        Some(old.to_string()),
                        Some((old + 1).to_string()),
                    )],
                )
                .into_iter()
                .collect();
        }
        let id = new_id();
        self.alerts.insert(
            id.clone(),
            Alert {
                id: id.clone(),
                name: alert.name.clone(),
                description: alert.description.clone(),
                severity: alert.severity,
                priority: alert.priority,
                instance_id: instance.to_string(),
                workflow_id: rule.to_string(),
                source: Source::Rule,
                raised_at: at,
                modified_at: at,
                resolution_state: NEW,
                repeat_count: 0,
                suppression: alert.suppression.clone(),
                parameters: alert.parameters.clone(),
                history: vec![],
            },
        );
        self.open_rule.insert(key, id.clone());
        self.record(
            &id,
            "system",
            at,
            "raised",
            vec![("resolution_state".into(), None, Some(NEW.to_string()))],
        )
        .into_iter()
        .collect()
    }

    /// A rule's storm bookkeeping.
    pub fn storm(&self, rule: &str) -> Option<&Storm> {
        self.storms.get(rule)
    }

    /// Put back a rule's storm bookkeeping.
    pub fn load_storm(&mut self, rule: &str, storm: Storm) {
        self.storms.insert(rule.to_string(), storm);
    }

    /// Firings dropped while a rule was suspended.
    pub fn dropped(&self, rule: &str) -> u64 {
        self.storms.get(rule).map_or(0, |s| s.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(on: Health) -> MonitorAlert {
        MonitorAlert {
            on,
            auto_resolve: true,
            severity: None,
            priority: Priority::Normal,
            name: "Disk full".into(),
            description: "/ is full".into(),
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("a{n}")
        }
    }

    #[test]
    fn monitor_alert_lifecycle() {
        let mut a = Alerts::new();
        let mut id = ids();
        let s = settings(Health::Warning);
        let raised = a.monitor_changed(&s, "fs", "M", Health::Warning, 1, &mut id);
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].severity, Severity::Warning);
        // Worse: the same alert, severity updated.
        let worse = a.monitor_changed(&s, "fs", "M", Health::Critical, 2, &mut id);
        assert_eq!(worse[0].id, "a1");
        assert_eq!(worse[0].severity, Severity::Critical);
        assert_eq!(a.open().count(), 1);
        // Cannot be closed by hand while unhealthy.
        assert_eq!(
            a.close("a1", "alice", 3, Health::Critical),
            Err(Refused::MonitorStillUnhealthy {
                alert: "a1".into(),
                state: Health::Critical
            })
        );
        // Healthy: resolved automatically.
        let closed = a.monitor_changed(&s, "fs", "M", Health::Healthy, 4, &mut id);
        assert_eq!(closed[0].resolution_state, CLOSED);
        let history: Vec<&str> = closed[0]
            .history
            .iter()
            .map(|c| c.comment.as_str())
            .collect();
        assert_eq!(
            history,
            [
                "raised",
                "the monitor is critical",
                "resolved: the monitor is healthy again"
            ]
        );
        // Unhealthy again: a new alert.
        let again = a.monitor_changed(&s, "fs", "M", Health::Warning, 5, &mut id);
        assert_eq!(again[0].id, "a2");
    }

    #[test]
    fn alert_on_critical_only_and_no_auto_resolve() {
        let mut a = Alerts::new();
        let mut id = ids();
        let mut s = settings(Health::Critical);
        s.auto_resolve = false;
        assert!(
            a.monitor_changed(&s, "fs", "M", Health::Warning, 1, &mut id)
                .is_empty(),
            "warning does not alert"
        );
        assert_eq!(
            a.monitor_changed(&s, "fs", "M", Health::Critical, 2, &mut id)
                .len(),
            1
        );
        assert!(
            a.monitor_changed(&s, "fs", "M", Health::Healthy, 3, &mut id)
                .is_empty(),
            "stays open"
        );
        let closed = a
            .close("a1", "alice", 4, Health::Healthy)
            .expect("closable now");
        assert_eq!(closed.history.last().map(|c| c.by.as_str()), Some("alice"));
        assert_eq!(
            a.close("a1", "alice", 5, Health::Healthy),
            Err(Refused::AlreadyClosed("a1".into()))
        );
    }

    #[test]
    fn rule_alerts_repeat_on_equal_suppression_values() {
        let mut a = Alerts::new();
        let mut id = ids();
        let r = |source: &str| RuleAlert {
            name: "OOM".into(),
            description: String::new(),
            severity: Severity::Critical,
            priority: Priority::High,
            suppression: vec![source.to_string()],
            parameters: vec![],
        };
        assert_eq!(
            a.rule_fired("R", "web", &r("kernel"), 1, StormLimits::default(), &mut id)[0].id,
            "a1"
        );
        let rep = a.rule_fired("R", "web", &r("kernel"), 2, StormLimits::default(), &mut id);
        assert_eq!((rep[0].id.as_str(), rep[0].repeat_count), ("a1", 1));
        assert_eq!(
            a.rule_fired("R", "web", &r("sshd"), 3, StormLimits::default(), &mut id)[0].id,
            "a2",
            "other suppression values: a new alert"
        );
        a.close("a1", "bob", 4, Health::Uninitialized)
            .expect("rule alerts close");
        assert_eq!(
            a.rule_fired("R", "web", &r("kernel"), 5, StormLimits::default(), &mut id)[0].id,
            "a3",
            "closed: a new one"
        );
    }

    #[test]
    fn storms_suspend_the_rule_and_say_so() {
        let mut a = Alerts::new();
        let mut id = ids();
        let limits = StormLimits::default();
        let mut storm_alerts = 0;
        for i in 0..60 {
            let r = RuleAlert {
                name: "x".into(),
                description: String::new(),
                severity: Severity::Warning,
                priority: Priority::Normal,
                suppression: vec![i.to_string()],
                parameters: vec![],
            };
            for changed in a.rule_fired("R", "web", &r, i * 100, limits, &mut id) {
                if changed.name.starts_with("Alert storm") {
                    storm_alerts += 1;
                    assert!(changed.description.contains("suspended for 10 minutes"));
                }
            }
        }
        assert_eq!(storm_alerts, 1);
        assert_eq!(
            a.open()
                .filter(|x| !x.name.starts_with("Alert storm"))
                .count(),
            50,
            "the 51st firing suspends"
        );
        assert_eq!(a.dropped("R"), 9);
        // Ten minutes later the rule raises again.
        let r = RuleAlert {
            name: "x".into(),
            description: String::new(),
            severity: Severity::Warning,
            priority: Priority::Normal,
            suppression: vec!["later".into()],
            parameters: vec![],
        };
        assert_eq!(
            a.rule_fired("R", "web", &r, 5_000 + 600_000, limits, &mut id)
                .len(),
            1
        );
    }
}
