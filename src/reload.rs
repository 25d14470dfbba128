//! A configuration file that is re-read when it changes (the tokens file, the limits file):
//! parsed at startup (an invalid file stops the start), then polled; a changed file that
//! parses replaces the old configuration, one that does not is logged and ignored, so a
//! typo never takes the running configuration away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;

/// How often reloadable files are checked.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The parsed content of a file, kept current.
pub(crate) struct Reloading<T> {
    path: PathBuf,
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
    /// The parsed configuration and the bytes it came from.
    current: RwLock<(Arc<T>, Vec<u8>)>,
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
    pub(crate) fn load(
        path: &Path,
        what: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Arc<Self>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?;
        let value = parse_bytes(&bytes, parse)
            .map_err(|e| anyhow::anyhow!("invalid {what} {}: {e}", path.display()))?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            what,
            parse,
            current: RwLock::new((Arc::new(value), bytes)),
        }))
    }

    /// The configuration now.
    pub(crate) fn get(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// Re-reads the file; `true` when a changed, valid file replaced the configuration.
    pub(crate) fn check(&self) -> bool {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot re-read the {}; keeping the previous one", self.what);
                return false;
            }
        };
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == bytes {
            return false;
        }
        match parse_bytes(&bytes, self.parse) {
            Ok(v) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(v), bytes);
                tracing::info!(file = %self.path.display(), "reloaded the {}", self.what);
                true
            }
            Err(e) => {
                // Remember the bytes so the same broken file is reported once.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = bytes;
                tracing::warn!(file = %self.path.display(), error = %e, "invalid {}; keeping the previous one", self.what);
                false
            }
        }
    }

    /// Polls the file every `every` until `self` is dropped.
    pub(crate) fn spawn_watch(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
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
}
