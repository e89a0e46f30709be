//! Commands from the pipeline (diagnostics, recoveries, tasks): the collector runs only
//! what its packs declare (the allow-list: each declared command line, where a
//! `$Target/...$` reference stands for one argument), within the command's time limit,
//! and reports at most a bounded amount of output. Programs run directly, never through a
//! shell.

use std::path::Path;
use std::time::Duration;

use healthstream_contracts::records::{Command, TaskResult, TaskStatus};
use tokio::io::AsyncReadExt;

/// Output kept per command, by default.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The command lines a collector may run.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Each allowed command line: per argument, its literal parts around references.
    templates: Vec<Vec<Vec<String>>>,
}

/// A template argument's literal parts: `a$Target/x$b` is `["a", "b"]`, a reference between
/// each two parts.
fn parts(arg: &str) -> Vec<String> {
    arg.split('$')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Does `actual` fit a template argument (each reference: at least one character)?
fn fits(parts: &[String], actual: &str) -> bool {
    match parts {
        [] => actual.is_empty(),
        [only] => actual == only,
        [first, rest @ ..] => {
            let Some(mut tail) = actual.strip_prefix(first.as_str()) else {
                return false;
            };
            let (last, middle) = rest.split_last().expect("at least one");
            for lit in middle {
                // At least one character of the reference, then the literal.
                let Some(pos) = tail.get(1..).and_then(|t| t.find(lit.as_str())) else {
                    return false;
                };
                tail = &tail[pos + 1 + lit.len()..];
            }
            tail.len() > last.len() && tail.ends_with(last.as_str())
        }
    }
}

impl AllowList {
    /// The command lines of the tasks, diagnostics and recoveries of these packs.
    pub fn from_packs(packs: &[(&str, &str)]) -> Result<AllowList, String> {
        let mut templates = Vec::new();
        for (path, text) in packs {
            let p = healthstream_model::load::parse_pack(text, Path::new(path))
                .map_err(|e| e.to_string())?;
            let pack = &p.pack;
            let lines = pack
                .tasks
                .iter()
                .map(|t| &t.command)
                .chain(pack.diagnostics.iter().map(|d| &d.command))
                .chain(pack.recoveries.iter().map(|r| &r.command));
            for line in lines {
                templates.push(line.iter().map(|a| parts(a)).collect());
            }
        }
        Ok(AllowList { templates })
    }

    /// The shipped packs' command lines.
    pub fn shipped() -> AllowList {
        AllowList::from_packs(&healthstream_model::SHIPPED).unwrap_or_default()
    }

    /// May this command line run?
    pub fn allows(&self, argv: &[String]) -> bool {
        self.templates.iter().any(|t| {
            t.len() == argv.len()
                && t.iter()
                    .zip(argv)
                    .all(|(p, a)| !a.contains('\0') && fits(p, a))
        })
    }
}

fn result(
    c: &Command,
    status: TaskStatus,
    exit_code: Option<i32>,
    output: String,
    truncated: bool,
    started_at: i64,
) -> TaskResult {
    TaskResult {
        id: String::new(),
        command_id: c.id.clone(),
        root_host: c.root_host.clone(),
        collector: c.collector.clone(),
        status,
        exit_code,
        output,
        truncated,
        started_at,
        finished_at: crate::now_ms(),
    }
}

/// Keep at most `max` bytes (on a character boundary).
fn bounded(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    (text, true)
}

/// Run a command if allowed: its result (refused, succeeded, failed or timed out).
pub async fn run(c: &Command, allow: &AllowList, max_output: usize) -> TaskResult {
    let started = crate::now_ms();
    if c.module != "exec" {
        return result(
            c,
            TaskStatus::Refused,
            None,
            format!("module {:?} is not run by this collector", c.module),
            false,
            started,
        );
    }
    let argv: Vec<String> = match c.parameters.get("argv").map(|a| serde_json::from_str(a)) {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return result(
                c,
                TaskStatus::Refused,
                None,
                format!("parameter argv is not a JSON array of strings: {e}"),
                false,
                started,
            )
        }
        None => {
            return result(
                c,
                TaskStatus::Refused,
                None,
                "parameter argv is missing".into(),
                false,
                started,
            )
        }
    };
    if !allow.allows(&argv) {
        metrics::REFUSED.inc();
        return result(
            c,
            TaskStatus::Refused,
            None,
            format!("{argv:?} is not on this collector's allow-list (the command lines its packs declare)"),
            false,
            started,
        );
    }
    let Some((program, args)) = argv.split_first() else {
        return result(
            c,
            TaskStatus::Refused,
            None,
            "empty command line".into(),
            false,
            started,
        );
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return result(
                c,
                TaskStatus::Failed,
                None,
                format!("cannot run {program}: {e}"),
                false,
                started,
            )
        }
    };
    let limit = Duration::from_secs(u64::try_from(c.timeout_seconds.max(1)).unwrap_or(60));
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let cap = (max_output + 1) as u64;
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(cap).read_to_end(&mut out).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(cap).read_to_end(&mut err).await;
        }
        let status = child.wait().await;
        (out, err, status)
    };
    match tokio::time::timeout(limit, work).await {
        Ok((out, err, status)) => {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            if !err.is_empty() {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&String::from_utf8_lossy(&err));
            }
            let (text, truncated) = bounded(text, max_output);
            match status {
                Ok(s) if s.success() => {
                    result(c, TaskStatus::Succeeded, s.code(), text, truncated, started)
                }
                Ok(s) => result(c, TaskStatus::Failed, s.code(), text, truncated, started),
                Err(e) => result(
                    c,
                    TaskStatus::Failed,
                    None,
                    format!("{program}: {e}"),
                    false,
                    started,
                ),
            }
        }
        Err(_) => result(
            c,
            TaskStatus::TimedOut,
            None,
            format!("killed after its time limit of {}s", limit.as_secs()),
            false,
            started,
        ),
    }
}

