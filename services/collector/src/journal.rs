//! Journal events: `journalctl --follow --output=json`, one JSON object per line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use healthstream_contracts::records::{Event, EventLevel};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Most events held between two sends (the rest are dropped and counted).
pub const MAX_PENDING: usize = 10_000;

/// One journal entry as an event; `None` for a line that is not a journal JSON object.
pub fn parse(line: &str) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let o = v.as_object()?;
    let text = |k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let message = match o.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => s.clone(),
        // Binary messages come as byte arrays.
        Some(serde_json::Value::Array(bytes)) => String::from_utf8_lossy(
            &bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect::<Vec<u8>>(),
        )
        .to_string(),
        _ => return None,
    };
    let level = match text("PRIORITY").as_deref() {
        Some("0" | "1" | "2") => EventLevel::Critical,
        Some("3") => EventLevel::Error,
        Some("4") => EventLevel::Warning,
        Some("7") => EventLevel::Verbose,
        _ => EventLevel::Information,
    };
    let time = text("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .map(|us| us / 1000)
        .unwrap_or(0);
    let source = text("_SYSTEMD_UNIT")
        .or_else(|| text("SYSLOG_IDENTIFIER"))
        .unwrap_or_else(|| "kernel".into());
    let mut properties = BTreeMap::new();
    for k in [
        "_SYSTEMD_UNIT",
        "SYSLOG_IDENTIFIER",
        "_PID",
        "_COMM",
        "_HOSTNAME",
    ] {
        if let Some(v) = text(k) {
            properties.insert(k.to_string(), v);
        }
    }
    Some(Event {
        time,
        channel: "journal".into(),
        source,
        event_id: 0,
        level,
        message,
        params: vec![],
        properties,
    })
}

/// Follow the journal in the background; events gather in the returned buffer.
pub fn follow() -> Option<Arc<Mutex<Vec<Event>>>> {
    let mut child = tokio::process::Command::new("journalctl")
        .args(["--follow", "--output=json", "--lines=0", "--no-pager"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let buf: Arc<Mutex<Vec<Event>>> = Arc::default();
    let out = buf.clone();
    tokio::spawn(async move {
        let _child = child;
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(e) = parse(&line) {
                if let Ok(mut b) = buf.lock() {
                    if b.len() < MAX_PENDING {
                        b.push(e);
                    } else {
                        crate::metrics::DROPPED.with_label_values(&["events"]).inc();
                    }
                }
            }
        }
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines() {
        let e = parse(r#"{"MESSAGE":"nginx.service: Failed","PRIORITY":"3","_SYSTEMD_UNIT":"nginx.service","__REALTIME_TIMESTAMP":"1700000000123456"}"#).expect("event");
        assert_eq!(e.level, EventLevel::Error);
        assert_eq!(e.source, "nginx.service");
        assert_eq!(e.time, 1_700_000_000_123);
        let bin =
            parse(r#"{"MESSAGE":[104,105],"SYSLOG_IDENTIFIER":"x"}"#).expect("binary message");
        assert_eq!(bin.message, "hi");
        assert_eq!(bin.level, EventLevel::Information);
        for bad in [
            "",
            "not json",
            "[1,2]",
            r#"{"PRIORITY":"3"}"#,
            r#"{"MESSAGE":5}"#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
