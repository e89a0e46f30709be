//! Module data types (seed 002/004): what each data source produces, what each condition,
//! monitor type and action accepts.

use std::fmt;

use crate::pack::*;

/// The type of the items flowing between modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `System.Performance.Data`: object, counter, instance, value.
    Perf,
    /// `System.Event.Data`: log, source, event id, level, message, parameters.
    Event,
    /// A heartbeat from a collector.
    Heartbeat,
    /// A service's state and start mode.
    ServiceState,
    /// `System.PropertyBagData`: named values from a command.
    PropertyBag,
    /// A line of a log file.
    LogLine,
    /// `System.Discovery.Data`.
    Discovery,
    /// Trigger only, no payload.
    Trigger,
    /// The output of a consolidator: count and first/last items.
    Consolidated,
    /// The output of a correlator: the pair of items.
    Correlated,
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Perf => "perf",
            DataType::Event => "event",
            DataType::Heartbeat => "heartbeat",
            DataType::ServiceState => "service state",
            DataType::PropertyBag => "property bag",
            DataType::LogLine => "log line",
            DataType::Discovery => "discovery",
            DataType::Trigger => "trigger",
            DataType::Consolidated => "consolidated",
            DataType::Correlated => "correlated",
        })
    }
}

/// What a data source produces.
pub fn output_of(s: &DataSource) -> DataType {
    match s {
        DataSource::Perf { .. } => DataType::Perf,
        DataSource::Event { .. } => DataType::Event,
        DataSource::Heartbeat { .. } => DataType::Heartbeat,
        DataSource::Service { .. } => DataType::ServiceState,
        DataSource::Command { .. } => DataType::PropertyBag,
        DataSource::LogFile { .. } => DataType::LogLine,
        DataSource::Inventory { .. } => DataType::Discovery,
        DataSource::Schedule { .. } => DataType::Trigger,
        DataSource::Unsupported { produces, .. } => {
            data_type_named(produces).unwrap_or(DataType::Trigger)
        }
    }
}

/// The data type with this file name (`perf`, `property_bag`, ...).
pub fn data_type_named(name: &str) -> Option<DataType> {
    Some(match name {
        "perf" => DataType::Perf,
        "event" => DataType::Event,
        "heartbeat" => DataType::Heartbeat,
        "service_state" => DataType::ServiceState,
        "property_bag" => DataType::PropertyBag,
        "log_line" => DataType::LogLine,
        "discovery" => DataType::Discovery,
        "trigger" => DataType::Trigger,
        _ => return None,
    })
}

/// The data source's type name.
pub fn source_name(s: &DataSource) -> &'static str {
    match s {
        DataSource::Perf { .. } => "perf",
        DataSource::Event { .. } => "event",
        DataSource::Heartbeat { .. } => "heartbeat",
        DataSource::Service { .. } => "service",
        DataSource::Command { .. } => "command",
        DataSource::LogFile { .. } => "log_file",
        DataSource::Inventory { .. } => "inventory",
        DataSource::Schedule { .. } => "schedule",
        DataSource::Unsupported { .. } => "unsupported",
    }
}

/// The inventory providers of the reference collector.
pub const INVENTORY_PROVIDERS: [&str; 5] = [
    "host",
    "filesystems",
    "block_devices",
    "network_interfaces",
    "services",
];

/// Configuration checks of a data source.
pub fn check_source(s: &DataSource) -> Result<(), String> {
    match s {
        DataSource::Perf {
            object, counter, ..
        } if object.trim().is_empty() || counter.trim().is_empty() => {
            Err("object and counter must not be empty".into())
        }
        DataSource::Event { log, .. } if log.trim().is_empty() => {
            Err("log must not be empty".into())
        }
        DataSource::Service { service, .. } if service.trim().is_empty() => {
            Err("service must not be empty".into())
        }
        DataSource::Command { command, .. } if command.is_empty() => Err("command is empty".into()),
        DataSource::LogFile { path, pattern } => {
            if path.trim().is_empty() {
                return Err("path must not be empty".into());
            }
            if let Some(p) = pattern {
                crate::expr::Pattern::regex(p)?;
            }
            Ok(())
        }
        DataSource::Inventory { provider, .. }
            if !INVENTORY_PROVIDERS.contains(&provider.as_str()) =>
        {
            Err(format!(
                "unknown inventory provider {provider:?} (known: {})",
                INVENTORY_PROVIDERS.join(", ")
            ))
        }
        DataSource::Unsupported { produces, .. } if data_type_named(produces).is_none() => Err(format!(
            "produces {produces:?} is not a data type (perf, event, heartbeat, service_state, property_bag, log_line, discovery, trigger)"
        )),
        _ => Ok(()),
    }
}

