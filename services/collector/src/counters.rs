//! Performance counters of a Linux host, read from `/proc` and `statvfs`. Rates and
//! percentages over time come from the difference with the previous reading.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::inventory::{meminfo, mounts, statvfs, Host};

/// One reading: (object, counter, instance) -> value.
pub type Reading = BTreeMap<(String, String, String), f64>;

/// Keeps the previous raw values to turn counters into rates.
pub struct Sampler {
    host: Host,
    cpu: Option<(u64, u64, u64)>,
    disks: BTreeMap<String, (u64, u64, u64)>,
    nics: BTreeMap<String, (u64, u64)>,
    at: Option<Instant>,
}

fn key(o: &str, c: &str, i: &str) -> (String, String, String) {
    (o.to_string(), c.to_string(), i.to_string())
}

/// (total, idle, iowait) jiffies of the `cpu` line of `/proc/stat`.
pub fn cpu_times(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total = v.iter().take(8).sum();
    Some((total, v[3] + v[4], v[4]))
}

/// name -> (reads completed, writes completed, ms doing I/O) of `/proc/diskstats`.
pub fn disk_stats(text: &str) -> BTreeMap<String, (u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 13 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u64>().ok();
            Some((f[2].to_string(), (n(3)?, n(7)?, n(12)?)))
        })
        .collect()
}

/// name -> (bytes received, bytes sent) of `/proc/net/dev`.
pub fn net_stats(text: &str) -> BTreeMap<String, (u64, u64)> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() >= 9).then(|| (name.trim().to_string(), (f[0], f[8])))
        })
        .collect()
}

impl Sampler {
    pub fn new(host: Host) -> Sampler {
        Sampler {
            host,
            cpu: None,
            disks: BTreeMap::new(),
            nics: BTreeMap::new(),
            at: None,
        }
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.host.root.join(path.trim_start_matches('/')))
            .unwrap_or_default()
    }

    /// Every counter the host has now. Rates need a previous reading: the first reading has
    /// none of them.
    pub fn sample(&mut self) -> Reading {
        let mut out = Reading::new();
        let now = Instant::now();
        let elapsed = self
            .at
            .map(|a| now.duration_since(a).as_secs_f64())
            .filter(|e| *e > 0.0);
        if let Some(cpu) = cpu_times(&self.read("/proc/stat")) {
            if let Some((t0, idle0, wait0)) = self.cpu {
                let dt = cpu.0.saturating_sub(t0) as f64;
                if dt > 0.0 {
                    out.insert(
                        key("Processor", "% Processor Time", "_Total"),
                        100.0 * (1.0 - cpu.1.saturating_sub(idle0) as f64 / dt),
                    );
                    out.insert(
                        key("Processor", "% IO Wait", "_Total"),
                        100.0 * cpu.2.saturating_sub(wait0) as f64 / dt,
                    );
                }
            }
            self.cpu = Some(cpu);
        }
        let mem = self.read("/proc/meminfo");
        if let (Some(total), Some(avail)) =
            (meminfo(&mem, "MemTotal"), meminfo(&mem, "MemAvailable"))
        {
            if total > 0 {
                out.insert(
                    key("Memory", "% Available Memory", ""),
                    100.0 * avail as f64 / total as f64,
                );
                out.insert(key("Memory", "Available Bytes", ""), avail as f64 * 1024.0);
            }
        }
        if let Some(load) = self
            .read("/proc/loadavg")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(key("System", "Load Average 1m", ""), load);
        }
        for (_, mount, _) in mounts(&self.read("/proc/mounts")) {
            if let Some((total, avail)) =
                statvfs(&self.host.root.join(mount.trim_start_matches('/')))
            {
                if total > 0 {
                    out.insert(
                        key("Filesystem", "% Free Space", &mount),
                        100.0 * avail as f64 / total as f64,
                    );
                    out.insert(key("Filesystem", "Free Bytes", &mount), avail as f64);
                }
            }
        }
        let disks = disk_stats(&self.read("/proc/diskstats"));
        if let Some(e) = elapsed {
            for (name, (r, w, io)) in &disks {
                if let Some((r0, w0, io0)) = self.disks.get(name) {
                    out.insert(
                        key("BlockDevice", "% Busy", name),
                        (100.0 * io.saturating_sub(*io0) as f64 / (e * 1000.0)).min(100.0),
                    );
                    out.insert(
                        key("BlockDevice", "Reads/sec", name),
                        r.saturating_sub(*r0) as f64 / e,
                    );
                    out.insert(
                        key("BlockDevice", "Writes/sec", name),
                        w.saturating_sub(*w0) as f64 / e,
                    );
                }
            }
        }
        self.disks = disks;
        let nics = net_stats(&self.read("/proc/net/dev"));
        if let Some(e) = elapsed {
            for (name, (rx, tx)) in &nics {
                if let Some((rx0, tx0)) = self.nics.get(name) {
                    out.insert(
                        key("NetworkInterface", "Bytes Received/sec", name),
                        rx.saturating_sub(*rx0) as f64 / e,
                    );
                    out.insert(
                        key("NetworkInterface", "Bytes Sent/sec", name),
                        tx.saturating_sub(*tx0) as f64 / e,
                    );
                }
            }
        }
        self.nics = nics;
        self.at = Some(now);
        out
    }
}

