//! The bucket lease: `compactor.lock` at the bucket root names the compactor that owns the
//! bucket until `expires_at_ms`. It is created with a conditional put (`PutMode::Create`), so
//! two compactors starting together cannot both win; an expired lease is taken over with a
//! conditional update (`PutMode::Update` on its ETag) where the store supports it, and with a
//! delete followed by a conditional create where it does not (the local file system), which
//! can only lose to another compactor, never let two win.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::CompactError;

/// Path of the lease, relative to the bucket root.
pub const LOCK_FILE: &str = "compactor.lock";

/// The owner a damaged (unparseable) lease is read as; it is expired.
pub const DAMAGED_OWNER: &str = "<damaged lease>";

/// Contents of `compactor.lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub expires_at_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn payload(owner: &str, ttl: Duration) -> PutPayload {
    let lease = Lease {
        owner: owner.to_string(),
        expires_at_ms: now_ms() + ttl.as_millis() as i64,
    };
    serde_json::to_vec(&lease).expect("lease serializes").into()
}

/// Takes (or renews) the lease for `owner` for `ttl`. Fails with [`CompactError::Locked`]
/// when another owner holds an unexpired lease.
pub async fn acquire(
    store: &Arc<dyn ObjectStore>,
    owner: &str,
    ttl: Duration,
) -> Result<(), CompactError> {
    let path = Path::from(LOCK_FILE);
    let create = PutOptions::from(PutMode::Create);
    match store
        .put_opts(&path, payload(owner, ttl), create.clone())
        .await
    {
        Ok(_) => return Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(object_store::Error::NotImplemented { .. }) => {
            // No conditional puts: check, then write (documented as best effort).
            if let Some((held, _)) = read(store, &path).await?
                && held.owner != owner
                && held.expires_at_ms > now_ms()
            {
                return Err(CompactError::Locked {
                    owner: held.owner,
                    expires_at_ms: held.expires_at_ms,
                });
            }
            store.put(&path, payload(owner, ttl)).await?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    let Some((held, version)) = read(store, &path).await? else {
        // Released in between: try once more.
        store.put_opts(&path, payload(owner, ttl), create).await?;
        return Ok(());
    };
    if held.owner != owner && held.expires_at_ms > now_ms() {
        return Err(CompactError::Locked {
            owner: held.owner,
            expires_at_ms: held.expires_at_ms,
        });
    }
    // Ours to renew, or expired: replace it only if it is still the lease we read.
    match store
        .put_opts(
            &path,
            payload(owner, ttl),
            PutOptions::from(PutMode::Update(version)),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotImplemented { .. }) => {
            store.delete(&path).await?;
            store
                .put_opts(
                    &path,
                    payload(owner, ttl),
                    PutOptions::from(PutMode::Create),
                )
                .await
                .map_err(|e| match e {
                    object_store::Error::AlreadyExists { .. } => CompactError::Locked {
                        owner: "another compactor".into(),
                        expires_at_ms: 0,
                    },
                    e => e.into(),
                })?;
            Ok(())
        }
        Err(object_store::Error::Precondition { .. }) => Err(CompactError::Locked {
            owner: "another compactor".into(),
            expires_at_ms: 0,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Gives the lease up if `owner` holds it.
pub async fn release(store: &Arc<dyn ObjectStore>, owner: &str) -> Result<(), CompactError> {
    let path = Path::from(LOCK_FILE);
    if let Some((held, _)) = read(store, &path).await?
        && held.owner == owner
    {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The current lease and its version, if any.
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<(Lease, UpdateVersion)>, CompactError> {
    let got = match store.get(path).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got.bytes().await?;
    let lease = match serde_json::from_slice::<Lease>(&bytes) {
        Ok(lease) => lease,
        // A torn or garbled lease protects nothing: it counts as expired, so the next
        // `acquire` replaces it (still conditionally, on the version read here).
        Err(e) => {
            tracing::warn!(
                file = %path,
                bytes = bytes.len(),
                error = %e,
                "damaged compactor lease treated as expired; it is replaced at the next acquire"
            );
            Lease {
                owner: DAMAGED_OWNER.into(),
                expires_at_ms: 0,
            }
        }
    };
    Ok(Some((lease, version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test]
    async fn one_owner_at_a_time_and_takeover_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        acquire(&store, "a", Duration::from_secs(60)).await.unwrap();
        acquire(&store, "a", Duration::from_secs(60)).await.unwrap();
        assert!(matches!(
            acquire(&store, "b", Duration::from_secs(60)).await,
            Err(CompactError::Locked { .. })
        ));
        release(&store, "b").await.unwrap();
        assert!(acquire(&store, "b", Duration::from_secs(60)).await.is_err());
        // An expired lease is taken over.
        acquire(&store, "a", Duration::ZERO).await.unwrap();
        acquire(&store, "b", Duration::from_secs(60)).await.unwrap();
        release(&store, "b").await.unwrap();
        acquire(&store, "c", Duration::from_secs(60)).await.unwrap();
    }
}