mod metrics {
    use std::sync::LazyLock;

    use prometheus::{register_int_counter, IntCounter};

    pub(super) static REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
        register_int_counter!(
            "healthstream_collector_commands_refused_total",
            "Commands refused because their command line is not on the allow-list."
        )
        .expect("metric registers once")
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use healthstream_contracts::records::CommandKind;

    fn command(argv: &[&str], timeout: i32) -> Command {
        Command {
            id: "c1".into(),
            root_host: "web-01".into(),
            collector: "web-01".into(),
            kind: CommandKind::Task,
            workflow_id: "t".into(),
            instance_id: "i".into(),
            module: "exec".into(),
            parameters: BTreeMap::from([(
                "argv".into(),
                serde_json::to_string(argv).expect("json"),
            )]),
            timeout_seconds: timeout,
            requested_by: "ops".into(),
            requested_at: 0,
            alert_id: None,
        }
    }

    fn allow(lines: &str) -> AllowList {
        let pack = format!(
            "[pack]\nid = \"Allow\"\nversion = \"1\"\n[[reference]]\npack = \"System.Library\"\nversion = \"1.0\"\n{lines}"
        );
        AllowList::from_packs(&[("allow.toml", &pack)]).expect("pack")
    }

    #[test]
    fn the_allow_list_follows_the_declared_command_lines() {
        let a = AllowList::shipped();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(a.allows(&s(&["systemctl", "status", "--no-pager", "sshd.service"])));
        assert!(a.allows(&s(&["du", "-x", "-h", "--max-depth=2", "/var"])));
        assert!(
            !a.allows(&s(&["systemctl", "status", "--no-pager"])),
            "an argument short"
        );
        assert!(
            !a.allows(&s(&["systemctl", "stop", "sshd.service"])),
            "not declared"
        );
        assert!(!a.allows(&s(&["rm", "-rf", "/"])));
        assert!(
            !a.allows(&s(&["systemctl", "status", "--no-pager", ""])),
            "a reference is never empty"
        );
        assert!(!a.allows(&s(&["systemctl", "status", "--no-pager", "a\0b"])));
        let b = allow("[[task]]\nid = \"Allow.Unit\"\ntarget = \"System.Entity\"\ncommand = [\"x\", \"--unit=$Target/Property[Name=\\\"Name\\\"]$.service\"]\n");
        assert!(b.allows(&s(&["x", "--unit=ssh.service"])));
        assert!(!b.allows(&s(&["x", "--unit=.service"])));
        assert!(!b.allows(&s(&["x", "--units=ssh.service"])));
    }

    #[tokio::test]
    async fn runs_within_limits_and_reports() {
        let a = allow("[[task]]\nid = \"Allow.Echo\"\ntarget = \"System.Entity\"\ncommand = [\"sh\", \"-c\", \"$Target/Property[Name=\\\"Script\\\"]$\"]\n");
        let ok = run(
            &command(&["sh", "-c", "echo hello; echo oops >&2"], 5),
            &a,
            1024,
        )
        .await;
        assert_eq!((ok.status, ok.exit_code), (TaskStatus::Succeeded, Some(0)));
        assert_eq!(ok.output, "hello\noops\n");
        assert!(!ok.truncated);
        let failed = run(&command(&["sh", "-c", "exit 3"], 5), &a, 1024).await;
        assert_eq!(
            (failed.status, failed.exit_code),
            (TaskStatus::Failed, Some(3))
        );
        let big = run(
            &command(&["sh", "-c", "head -c 5000 /dev/zero | tr '\\\\0' x"], 5),
            &a,
            100,
        )
        .await;
        assert_eq!(
            (big.status, big.output.len(), big.truncated),
            (TaskStatus::Succeeded, 100, true)
        );
        let slow = run(&command(&["sh", "-c", "sleep 5"], 1), &a, 1024).await;
        assert_eq!(slow.status, TaskStatus::TimedOut);
        assert!(
            slow.finished_at - slow.started_at < 4_000,
            "killed at its limit"
        );
        let refused = run(&command(&["rm", "-rf", "scratch"], 5), &a, 1024).await;
        assert_eq!(refused.status, TaskStatus::Refused);
        assert!(
            refused
                .output
                .contains("not on this collector's allow-list"),
            "{}",
            refused.output
        );
        let mut bad = command(&["sh"], 5);
        bad.parameters.insert("argv".into(), "not json".into());
        let r = run(&bad, &a, 1024).await;
        assert!(
            r.status == TaskStatus::Refused && r.output.contains("not a JSON array"),
            "{}",
            r.output
        );
        bad.module = "powershell".into();
        assert!(run(&bad, &a, 1024)
            .await
            .output
            .contains("module \"powershell\""));
    }
}
