//! SCOM's standard library elements and their native equivalents.
//!
//! Elements of Microsoft's sealed library packs that have a counterpart in healthstream's
//! standard library are mapped onto it; the imported pack then references `System.Library`
//! instead of the Microsoft pack.

/// The native standard library pack.
pub const NATIVE_LIBRARY: &str = "System.Library";

/// (SCOM element id, native id) for classes, relationships and monitors.
const MAPPED: &[(&str, &str)] = &[
    ("System.Entity", "System.Entity"),
    ("System.LogicalEntity", "System.LogicalEntity"),
    ("System.Computer", "System.Computer"),
    ("System.Group", "System.Group"),
    ("System.ApplicationComponent", "System.ApplicationComponent"),
    ("System.LocalApplication", "System.LocalApplication"),
    ("Microsoft.SystemCenter.InstanceGroup", "System.Group"),
    ("Microsoft.SystemCenter.ComputerGroup", "System.Group"),
    ("Microsoft.Windows.Computer", "System.Computer"),
    ("Microsoft.Windows.Server.Computer", "System.Computer"),
    (
        "Microsoft.Windows.LocalApplication",
        "System.LocalApplication",
    ),
    (
        "Microsoft.Windows.ApplicationComponent",
        "System.ApplicationComponent",
    ),
    ("Microsoft.Windows.ComputerRole", "System.LocalApplication"),
    ("Microsoft.SystemCenter.HealthService", "System.Collector"),
    ("Microsoft.SystemCenter.Agent", "System.Collector"),
    (
        "Microsoft.SystemCenter.InstanceGroupContainsEntities",
        "System.GroupContainsEntities",
    ),
    (
        "Microsoft.SystemCenter.ComputerGroupContainsComputer",
        "System.GroupContainsEntities",
    ),
    (
        "Microsoft.Windows.ComputerHostsLocalApplication",
        "System.ComputerHostsLocalApplication",
    ),
    ("System.Containment", "System.Containment"),
    ("System.Reference", "System.Reference"),
    ("System.Health.EntityState", "System.Health.EntityState"),
    (
        "System.Health.AvailabilityState",
        "System.Health.AvailabilityState",
    ),
    (
        "System.Health.PerformanceState",
        "System.Health.PerformanceState",
    ),
    ("System.Health.SecurityState", "System.Health.SecurityState"),
    (
        "System.Health.ConfigurationState",
        "System.Health.ConfigurationState",
    ),
];

/// The Microsoft library packs whose mapped elements become native ones.
pub const LIBRARY_PACKS: &[&str] = &[
    "System.Library",
    "System.Health.Library",
    "System.Performance.Library",
    "Microsoft.SystemCenter.Library",
    "Microsoft.SystemCenter.InstanceGroup.Library",
    "Microsoft.Windows.Library",
    "Microsoft.SystemCenter.DataWarehouse.Library",
];

/// The native element for a SCOM library element.
pub fn native(pack: &str, id: &str) -> Option<&'static str> {
    if !LIBRARY_PACKS.contains(&pack) {
        return None;
    }
    MAPPED.iter().find(|(s, _)| *s == id).map(|(_, n)| *n)
}

/// Module types that healthstream carries over (their behaviour is native).
pub mod modules {
    /// Perf counter data sources.
    pub fn is_perf_provider(id: &str) -> bool {
        matches!(
            id,
            "System.Performance.OptimizedDataProvider"
                | "System.Performance.DataProvider"
                | "Microsoft.Windows.PerformanceDataProvider"
        )
    }
    /// Event log data sources.
    pub fn is_event_provider(id: &str) -> bool {
        matches!(
            id,
            "Microsoft.Windows.EventProvider" | "Microsoft.Windows.EventCollector"
        )
    }
    /// Scheduler data sources.
    pub fn is_scheduler(id: &str) -> bool {
        matches!(id, "System.Scheduler" | "System.SimpleScheduler")
    }
    /// Write actions that store perf data.
    pub fn is_collect_perf(id: &str) -> bool {
        matches!(
            id,
            "Microsoft.SystemCenter.CollectPerformanceData"
                | "Microsoft.SystemCenter.DataWarehouse.PublishPerformanceData"
        )
    }
    /// Write actions that store events.
    pub fn is_collect_event(id: &str) -> bool {
        matches!(
            id,
            "Microsoft.SystemCenter.CollectEvent"
                | "Microsoft.SystemCenter.DataWarehouse.PublishEventData"
        )
    }
    /// The alert write action.
    pub fn is_generate_alert(id: &str) -> bool {
        id == "System.Health.GenerateAlert"
    }
    /// Command probes and write actions that run a program.
    pub fn is_command(id: &str) -> bool {
        matches!(id, "System.CommandExecuterProbe" | "System.CommandExecuter")
    }
    /// Script modules (Windows only).
    pub fn is_script(id: &str) -> bool {
        id.contains("PowerShell")
            || id.contains("Script")
            || id.contains("Wmi")
            || id.contains("Registry")
    }
    /// The perf threshold monitor types, by the native detection they become.
    pub fn perf_monitor_type(id: &str) -> Option<&'static str> {
        let last = id.rsplit('.').next().unwrap_or(id);
        if !(id.starts_with("System.Performance.")
            || id.starts_with("Microsoft.Windows.WmiBased.Performance.")
            || id.starts_with("Microsoft.Windows.ScriptBased.Performance"))
        {
            return None;
        }
        Some(match last {
            "ConsecutiveSamplesThreshold" => "consecutive_samples",
            "AverageThreshold" => "average_threshold",
            "DeltaThreshold" => "delta_threshold",
            "DoubleThreshold" => "double_threshold",
            "SimpleThreshold" | "ThresholdMonitorType" => "simple_threshold",
            _ => return None,
        })
    }
    /// The event monitor types, by the native detection they become.
    pub fn event_monitor_type(id: &str) -> Option<&'static str> {
        Some(match id {
            "Microsoft.Windows.2SingleEventLog2StateMonitorType" => "event_reset",
            "Microsoft.Windows.SingleEventLogManualReset2StateMonitorType" => "manual_reset",
            "Microsoft.Windows.SingleEventLogTimer2StateMonitorType" => "timer_reset",
            _ => return None,
        })
    }
    /// The service monitor type.
    pub fn is_service_monitor(id: &str) -> bool {
        matches!(
            id,
            "Microsoft.Windows.CheckNTServiceStateMonitorType"
                | "Microsoft.Windows.BasicServiceMonitor"
        )
    }
}

/// SCOM's event data fields, by the names healthstream's events use.
pub fn event_field(xpath: &str) -> String {
    match xpath {
        "EventDisplayNumber" | "EventNumber" => "EventId".into(),
        "PublisherName" | "EventSourceName" => "Source".into(),
        "EventLevel" => "Level".into(),
        "EventDescription" => "Message".into(),
        "Channel" | "LoggingComputer" => xpath.to_string(),
        other => other.to_string(),
    }
}
