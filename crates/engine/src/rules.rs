//! Rules that raise alerts: one copy per managed target instance, its data source's items
//! through the rule's conditions (filter, threshold, consolidate, correlate), then the alert
//! action. Rules never set state. Collection-only rules need no engine work (the processor
//! keeps what it collects).

use std::collections::VecDeque;

use healthstream_model::expr::{Path, Subject};
use healthstream_model::pack::{Condition, DataSource, Direction, Priority, Severity};

use crate::alerts::RuleAlert;

/// What a rule copy keeps between items.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleState {
    /// Times of the items counted by a consolidation.
    pub window: VecDeque<i64>,
    /// When the first item of a correlation was seen.
    pub first_seen: Option<i64>,
}

/// A rule's alert action, `$Target` resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAction {
    pub name: String,
    pub description: String,
    /// Name and description as templates, when they read the data item (`$Data/...$`).
    pub name_data: Option<healthstream_model::reference::Template>,
    pub description_data: Option<healthstream_model::reference::Template>,
    pub severity: Severity,
    pub priority: Priority,
    pub suppression: Vec<Path>,
}

/// A rule copy.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCopy {
    pub rule: String,
    pub source: DataSource,
    pub conditions: Vec<Condition>,
    pub alert: AlertAction,
    pub state: RuleState,
    /// In the engine's list of rule copies changed since its kept states were last taken.
    pub dirty: bool,
}

/// A rule's alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub rule: String,
    pub instance: String,
    pub alert: RuleAlert,
    pub time: i64,
}

fn beyond(direction: Direction, value: f64, threshold: f64) -> bool {
    match direction {
        Direction::Above => value > threshold,
        Direction::Below => value < threshold,
    }
}

