//! A real `aula-server` process for the benchmarks that watch the server itself (memory, soak,
//! churn): started from the release build beside this executable, on free loopback ports, and
//! read from the outside: its resident set, CPU time, open files and threads from Linux's
//! /proc, and its rooms, participants and async tasks from its `/metrics`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cpu;

/// How to start the server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// The binary; `aula-server` beside this executable when unset.
    pub binary: Option<PathBuf>,
    /// Where it stores boards, chat and attendance (in memory when unset).
    pub data_dir: Option<PathBuf>,
    /// Most signaling connections per client address (the server's default when unset).
    pub max_connections_per_ip: Option<usize>,
}

/// A running `aula-server`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    url: String,
    http_addr: String,
    metrics: reqwest::Client,
}

/// One reading of the server process from /proc.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ProcSample {
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// User + system CPU time since the process started, seconds.
    pub cpu_s: f64,
    /// Open file descriptors (sockets included).
    pub fds: u64,
    /// OS threads.
    pub threads: u64,
}

/// What the server's `/metrics` says about its load and its runtime.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ServerCounts {
    /// Tasks alive on its async runtime.
    pub tasks: u64,
    /// Open rooms.
    pub rooms: u64,
    /// Participants in all rooms.
    pub participants: u64,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts the server in dev mode and waits until it listens.
    pub fn start(options: &ServerOptions) -> anyhow::Result<Self> {
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("bench executable has no directory")?
                .join("aula-server"),
        };
        if !binary.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p aula-server` (or pass its path)",
                binary.display()
            );
        }
        let mut command = Command::new(&binary);
        command
            .args(["--dev", "--listen", "127.0.0.1:0", "--rtc-port", "0"])
            .env("AULA_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(dir) = &options.data_dir {
            command.arg("--data-dir").arg(dir);
        }
        if let Some(max) = options.max_connections_per_ip {
            command.arg("--max-connections-per-ip").arg(max.to_string());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let http_addr = loop {
            let line = lines
                .next()
                .context("the server exited before listening")??;
            if let Some(rest) = line.strip_prefix("aula-server listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        // The HTTP client is built with rustls, which wants a crypto provider even for the
        // plain-HTTP requests made here. Installing fails harmlessly when one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A new connection per request: the server closes a kept-alive connection that has not
        // upgraded to a WebSocket after a while, and a request sent on it at that moment fails
        // with "connection closed before message completed" (an hour-long soak lost its run to
        // one). reqwest does not retry such a request; a connection per sample costs nothing.
        let metrics = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            child,
            url: format!("ws://{http_addr}"),
            http_addr,
            metrics,
        })
    }

    /// The WebSocket URL clients join at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        status_field(self.pid(), "VmRSS:")
    }

    /// Reads the process's resident set, CPU time, open files and threads.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let pid = self.pid();
        Ok(ProcSample {
            rss_kib: status_field(pid, "VmRSS:")?,
            cpu_s: cpu::process_cpu(&pid.to_string())
                .context("no CPU time in /proc (Linux only)")?
                .as_secs_f64(),
            fds: open_files(pid)?,
            threads: status_field(pid, "Threads:")?,
        })
    }

    /// The server's open files by kind: `socket`, `pipe`, an anonymous inode's name
    /// (`anon_inode:[eventpoll]`) or a file's path, each with how many are open. Compared
    /// before and after a run, it says what kind of descriptor a growth is.
    pub fn open_file_kinds(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut kinds = BTreeMap::new();
        for entry in std::fs::read_dir(Path::new(&dir)).with_context(|| format!("reading {dir}"))? {
            // A descriptor closed while the directory is read is simply not counted.
            let Ok(target) = entry.and_then(|e| std::fs::read_link(e.path())) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            let kind = match target.split_once(":[") {
                Some((kind @ ("socket" | "pipe"), _)) => kind.to_owned(),
                _ => target,
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        Ok(kinds)
    }

    /// Reads the server's task, room and participant counts from `/metrics`.
    pub async fn counts(&self) -> anyhow::Result<ServerCounts> {
        let text = self
            .metrics
            .get(format!("http://{}/metrics", self.http_addr))
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()?
            .text()
            .await?;
        parse_counts(&text)
    }
}

/// The kinds of open file whose count changed from `before` to `after`, as
/// `socket 7 -> 8, /data/aula.redb 0 -> 1`; empty when none did.
pub fn open_file_changes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let kinds: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let (b, a) = (
                before.get(kind).copied().unwrap_or(0),
                after.get(kind).copied().unwrap_or(0),
            );
            (b != a).then(|| format!("{kind} {b} -> {a}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the counts out of the metrics text.
fn parse_counts(text: &str) -> anyhow::Result<ServerCounts> {
    let value = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|line| {
                let (metric, value) = line.split_once(' ')?;
                (metric == name).then(|| value.trim().parse::<u64>().ok())?
            })
            .with_context(|| format!("{name} missing from /metrics (an older aula-server?)"))
    };
    Ok(ServerCounts {
        tasks: value("aula_runtime_alive_tasks")?,
        rooms: value("aula_rooms")?,
        participants: value("aula_participants")?,
    })
}

/// A `Name:   value kB` field of /proc/PID/status, as a number.
fn status_field(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (Linux only)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} missing from /proc/{pid}/status"))
}

/// The entries of /proc/PID/fd.
fn open_files(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(Path::new(&dir))
        .with_context(|| format!("reading {dir}"))?
        .count() as u64)
}

/// This machine: its cores and its load averages (1, 5 and 15 minutes), from /proc/loadavg.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MachineLoad {
    /// Logical cores.
    pub cores: usize,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
}

impl MachineLoad {
    /// Reads it now.
    pub fn now() -> Self {
        let mut load = [0.0; 3];
        if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
            for (slot, value) in load.iter_mut().zip(text.split_whitespace()) {
                *slot = value.parse().unwrap_or(0.0);
            }
        }
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            load,
        }
    }
}

impl std::fmt::Display for MachineLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cores, load average {:.2} {:.2} {:.2}",
            self.cores, self.load[0], self.load[1], self.load[2]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_changes_name_only_the_kinds_that_changed() {
        let map = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let before = map(&[("socket", 7), ("pipe", 2)]);
        let after = map(&[("socket", 8), ("pipe", 2), ("/data/aula.redb", 1)]);
        assert_eq!(
            open_file_changes(&before, &after),
            "/data/aula.redb 0 -> 1, socket 7 -> 8"
        );
        assert_eq!(open_file_changes(&before, &before), "");
    }

    #[test]
    fn counts_come_from_the_metrics_text() {
        let text = "# HELP aula_rooms Open rooms.\n# TYPE aula_rooms gauge\naula_rooms 3\n\
                    aula_participants 17\naula_runtime_alive_tasks 212\n\
                    aula_runtime_workers 2\n# EOF\n";
        let counts = parse_counts(text).unwrap();
        assert_eq!(
            (counts.tasks, counts.rooms, counts.participants),
            (212, 3, 17)
        );
        let old = "aula_rooms 3\naula_participants 17\n# EOF\n";
        let err = parse_counts(old).unwrap_err().to_string();
        assert!(err.contains("aula_runtime_alive_tasks"), "{err}");
    }

    #[test]
    fn this_process_can_be_read_from_proc() {
        if !Path::new("/proc/self/status").exists() {
            return; // not Linux
        }
        let pid = std::process::id();
        assert!(status_field(pid, "VmRSS:").unwrap() > 0);
        assert!(status_field(pid, "Threads:").unwrap() >= 1);
        // Other tests run beside this one and may hold a file or two at any moment.
        let before = open_files(pid).unwrap();
        let files: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        assert!(open_files(pid).unwrap() >= before + 60);
        drop(files);
        assert!(status_field(pid, "NoSuchField:").is_err());
    }
}