/// A condition's type name.
pub fn condition_name(c: &Condition) -> &'static str {
    match c {
        Condition::Filter { .. } => "filter",
        Condition::Threshold { .. } => "threshold",
        Condition::Consolidate { .. } => "consolidate",
        Condition::Correlate { .. } => "correlate",
        Condition::MapPerf { .. } => "map_perf",
        Condition::MapEvent { .. } => "map_event",
    }
}

/// What a condition produces from its input, or why it cannot take it.
pub fn condition_output(c: &Condition, input: DataType) -> Result<DataType, String> {
    let need = |ok: &[DataType], out: DataType| {
        if ok.contains(&input) {
            Ok(out)
        } else {
            Err(format!(
                "takes {} data, but receives {input} data",
                ok.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        }
    };
    match c {
        Condition::Filter { .. } => {
            if matches!(input, DataType::Trigger | DataType::Discovery) {
                Err(format!("cannot filter {input} data"))
            } else {
                Ok(input)
            }
        }
        Condition::Threshold { .. } => need(&[DataType::Perf], DataType::Perf),
        Condition::Consolidate { count, .. } => {
            if *count == 0 {
                return Err("count must be at least 1".into());
            }
            need(
                &[
                    DataType::Perf,
                    DataType::Event,
                    DataType::LogLine,
                    DataType::PropertyBag,
                    DataType::ServiceState,
                ],
                DataType::Consolidated,
            )
        }
        Condition::Correlate { .. } => {
            need(&[DataType::Event, DataType::LogLine], DataType::Correlated)
        }
        Condition::MapPerf { .. } => need(&[DataType::PropertyBag], DataType::Perf),
        Condition::MapEvent { level, .. } => {
            if !["information", "warning", "error"].contains(&level.as_str()) {
                return Err(format!(
                    "level {level:?} is not information, warning or error"
                ));
            }
            need(&[DataType::PropertyBag], DataType::Event)
        }
    }
}

/// Can the monitor type take this data?
pub fn detection_accepts(d: &Detection, input: DataType) -> Result<(), String> {
    let ok: &[DataType] = match d {
        Detection::SimpleThreshold { .. }
        | Detection::DoubleThreshold { .. }
        | Detection::AverageThreshold { .. }
        | Detection::ConsecutiveSamples { .. }
        | Detection::DeltaThreshold { .. } => &[DataType::Perf],
        Detection::EventReset { .. }
        | Detection::ManualReset { .. }
        | Detection::TimerReset { .. } => &[
            DataType::Event,
            DataType::LogLine,
            DataType::Consolidated,
            DataType::Correlated,
        ],
        Detection::BasicService { .. } => &[DataType::ServiceState],
        Detection::Expression { .. } => &[
            DataType::PropertyBag,
            DataType::Perf,
            DataType::Event,
            DataType::ServiceState,
            DataType::LogLine,
        ],
        Detection::Heartbeat { .. } => &[DataType::Heartbeat],
        Detection::Unsupported { .. } => return Ok(()),
    };
    if ok.contains(&input) {
        Ok(())
    } else {
        Err(format!(
            "takes {} data, but receives {input} data (add a data mapper or change the source)",
            ok.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }
}

/// Configuration checks of a monitor type (2- and 3-state mapping, threshold order).
pub fn check_detection(d: &Detection) -> Result<(), String> {
    let unhealthy_ok = |h: &Health| {
        if matches!(h, Health::Warning | Health::Critical) {
            Ok(())
        } else {
            Err(format!("unhealthy = {h:?} must be warning or critical"))
        }
    };
    let samples_ok = |n: u32| {
        if n == 0 {
            Err("samples must be at least 1".to_string())
        } else {
            Ok(())
        }
    };
    match d {
        Detection::SimpleThreshold {
            direction,
            threshold,
            warning,
            critical,
            unhealthy,
        } => match (threshold, warning, critical) {
            (Some(t), None, None) => finite(*t).and(unhealthy_ok(unhealthy)),
            (None, Some(w), Some(c)) => {
                finite(*w)?;
                finite(*c)?;
                let ordered = match direction {
                    Direction::Above => w <= c,
                    Direction::Below => w >= c,
                };
                if ordered {
                    Ok(())
                } else {
                    Err(format!(
                        "3-state thresholds out of order: warning {w} must come before critical {c} when the direction is {direction:?}"
                    ))
                }
            }
            _ => Err("give either threshold (2-state) or warning and critical (3-state)".into()),
        },
        Detection::DoubleThreshold {
            low,
            high,
            below,
            between,
            above,
        } => {
            finite(*low)?;
            finite(*high)?;
            if low > high {
                return Err(format!("low {low} is greater than high {high}"));
            }
            if [below, between, above].contains(&&Health::Uninitialized) {
                return Err("states must be healthy, warning or critical".into());
            }
            Ok(())
        }
        Detection::AverageThreshold {
            threshold,
            samples,
            unhealthy,
            ..
        }
        | Detection::ConsecutiveSamples {
            threshold,
            samples,
            unhealthy,
            ..
        }
        | Detection::DeltaThreshold {
            threshold,
            samples,
            unhealthy,
            ..
        } => {
            finite(*threshold)?;
            samples_ok(*samples)?;
            unhealthy_ok(unhealthy)
        }
        Detection::EventReset { unhealthy, .. }
        | Detection::ManualReset { unhealthy, .. }
        | Detection::TimerReset { unhealthy, .. }
        | Detection::BasicService { unhealthy, .. } => unhealthy_ok(unhealthy),
        Detection::Expression { states } => {
            if states.len() < 2 || states.len() > 3 {
                return Err(format!(
                    "an expression monitor has 2 or 3 states, not {}",
                    states.len()
                ));
            }
            let mut seen = Vec::new();
            for s in states {
                if s.health == Health::Uninitialized {
                    return Err("states must be healthy, warning or critical".into());
                }
                if seen.contains(&s.health) {
                    return Err(format!("state {} is listed twice", s.health));
                }
                seen.push(s.health);
            }
            if !seen.contains(&Health::Healthy) {
                return Err("one state must be healthy".into());
            }
            Ok(())
        }
        Detection::Heartbeat { missed } => {
            samples_ok(*missed).map_err(|_| "missed must be at least 1".into())
        }
        Detection::Unsupported { states, .. } => {
            if states.len() < 2 || states.len() > 3 {
                Err(format!("a monitor has 2 or 3 states, not {}", states.len()))
            } else {
                Ok(())
            }
        }
    }
}

fn finite(x: f64) -> Result<(), String> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(format!("{x} is not a finite number"))
    }
}

/// An action's type name.
pub fn action_name(a: &Action) -> &'static str {
    match a {
        Action::CollectPerf => "collect_perf",
        Action::CollectEvent => "collect_event",
        Action::Alert { .. } => "alert",
        Action::Command { .. } => "command",
    }
}

/// Can the action take this data?
pub fn action_accepts(a: &Action, input: DataType) -> Result<(), String> {
    let ok = match a {
        Action::CollectPerf => input == DataType::Perf,
        Action::CollectEvent => matches!(input, DataType::Event | DataType::LogLine),
        Action::Alert { .. } | Action::Command { .. } => input != DataType::Discovery,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("cannot take {input} data"))
    }
}