impl RuleCopy {
    /// An item of the rule's source (`value`: a perf sample's value). Returns the alert to
    /// raise when the item makes it through every condition.
    pub fn item(&mut self, item: &dyn Subject, value: Option<f64>, at: i64) -> Option<RuleAlert> {
        for c in &self.conditions {
            match c {
                Condition::Filter { expression } => {
                    if !expression.eval(item) {
                        return None;
                    }
                }
                Condition::Threshold {
                    threshold,
                    direction,
                } => {
                    if !value.is_some_and(|v| beyond(*direction, v, *threshold)) {
                        return None;
                    }
                }
                Condition::Consolidate { count, window } => {
                    let w = i64::try_from(window.0.as_millis()).unwrap_or(i64::MAX);
                    self.state.window.push_back(at);
                    while self.state.window.front().is_some_and(|t| at - *t >= w) {
                        self.state.window.pop_front();
                    }
                    if self.state.window.len() < *count as usize {
                        return None;
                    }
                    self.state.window.clear();
                }
                Condition::Correlate {
                    first,
                    then,
                    within,
                } => {
                    let w = i64::try_from(within.0.as_millis()).unwrap_or(i64::MAX);
                    if then.eval(item) && self.state.first_seen.is_some_and(|f| at - f <= w) {
                        self.state.first_seen = None;
                    } else {
                        if first.eval(item) {
                            self.state.first_seen = Some(at);
                        }
                        return None;
                    }
                }
                // Data mappers turn property bags into perf or events; rules fed by them are
                // collection rules.
                Condition::MapPerf { .. } | Condition::MapEvent { .. } => return None,
            }
        }
        let suppression = self
            .alert
            .suppression
            .iter()
            .map(|p| {
                item.lookup(p)
                    .map(|v| v.as_text().to_string())
                    .unwrap_or_default()
            })
            .collect();
        let mut parameters = Vec::new();
        let mut fill =
            |text: &String, tpl: &Option<healthstream_model::reference::Template>| match tpl {
                Some(t) => {
                    let (s, values) = t.resolve_data(item);
                    parameters.extend(values);
                    s
                }
                None => text.clone(),
            };
        let name = fill(&self.alert.name, &self.alert.name_data);
        let description = fill(&self.alert.description, &self.alert.description_data);
        Some(RuleAlert {
            name,
            description,
            parameters,
            severity: self.alert.severity,
            priority: self.alert.priority,
            suppression,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Fields;
    use healthstream_model::expr::{Expr, Value};
    use healthstream_model::pack::Interval;

    fn copy(conditions: Vec<Condition>) -> RuleCopy {
        RuleCopy {
            rule: "R".into(),
            source: DataSource::Event {
                log: "journal".into(),
                filter: None,
            },
            conditions,
            alert: AlertAction {
                name: "n".into(),
                description: String::new(),
                severity: Severity::Warning,
                priority: Priority::Normal,
                suppression: vec![Path::name("Source")],
                name_data: None,
                description_data: None,
            },
            state: RuleState::default(),
            dirty: false,
        }
    }

    fn ev(source: &'static str, id: f64) -> Vec<(&'static str, Value<'static>)> {
        vec![
            ("Source", Value::text(source)),
            ("EventId", Value::Number(id)),
        ]
    }

    #[test]
    fn filter_then_alert_with_suppression_values() {
        let mut r = copy(vec![Condition::Filter {
            expression: Expr::parse("EventId == 7").expect("expr"),
        }]);
        assert_eq!(r.item(&Fields(&ev("disk", 1.0)), None, 0), None);
        let a = r.item(&Fields(&ev("disk", 7.0)), None, 0).expect("fires");
        assert_eq!(a.suppression, ["disk"]);
    }

    #[test]
    fn data_references_fill_the_alert_and_its_parameters() {
        use healthstream_model::reference::Template;
        let mut r = copy(vec![]);
        r.alert.name_data = Template::parse("Event $Data/EventId$ from $Data/Source$").ok();
        r.alert.description_data =
            Template::parse("$Data/Source$ said: $Data/Property[@Name=\"Nothing\"]$.").ok();
        let a = r.item(&Fields(&ev("disk", 7.0)), None, 0).expect("fires");
        assert_eq!(a.name, "Event 7 from disk");
        assert_eq!(
            a.description, "disk said: .",
            "a missing field reads as empty"
        );
        assert_eq!(a.parameters, ["7", "disk", "disk", ""]);
    }

    #[test]
    fn consolidation_needs_n_within_the_window() {
        let mut r = copy(vec![Condition::Consolidate {
            count: 3,
            window: Interval::secs(60),
        }]);
        assert_eq!(r.item(&Fields(&ev("a", 1.0)), None, 0), None);
        assert_eq!(r.item(&Fields(&ev("a", 1.0)), None, 20_000), None);
        assert_eq!(
            r.item(&Fields(&ev("a", 1.0)), None, 70_000),
            None,
            "the first left the window"
        );
        assert!(
            r.item(&Fields(&ev("a", 1.0)), None, 71_000).is_some(),
            "three within 60 s"
        );
        assert_eq!(
            r.item(&Fields(&ev("a", 1.0)), None, 72_000),
            None,
            "counting starts again"
        );
    }

    #[test]
    fn correlation_a_then_b_within_t() {
        let mut r = copy(vec![Condition::Correlate {
            first: Expr::parse("EventId == 1").expect("expr"),
            then: Expr::parse("EventId == 2").expect("expr"),
            within: Interval::secs(30),
        }]);
        assert_eq!(r.item(&Fields(&ev("a", 2.0)), None, 0), None, "B without A");
        assert_eq!(r.item(&Fields(&ev("a", 1.0)), None, 1_000), None);
        assert!(r.item(&Fields(&ev("a", 2.0)), None, 20_000).is_some());
        assert_eq!(r.item(&Fields(&ev("a", 1.0)), None, 30_000), None);
        assert_eq!(
            r.item(&Fields(&ev("a", 2.0)), None, 61_000),
            None,
            "too late"
        );
    }

    #[test]
    fn threshold_on_perf_values() {
        let mut r = copy(vec![Condition::Threshold {
            threshold: 90.0,
            direction: Direction::Above,
        }]);
        assert_eq!(r.item(&Fields(&[]), Some(50.0), 0), None);
        assert!(r.item(&Fields(&[]), Some(95.0), 0).is_some());
    }
}
