//! Test hook, compiled only with the cargo feature `testsuite`: with
//! `HYPNOS_TEST_COMPACTOR_PAUSE=<duration>` in the environment, the compactor (of
//! `hypnos compact` and of `hypnos all`) logs each write it is about to make to the bucket
//! (put, multipart upload, delete, copy, rename), numbered from 1 in the process, and waits
//! that long before making it. A test that reads the log can then SIGKILL the process at a
//! chosen step, between two writes of a compaction (`tests/compactor_kill.rs`,
//! `tests/kill.rs`).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use tracing::info;

/// The variable naming the pause before each write.
pub(crate) const PAUSE_VAR: &str = "HYPNOS_TEST_COMPACTOR_PAUSE";

/// `store`, wrapped when the variable is set (a bad value is an error naming it).
pub(crate) fn wrap(store: Arc<dyn ObjectStore>) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let Ok(v) = std::env::var(PAUSE_VAR) else {
        return Ok(store);
    };
    let pause = humantime::parse_duration(&v)
        .map_err(|e| anyhow::anyhow!("{PAUSE_VAR}={v:?} is not a duration: {e}"))?;
    info!(pause = ?pause, "testsuite: the compactor pauses before each write to the bucket");
    Ok(Arc::new(PausingStore {
        inner: store,
        pause,
        steps: Arc::new(AtomicU64::new(0)),
    }))
}

#[derive(Debug)]
struct PausingStore {
    inner: Arc<dyn ObjectStore>,
    pause: Duration,
    steps: Arc<AtomicU64>,
}

/// Logs write number n and waits before it is made.
async fn step(steps: &AtomicU64, pause: Duration, op: &str, path: &Path) {
    let n = steps.fetch_add(1, Ordering::SeqCst) + 1;
    info!(step = n, op, path = %path, "testsuite: compactor write pending");
    tokio::time::sleep(pause).await;
}

impl PausingStore {
    async fn step(&self, op: &str, path: &Path) {
        step(&self.steps, self.pause, op, path).await;
    }
}

impl fmt::Display for PausingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pausing({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for PausingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.step("put", location).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.step("multipart upload", location).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (steps, pause) = (Arc::clone(&self.steps), self.pause);
        let paused = locations
            .then(move |p| {
                let steps = Arc::clone(&steps);
                async move {
                    if let Ok(path) = &p {
                        step(&steps, pause, "delete", path).await;
                    }
                    p
                }
            })
            .boxed();
        self.inner.delete_stream(paused)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.step("copy", to).await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.step("rename", to).await;
        self.inner.rename_opts(from, to, options).await
    }
}
