//! A configuration file that is re-read when it changes (the tokens file, the limits file):
//! parsed at startup (an invalid file stops the start), then polled; a changed file that
//! parses replaces the old configuration, one that does not is logged and ignored, so a
//! typo never takes the running configuration away.
//!
//! Whether that worked is exported as Prometheus exports its own configuration reloads, per
//! file: `hypnos_config_last_reload_successful{file}` (1 when the file now on disk is the
//! one in use, 0 while it cannot be read or parsed) and
//! `hypnos_config_last_reload_success_timestamp_seconds{file}` (when the file in use was
//! loaded).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use prometheus::{Gauge, IntGauge, Opts, Registry};
use tokio::task::JoinHandle;

/// How often reloadable files are checked.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The parsed content of a file, kept current.
pub struct Reloading<T> {
    path: PathBuf,
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
    /// The parsed configuration and the bytes last read (those of the configuration, or of
    /// a broken file, remembered so that it is reported once).
    current: RwLock<(Arc<T>, Vec<u8>)>,
    /// `hypnos_config_last_reload_successful{file}`.
    successful: IntGauge,
    /// `hypnos_config_last_reload_success_timestamp_seconds{file}`.
    success_time: Gauge,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("path", &self.path)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads and parses `path` (`what` names the file in messages).
    pub fn load(
        path: &Path,
        what: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Arc<Self>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?;
        let value = parse_bytes(&bytes, parse)
            .map_err(|e| anyhow::anyhow!("invalid {what} {}: {e}", path.display()))?;
        let opts = |name: &str, help: &str| {
            Opts::new(name, help).const_label("file", path.display().to_string())
        };
        let successful = IntGauge::with_opts(opts(
            "hypnos_config_last_reload_successful",
            "Whether the last check of a configuration file (tokens, limits) found it valid and in use (1) or could not read or parse it, keeping the previous configuration (0).",
        ))?;
        let success_time = Gauge::with_opts(opts(
            "hypnos_config_last_reload_success_timestamp_seconds",
            "When the configuration in use was loaded from the file, in Unix seconds.",
        ))?;
        let this = Self {
            path: path.to_path_buf(),
            what,
            parse,
            current: RwLock::new((Arc::new(value), bytes)),
            successful,
            success_time,
        };
        this.set_success(true);
        Ok(Arc::new(this))
    }

    /// Registers the reload metrics of this file into `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.successful.clone()))?;
        registry.register(Box::new(self.success_time.clone()))?;
        Ok(())
    }

    /// Records the outcome of a check; a success that loaded a configuration also moves the
    /// timestamp.
    fn set_success(&self, loaded: bool) {
        self.successful.set(1);
        if loaded {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.success_time.set(now.as_secs_f64());
        }
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// Re-reads the file; `true` when a changed, valid file replaced the configuration.
    pub fn check(&self) -> bool {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                if self.successful.get() != 0 {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot re-read the {}; keeping the previous one", self.what);
                }
                self.successful.set(0);
                return false;
            }
        };
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == bytes {
            // Unchanged since the last read: still broken if it was, back to good if the
            // file had only been unreadable for a while.
            if self.successful.get() == 0 && parse_bytes(&bytes, self.parse).is_ok() {
                self.set_success(false);
            }
            return false;
        }
        match parse_bytes(&bytes, self.parse) {
            Ok(v) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(v), bytes);
                self.set_success(true);
                tracing::info!(file = %self.path.display(), "reloaded the {}", self.what);
                true
            }
            Err(e) => {
                // Remember the bytes so the same broken file is reported once.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = bytes;
                self.successful.set(0);
                tracing::warn!(file = %self.path.display(), error = %e, "invalid {}; keeping the previous one", self.what);
                false
            }
        }
    }

    /// Polls the file every `every` until `self` is dropped.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let this: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = this.upgrade() else { break };
                tokio::task::spawn_blocking(move || this.check()).await.ok();
            }
        })
    }
}

fn parse_bytes<T>(bytes: &[u8], parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())?;
    parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_num(s: &str) -> Result<u32, String> {
        s.trim().parse().map_err(|e| format!("{e}"))
    }

    #[test]
    fn reloads_valid_changes_and_keeps_the_old_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n");
        std::fs::write(&p, "1").unwrap();
        let r = Reloading::load(&p, "number file", parse_num).unwrap();
        assert_eq!(*r.get(), 1);
        assert!(!r.check());
        std::fs::write(&p, "2").unwrap();
        assert!(r.check());
        assert_eq!(*r.get(), 2);
        std::fs::write(&p, "x").unwrap();
        assert!(!r.check());
        assert_eq!(*r.get(), 2);
        std::fs::remove_file(&p).unwrap();
        assert!(!r.check());
        assert_eq!(*r.get(), 2);
        std::fs::write(&p, "x").unwrap();
        let e = Reloading::load(&p, "number file", parse_num).unwrap_err();
        assert!(e.to_string().starts_with("invalid number file"), "{e}");
    }

    #[test]
    fn reload_outcome_is_exported_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (dir.path().join("n"), dir.path().join("m"));
        std::fs::write(&p, "1").unwrap();
        std::fs::write(&q, "5").unwrap();
        let r = Reloading::load(&p, "number file", parse_num).unwrap();
        let other = Reloading::load(&q, "number file", parse_num).unwrap();
        let registry = Registry::new();
        r.register(&registry).unwrap();
        other.register(&registry).unwrap();
        let value = |name: &str, file: &Path| {
            let fam = registry.gather();
            let fam = fam.iter().find(|f| f.name() == name).unwrap();
            let m = fam
                .get_metric()
                .iter()
                .find(|m| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == "file" && l.value() == file.display().to_string())
                })
                .unwrap();
            m.get_gauge().get_value()
        };
        let ok = |file: &Path| value("hypnos_config_last_reload_successful", file);
        let at = |file: &Path| value("hypnos_config_last_reload_success_timestamp_seconds", file);
        assert_eq!(ok(&p), 1.0);
        let loaded = at(&p);
        assert!(loaded > 1.6e9, "{loaded}");
        // Broken: the old value stays in use, the metric says so; the other file is fine.
        std::fs::write(&p, "x").unwrap();
        assert!(!r.check());
        assert_eq!(*r.get(), 1);
        assert_eq!((ok(&p), at(&p)), (0.0, loaded));
        assert!(!r.check(), "the same broken file again");
        assert_eq!(ok(&p), 0.0);
        assert_eq!(ok(&q), 1.0);
        // Fixed: a new configuration, a new timestamp.
        std::fs::write(&p, "2").unwrap();
        assert!(r.check());
        assert_eq!(ok(&p), 1.0);
        assert!(at(&p) >= loaded);
        // Deleted: 0 while it is missing, 1 again once the same file is back.
        std::fs::remove_file(&p).unwrap();
        assert!(!r.check());
        assert_eq!(ok(&p), 0.0);
        std::fs::write(&p, "2").unwrap();
        assert!(!r.check(), "unchanged content");
        assert_eq!((ok(&p), *r.get()), (1.0, 2));
    }
}