/// The samples of a reading that a planned perf source asks for (`*` or no instance: all
/// instances of the counter; the `_Total`/empty instance matches itself).
pub fn select<'a>(
    reading: &'a Reading,
    object: &str,
    counter: &str,
    instance: Option<&str>,
) -> Vec<(&'a str, f64)> {
    reading
        .iter()
        .filter(|((o, c, i), _)| {
            o == object && c == counter && instance.is_none_or(|want| want == "*" || want == i)
        })
        .map(|((_, _, i), v)| (i.as_str(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers() {
        assert_eq!(
            cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n"),
            Some((1000, 850, 50))
        );
        assert_eq!(cpu_times("garbage"), None);
        let d = disk_stats("   8       0 sda 10 0 0 0 20 0 0 0 0 500 0 0 0 0 0 0 0\nshort line\n");
        assert_eq!(d["sda"], (10, 20, 500));
        let n = net_stats("Inter-|   Receive\n face |bytes packets\n  eth0: 1000 1 0 0 0 0 0 0 2000 2 0 0 0 0 0 0\n");
        assert_eq!(n["eth0"], (1000, 2000));
    }

    #[test]
    fn rates_come_from_two_readings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = |p: &str, c: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, c).expect("write");
        };
        w("proc/stat", "cpu  100 0 0 800 100 0 0 0\n");
        w("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
        w("proc/loadavg", "0.50 0.40 0.30 1/100 42\n");
        let host = Host {
            root: dir.path().to_path_buf(),
            name: "h".into(),
        };
        let mut s = Sampler::new(host);
        let first = s.sample();
        assert!(
            !first.contains_key(&key("Processor", "% Processor Time", "_Total")),
            "no rate from one reading"
        );
        assert_eq!(first[&key("Memory", "% Available Memory", "")], 25.0);
        assert_eq!(first[&key("System", "Load Average 1m", "")], 0.5);
        w("proc/stat", "cpu  200 0 0 850 150 0 0 0\n");
        let second = s.sample();
        // 200 jiffies passed, 100 idle or waiting: 50% busy, 25% waiting.
        assert_eq!(
            second[&key("Processor", "% Processor Time", "_Total")],
            50.0
        );
        assert_eq!(second[&key("Processor", "% IO Wait", "_Total")], 25.0);
        assert_eq!(
            select(&second, "Processor", "% Processor Time", Some("_Total")).len(),
            1
        );
        assert_eq!(
            select(&second, "Memory", "% Available Memory", None).len(),
            1
        );
    }
}
