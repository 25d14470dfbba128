//! The blocks of every tenant known to this process: discovered by listing the bucket and
//! told about by writers ([`BlockSink`]), read through [`BlockReader`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use futures::future::try_join_all;
use hypnos_schemas::block::{BlockReader, read_meta};
use hypnos_schemas::layout::{BlockMeta, TENANTS_DIR, parse_meta_path};
use hypnos_schemas::{
    BlockSink, Labels, Matcher, SchemaError, SeriesData, SeriesSource, TenantId, TimeRange,
};
use object_store::ObjectStore;
use object_store::path::Path;
use parking_lot::RwLock;
use ulid::Ulid;

use crate::merge::{merge_parts, union_labels};

/// Every block of every tenant, by tenant and ULID.
#[derive(Debug)]
pub struct BlockCatalog {
    store: Arc<dyn ObjectStore>,
    blocks: RwLock<BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>>>,
}

impl BlockCatalog {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            blocks: RwLock::new(BTreeMap::new()),
        }
    }

    /// Lists the bucket and brings the catalog in line with it: new blocks are added, blocks
    /// that are gone are dropped. Returns how many blocks are known.
    pub async fn sync(&self) -> Result<usize, SchemaError> {
        let prefix = Path::from(TENANTS_DIR);
        let metas: Vec<(TenantId, Ulid, Path)> = self
            .store
            .list(Some(&prefix))
            .try_filter_map(|o| async move {
                Ok(parse_meta_path(&o.location).map(|(t, u)| (t, u, o.location)))
            })
            .try_collect()
            .await?;
        let known = self.blocks.read().clone();
        let new = metas
            .iter()
            .filter(|(t, u, _)| !known.get(t).is_some_and(|b| b.contains_key(u)));
        let loaded = try_join_all(new.map(|(_, _, p)| read_meta(&self.store, p))).await?;
        let mut next: BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>> = BTreeMap::new();
        for (t, u, _) in &metas {
            if let Some(r) = known.get(t).and_then(|b| b.get(u)) {
                next.entry(t.clone()).or_default().insert(*u, Arc::clone(r));
            }
        }
        for meta in loaded {
            self.insert_into(&mut next, meta)?;
        }
        let mut current = self.blocks.write();
        // Blocks announced through `block_written` while the bucket was being listed are
        // newer than the listing: keep them.
        for (t, blocks) in current.iter() {
            for (u, r) in blocks {
                if !known.get(t).is_some_and(|b| b.contains_key(u)) {
                    next.entry(t.clone()).or_default().insert(*u, Arc::clone(r));
                }
            }
        }
        let n = next.values().map(|b| b.len()).sum();
        *current = next;
        Ok(n)
    }

    fn insert_into(
        &self,
        map: &mut BTreeMap<TenantId, BTreeMap<Ulid, Arc<BlockReader>>>,
        meta: BlockMeta,
    ) -> Result<(), SchemaError> {
        let tenant = TenantId::new(&meta.tenant)?;
        let ulid = meta.ulid;
        let reader = Arc::new(BlockReader::new(Arc::clone(&self.store), meta)?);
        map.entry(tenant).or_default().insert(ulid, reader);
        Ok(())
    }

    /// The blocks of `tenant` overlapping `range`, without those replaced by a compacted
    /// block: a block listed in the `sources` of another known block of the same resolution
    /// is hidden, so its data is never served twice, even before its deletion mark lands.
    pub fn blocks(&self, tenant: &TenantId, range: TimeRange) -> Vec<Arc<BlockReader>> {
        let map = self.blocks.read();
        let Some(b) = map.get(tenant) else {
            return Vec::new();
        };
        let replaced: HashSet<(i64, Ulid)> = b
            .values()
            .flat_map(|r| {
                let res = r.meta().resolution_ms;
                r.meta().sources.iter().map(move |u| (res, *u))
            })
            .collect();
        b.values()
            .filter(|r| {
                range.overlaps(r.meta().min_time, r.meta().max_time)
                    && !replaced.contains(&(r.meta().resolution_ms, r.meta().ulid))
            })
            .cloned()
            .collect()
    }

    /// The metas of every block, by tenant.
    pub fn metas(&self) -> Vec<BlockMeta> {
        self.blocks
            .read()
            .values()
            .flat_map(|b| b.values().map(|r| r.meta().clone()))
            .collect()
    }
}

impl BlockSink for BlockCatalog {
    fn block_written(&self, meta: &BlockMeta) {
        let mut map = self.blocks.write();
        if let Err(e) = self.insert_into(&mut map, meta.clone()) {
            tracing::error!(block = %meta.ulid, error = %e, "cannot register written block");
        }
    }
}

#[async_trait]
impl SeriesSource for BlockCatalog {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        let blocks = self.blocks(tenant, range);
        let parts = try_join_all(blocks.iter().map(|b| b.select(tenant, matchers, range))).await?;
        Ok(merge_parts(parts.into_iter().flatten()))
    }

    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        let blocks = self.blocks(tenant, range);
        let parts = try_join_all(blocks.iter().map(|b| b.series(tenant, matchers, range))).await?;
        Ok(union_labels(parts))
    }
}
