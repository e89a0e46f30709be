//! Diagnostics, recoveries and tasks (DESIGN.md section 2, seed 002): what to run on the
//! collector of an instance's host, with `$Target` references resolved.
//!
//! A diagnostic or recovery with `on_state` runs when its monitor enters that state; a
//! recovery with `after_diagnostic` runs once that diagnostic succeeded; any of them, and
//! any task, can be asked for by an operator. Disabled ones (by the pack or an override of
//! `enabled`) never run automatically; an operator can still run a disabled task.

use healthstream_model::overrides::resolve_from;
use healthstream_model::pack::Health;
use healthstream_model::params::ParamValue;

use crate::engine::Engine;

/// What kind of command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CommandKind {
    Task,
    Diagnostic,
    Recovery,
}

/// A command to run on the collector of an instance's host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedCommand {
    pub kind: CommandKind,
    /// The task, diagnostic or recovery.
    pub workflow_id: String,
    pub name: String,
    pub instance_id: String,
    pub root_host: String,
    /// The monitor of a diagnostic or recovery.
    pub monitor_id: Option<String>,
    /// Program and arguments, `$Target` resolved.
    pub argv: Vec<String>,
    pub timeout_seconds: i32,
    /// Recalculate the monitor once the recovery finished.
    pub reset_monitor: bool,
}

/// What a command is made from.
struct Spec<'a> {
    kind: CommandKind,
    id: &'a str,
    name: Option<&'a String>,
    monitor: Option<&'a str>,
    command: &'a [String],
    timeout: std::time::Duration,
    reset_monitor: bool,
}

