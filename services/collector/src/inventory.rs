//! What the host has: the inventory providers of the Linux pack's discoveries, read from
//! `/proc`, `/sys`, `/etc/os-release` and `systemctl`.

use std::path::Path;
use std::process::Command;

use healthstream_contracts::records::{DiscoveredInstance, InstanceRef, Properties, PropertyValue};

fn s(v: &str) -> PropertyValue {
    PropertyValue::String(v.to_string())
}

fn props(pairs: Vec<(&str, PropertyValue)>) -> Properties {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Where the host's files are (`/` normally; a directory for tests).
#[derive(Debug, Clone)]
pub struct Host {
    pub root: std::path::PathBuf,
    pub name: String,
}

impl Host {
    pub fn local(name: &str) -> Host {
        Host {
            root: "/".into(),
            name: name.to_string(),
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    /// The computer.
    pub fn computer_ref(&self) -> InstanceRef {
        InstanceRef {
            class: "Linux.Computer".into(),
            keys: props(vec![("PrincipalName", s(&self.name))]),
            host: None,
        }
    }

    fn hosted(
        &self,
        class: &str,
        keys: Vec<(&str, PropertyValue)>,
        properties: Properties,
    ) -> DiscoveredInstance {
        DiscoveredInstance {
            class: class.into(),
            keys: props(keys),
            properties,
            host: Some(self.computer_ref()),
        }
    }

    /// `host`: the computer and its operating system.
    pub fn host(&self) -> Vec<DiscoveredInstance> {
        let cpus = self
            .read("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count() as i64)
            .unwrap_or(0);
        let mem_kb = self
            .read("/proc/meminfo")
            .and_then(|m| meminfo(&m, "MemTotal"))
            .unwrap_or(0);
        let os = self.read("/etc/os-release").unwrap_or_default();
        let field = |k: &str| {
            os.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let kernel = self
            .read("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        vec![
            DiscoveredInstance {
                class: "Linux.Computer".into(),
                keys: props(vec![("PrincipalName", s(&self.name))]),
                properties: props(vec![
                    ("NetworkName", s(&self.name)),
                    ("Architecture", s(std::env::consts::ARCH)),
                    ("CpuCount", PropertyValue::Long(cpus)),
                    ("MemoryBytes", PropertyValue::Long(mem_kb * 1024)),
                ]),
                host: None,
            },
            self.hosted(
                "Linux.OperatingSystem",
                vec![],
                props(vec![
                    ("Distribution", s(&field("NAME"))),
                    ("Version", s(&field("VERSION_ID"))),
                    ("Kernel", s(&kernel)),
                ]),
            ),
        ]
    }

    /// `filesystems`: mounted block-device, network and tmpfs filesystems.
    pub fn filesystems(&self) -> Vec<DiscoveredInstance> {
        mounts(&self.read("/proc/mounts").unwrap_or_default())
            .into_iter()
            .map(|(device, mount, kind)| {
                let size = statvfs(&self.root.join(mount.trim_start_matches('/')))
                    .map(|(total, _)| total as i64)
                    .unwrap_or(0);
                self.hosted(
                    "Linux.Filesystem",
                    vec![("MountPoint", s(&mount))],
                    props(vec![
                        ("Device", s(&device)),
                        ("Type", s(&kind)),
                        ("SizeBytes", PropertyValue::Long(size)),
                    ]),
                )
            })
            .collect()
    }

    /// `block_devices`: disks (loop and ram devices left out).
    pub fn block_devices(&self) -> Vec<DiscoveredInstance> {
        let mut out = Vec::new();
        for name in list(&self.root.join("sys/block")) {
            if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
                continue;
            }
            let attr = |a: &str| {
                self.read(&format!("/sys/block/{name}/{a}"))
                    .map(|v| v.trim().to_string())
            };
            let sectors: i64 = attr("size").and_then(|v| v.parse().ok()).unwrap_or(0);
            out.push(self.hosted(
                "Linux.BlockDevice",
                vec![("Name", s(&name))],
                props(vec![
                    ("Model", s(&attr("device/model").unwrap_or_default())),
                    ("SizeBytes", PropertyValue::Long(sectors * 512)),
                    (
                        "Rotational",
                        PropertyValue::Boolean(attr("queue/rotational").as_deref() == Some("1")),
                    ),
                ]),
            ));
        }
        out
    }

    /// `network_interfaces`: every interface but loopback.
    pub fn network_interfaces(&self) -> Vec<DiscoveredInstance> {
        list(&self.root.join("sys/class/net"))
            .into_iter()
            .filter(|n| n != "lo")
            .map(|name| {
                let attr = |a: &str| {
                    self.read(&format!("/sys/class/net/{name}/{a}"))
                        .map(|v| v.trim().to_string())
                };
                let speed = attr("speed")
                    .and_then(|v| v.parse::<i64>().ok())
                    .filter(|v| *v > 0)
                    .unwrap_or(0);
                self.hosted(
                    "Linux.NetworkInterface",
                    vec![("Name", s(&name))],
                    props(vec![
                        ("MacAddress", s(&attr("address").unwrap_or_default())),
                        ("SpeedMbps", PropertyValue::Long(speed)),
                    ]),
                )
            })
            .collect()
    }

    /// `services`: systemd services enabled at boot (none without systemd).
    pub fn services(&self) -> Vec<DiscoveredInstance> {
        let Ok(out) = Command::new("systemctl")
            .args([
                "list-unit-files",
                "--type=service",
                "--state=enabled",
                "--no-legend",
                "--no-pager",
            ])
            .output()
        else {
            return Vec::new();
        };
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|u| u.ends_with(".service") && !u.contains('@'))
            .map(|unit| {
                self.hosted(
                    "Linux.Service",
                    vec![("Name", s(unit))],
                    props(vec![("StartMode", s("enabled"))]),
                )
            })
            .collect()
    }

    /// The instances an inventory provider finds.
    pub fn inventory(&self, provider: &str) -> Option<Vec<DiscoveredInstance>> {
        Some(match provider {
            "host" => self.host(),
            "filesystems" => self.filesystems(),
            "block_devices" => self.block_devices(),
            "network_interfaces" => self.network_interfaces(),
            "services" => self.services(),
            _ => return None,
        })
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A `/proc/meminfo` field in kB.
pub fn meminfo(text: &str, key: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Filesystem types worth monitoring.
const KINDS: [&str; 12] = [
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "vfat", "nfs", "nfs4", "cifs", "tmpfs",
    "overlay",
];

/// (device, mount point, type) of `/proc/mounts`, real filesystems only, each mount point once.
pub fn mounts(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !KINDS.contains(&f[2]) {
            continue;
        }
        let mount = f[1].replace("\\040", " ");
        if mount.starts_with("/proc") || mount.starts_with("/sys") || mount.starts_with("/dev") {
            continue;
        }
        if !out.iter().any(|(_, m, _)| *m == mount) {
            out.push((f[0].to_string(), mount, f[2].to_string()));
        }
    }
    out
}

/// (total bytes, available bytes) of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size();
    Some((st.blocks() * frag, st.blocks_available() * frag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_keep_real_filesystems_once() {
        let text = "sysfs /sys sysfs rw 0 0\nproc /proc proc rw 0 0\n/dev/vda1 / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n//srv/share /mnt/my\\040share cifs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\ngarbage\n";
        let m = mounts(text);
        assert_eq!(
            m,
            [
                ("/dev/vda1".to_string(), "/".to_string(), "ext4".to_string()),
                ("tmpfs".to_string(), "/run".to_string(), "tmpfs".to_string()),
                (
                    "//srv/share".to_string(),
                    "/mnt/my share".to_string(),
                    "cifs".to_string()
                ),
            ]
        );
    }

    #[test]
    fn inventory_of_a_fake_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = |p: &str, c: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, c).expect("write");
        };
        w("proc/cpuinfo", "processor\t: 0\nprocessor\t: 1\n");
        w(
            "proc/meminfo",
            "MemTotal:       2048 kB\nMemAvailable:    1024 kB\n",
        );
        w(
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        );
        w("sys/block/vda/size", "2048\n");
        w("sys/block/vda/queue/rotational", "0\n");
        w("sys/block/loop0/size", "0\n");
        w("sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        w("sys/class/net/eth0/speed", "-1\n");
        w("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        let h = Host {
            root: dir.path().to_path_buf(),
            name: "web-01".into(),
        };
        let host = h.host();
        assert_eq!(host[0].properties["CpuCount"], PropertyValue::Long(2));
        assert_eq!(
            host[0].properties["MemoryBytes"],
            PropertyValue::Long(2048 * 1024)
        );
        assert_eq!(
            host[1].properties["Distribution"],
            PropertyValue::String("Debian GNU/Linux".into())
        );
        let disks = h.block_devices();
        assert_eq!(disks.len(), 1, "loop devices are left out");
        assert_eq!(
            disks[0].properties["SizeBytes"],
            PropertyValue::Long(2048 * 512)
        );
        let nics = h.network_interfaces();
        assert_eq!(nics.len(), 1);
        assert_eq!(
            nics[0].properties["SpeedMbps"],
            PropertyValue::Long(0),
            "unknown speed"
        );
        assert!(h.inventory("toasters").is_none());
    }
}
