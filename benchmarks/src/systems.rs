//! Starting, probing and stopping the three systems: each on free loopback ports with a fresh
//! data directory under the run's work directory, its output in `<name>.log` there.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Which system a [`Server`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hypnos,
    Prometheus,
    VictoriaMetrics,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Hypnos, Kind::Prometheus, Kind::VictoriaMetrics];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hypnos => "Hypnos",
            Kind::Prometheus => "Prometheus",
            Kind::VictoriaMetrics => "VictoriaMetrics",
        }
    }

    /// Column in the table.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A running system.
#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    pub fn start_hypnos(bin: &Path, work: &Path) -> Result<Server> {
        let (http, grpc) = (free_port()?, free_port()?);
        let data_dir = fresh_dir(work, "hypnos-data")?;
        let mut cmd = Command::new(bin);
        cmd.arg("all")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--http-address")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-address")
            .arg(format!("127.0.0.1:{grpc}"))
            // Blocks are cut by the benchmark (admin/flush), not by the clock.
            .arg("--block-duration")
            .arg("10000h")
            .arg("--log-level")
            .arg("warn");
        Self::spawn(Kind::Hypnos, cmd, http, data_dir, work, "/-/ready")
    }

    pub fn start_prometheus(bin: &Path, work: &Path) -> Result<Server> {
        let http = free_port()?;
        let data_dir = fresh_dir(work, "prometheus-data")?;
        let config = work.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n")?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{http}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--storage.tsdb.retention.time=3650d")
            .arg("--log.level=warn");
        Self::spawn(Kind::Prometheus, cmd, http, data_dir, work, "/-/ready")
    }

    pub fn start_victoria(bin: &Path, work: &Path) -> Result<Server> {
        let http = free_port()?;
        let data_dir = fresh_dir(work, "victoria-data")?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("-storageDataPath={}", data_dir.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{http}"))
            .arg("-retentionPeriod=100y")
            // Repeated queries must be computed each time, as in the other systems.
            .arg("-search.disableCache")
            .arg("-search.latencyOffset=0s")
            .arg("-loggerLevel=WARN");
        Self::spawn(Kind::VictoriaMetrics, cmd, http, data_dir, work, "/health")
    }

    fn spawn(
        kind: Kind,
        mut cmd: Command,
        port: u16,
        data_dir: PathBuf,
        work: &Path,
        ready: &str,
    ) -> Result<Server> {
        let log = work.join(format!("{}.log", kind.name().to_lowercase()));
        let out = File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} ({cmd:?})", kind.name()))?;
        let mut server = Server {
            kind,
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            log,
        };
        server.wait_ready(ready, Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&mut self, path: &str, timeout: Duration) -> Result<()> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(format!("{}{path}", self.url)).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited with {status} before it was ready; log {}:\n{}",
                    self.kind.name(),
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after {timeout:?}; log {}:\n{}",
                    self.kind.name(),
                    self.log.display(),
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Peak resident memory (`VmHWM`) so far, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmHWM:").map(|k| k * 1024)
    }

    /// Current resident memory (`VmRSS`), in bytes.
    pub fn rss(&self) -> Option<u64> {
        proc_status_kib(self.pid()?, "VmRSS:").map(|k| k * 1024)
    }

    /// The remote-write 1.0 endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    /// The header that carries the tenant, for systems that have tenants.
    pub fn tenant_header(&self) -> Option<&'static str> {
        (self.kind == Kind::Hypnos).then_some("THANOS-TENANT")
    }

    /// SIGTERM, then SIGKILL after 30 s.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn fresh_dir(work: &Path, name: &str) -> Result<PathBuf> {
    let d = work.join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub(crate) fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Total size in bytes of every file under `dir` (apparent sizes, recursively).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `name` on the PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Installs Debian packages non-interactively (without recommends).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("installing {packages:?} with apt-get");
    let update = Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("run apt-get update")?;
    if !update.success() {
        bail!("apt-get update failed: {update}");
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("run apt-get install")?;
    if !st.success() {
        bail!("apt-get install {packages:?} failed: {st}");
    }
    Ok(())
}