fn seconds(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Engine {
    fn enabled(&self, workflow: &str, default: bool, instance: &str) -> bool {
        match self.instance_context(instance) {
            Some(ctx) => !matches!(
                resolve_from(
                    self.catalog(),
                    workflow,
                    "enabled",
                    ParamValue::Bool(default),
                    &ctx
                )
                .value,
                ParamValue::Bool(false)
            ),
            None => default,
        }
    }

    fn argv(&self, instance: &str, command: &[String]) -> Result<Vec<String>, String> {
        let ctx = self.target_context(instance);
        command
            .iter()
            .map(|arg| {
                let t = self.command_arg(arg).map_err(|e| format!("{arg:?}: {e}"))?;
                t.resolve_target(&ctx).map_err(|e| format!("{arg:?}: {e}"))
            })
            .collect()
    }

    fn planned(&self, instance: &str, s: Spec<'_>) -> Result<PlannedCommand, String> {
        let inst = self
            .instance(instance)
            .ok_or_else(|| format!("unknown instance {instance}"))?;
        Ok(PlannedCommand {
            kind: s.kind,
            workflow_id: s.id.to_string(),
            name: s.name.cloned().unwrap_or_else(|| s.id.to_string()),
            instance_id: instance.to_string(),
            root_host: inst.root_host.clone(),
            monitor_id: s.monitor.map(str::to_string),
            argv: self.argv(instance, s.command)?,
            timeout_seconds: seconds(s.timeout),
            reset_monitor: s.reset_monitor,
        })
    }

    /// The diagnostics and recoveries that run when a monitor of an instance enters a state.
    pub fn commands_on_state(
        &self,
        instance: &str,
        monitor: &str,
        state: Health,
    ) -> Vec<PlannedCommand> {
        let mut out = Vec::new();
        // Most monitors have none: a state change of one looks no further.
        if !self.runs_commands(monitor) {
            return out;
        }
        for p in self.catalog().packs() {
            for d in &p.pack.diagnostics {
                if d.monitor == monitor
                    && d.on_state == Some(state)
                    && self.enabled(&d.id, d.enabled, instance)
                {
                    out.extend(
                        self.planned(
                            instance,
                            Spec {
                                kind: CommandKind::Diagnostic,
                                id: &d.id,
                                name: d.name.as_ref(),
                                monitor: Some(monitor),
                                command: &d.command,
                                timeout: d.timeout.0,
                                reset_monitor: false,
                            },
                        )
                        .ok(),
                    );
                }
            }
            for r in &p.pack.recoveries {
                if r.monitor == monitor
                    && r.on_state == Some(state)
                    && self.enabled(&r.id, r.enabled, instance)
                {
                    out.extend(
                        self.planned(
                            instance,
                            Spec {
                                kind: CommandKind::Recovery,
                                id: &r.id,
                                name: r.name.as_ref(),
                                monitor: Some(monitor),
                                command: &r.command,
                                timeout: r.timeout.0,
                                reset_monitor: r.reset_monitor,
                            },
                        )
                        .ok(),
                    );
                }
            }
        }
        out
    }

    /// The recoveries that run once a diagnostic of an instance succeeded.
    pub fn commands_after(&self, instance: &str, diagnostic: &str) -> Vec<PlannedCommand> {
        let mut out = Vec::new();
        for p in self.catalog().packs() {
            for r in &p.pack.recoveries {
                if r.after_diagnostic.as_deref() == Some(diagnostic)
                    && self.enabled(&r.id, r.enabled, instance)
                {
                    out.extend(
                        self.planned(
                            instance,
                            Spec {
                                kind: CommandKind::Recovery,
                                id: &r.id,
                                name: r.name.as_ref(),
                                monitor: Some(&r.monitor),
                                command: &r.command,
                                timeout: r.timeout.0,
                                reset_monitor: r.reset_monitor,
                            },
                        )
                        .ok(),
                    );
                }
            }
        }
        out
    }

    /// A task, diagnostic or recovery an operator asks for on an instance.
    pub fn command_on_demand(
        &self,
        workflow: &str,
        instance: &str,
    ) -> Result<PlannedCommand, String> {
        let inst = self
            .instance(instance)
            .ok_or_else(|| format!("unknown instance {instance}"))?;
        let class = inst.class.clone();
        let applies = |target: &str| self.catalog().is_a(&class, target);
        let monitor_target = |monitor: &str| {
            self.catalog()
                .packs()
                .iter()
                .flat_map(|p| p.pack.monitors.iter())
                .find(|m| m.id == monitor)
                .map(|m| m.target.clone())
        };
        for p in self.catalog().packs() {
            if let Some(t) = p.pack.tasks.iter().find(|t| t.id == workflow) {
                if !applies(&t.target) {
                    return Err(format!(
                        "task {workflow} targets {}, and {instance} is a {class}",
                        t.target
                    ));
                }
                return self.planned(
                    instance,
                    Spec {
                        kind: CommandKind::Task,
                        id: &t.id,
                        name: t.name.as_ref(),
                        monitor: None,
                        command: &t.command,
                        timeout: t.timeout.0,
                        reset_monitor: false,
                    },
                );
            }
            if let Some(d) = p.pack.diagnostics.iter().find(|d| d.id == workflow) {
                if !monitor_target(&d.monitor).is_some_and(|t| applies(&t)) {
                    return Err(format!(
                        "diagnostic {workflow} belongs to {}, which does not apply to {instance}",
                        d.monitor
                    ));
                }
                return self.planned(
                    instance,
                    Spec {
                        kind: CommandKind::Diagnostic,
                        id: &d.id,
                        name: d.name.as_ref(),
                        monitor: Some(&d.monitor),
                        command: &d.command,
                        timeout: d.timeout.0,
                        reset_monitor: false,
                    },
                );
            }
            if let Some(r) = p.pack.recoveries.iter().find(|r| r.id == workflow) {
                if !monitor_target(&r.monitor).is_some_and(|t| applies(&t)) {
                    return Err(format!(
                        "recovery {workflow} belongs to {}, which does not apply to {instance}",
                        r.monitor
                    ));
                }
                return self.planned(
                    instance,
                    Spec {
                        kind: CommandKind::Recovery,
                        id: &r.id,
                        name: r.name.as_ref(),
                        monitor: Some(&r.monitor),
                        command: &r.command,
                        timeout: r.timeout.0,
                        reset_monitor: r.reset_monitor,
                    },
                );
            }
        }
        Err(format!("no task, diagnostic or recovery {workflow}"))
    }
}
