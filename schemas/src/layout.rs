//! Where things live in the object store, and the JSON meta of a block.
//!
//! ```text
//! tenants/<tenant>/<block ULID>/series.parquet   one row per series: ref, metric name, labels
//! tenants/<tenant>/<block ULID>/samples.parquet  one row per sample (float or histogram), sorted by (series_ref, timestamp)
//! tenants/<tenant>/<block ULID>/meta.json        written last: a block without it does not exist
//! ```

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::TenantId;

/// Top-level folder of tenant data in the bucket.
pub const TENANTS_DIR: &str = "tenants";
pub const META_FILE: &str = "meta.json";
pub const SERIES_FILE: &str = "series.parquet";
pub const SAMPLES_FILE: &str = "samples.parquet";

/// Marks a block for deletion (written inside the block's folder, Thanos' format).
pub const DELETION_MARK_FILE: &str = "deletion-mark.json";

/// The block format this build writes, and the newest it reads (it reads every older one).
/// Version 3 added native histograms (the `histogram` column of `samples.parquet`): a build
/// knowing only version 2 would read such a block without them, so it must refuse it.
pub const BLOCK_SCHEMA_VERSION: u32 = 3;

/// The folder of a tenant's blocks.
pub fn tenant_dir(tenant: &TenantId) -> Path {
    Path::from(format!("{TENANTS_DIR}/{tenant}"))
}

/// The folder of one block.
pub fn block_dir(tenant: &TenantId, ulid: Ulid) -> Path {
    tenant_dir(tenant).join(ulid.to_string())
}

/// A file of one block.
pub fn block_file(tenant: &TenantId, ulid: Ulid, file: &str) -> Path {
    block_dir(tenant, ulid).join(file)
}

/// One file of a block, with its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    pub name: String,
    pub size_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `meta.json`: what a block holds. Times are milliseconds, both ends included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub ulid: Ulid,
    pub tenant: String,
    pub min_time: i64,
    pub max_time: i64,
    /// Sample resolution in milliseconds: 0 for raw data, 300000 or 3600000 when downsampled.
    pub resolution_ms: i64,
    /// 1 for a block flushed from a head; higher for compacted blocks.
    pub level: u32,
    pub num_series: u64,
    pub num_samples: u64,
    /// How many of the samples are native histograms (absent, 0, in blocks without any).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_histogram_samples: u64,
    pub schema_version: u32,
    /// Who wrote it: "head" or "compactor".
    pub source: String,
    /// The blocks this one replaces, every ancestor included (empty for a head block).
    /// Readers hide a block listed here by another block of the same resolution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Ulid>,
    pub files: Vec<BlockFile>,
}

/// `deletion-mark.json`: the block is replaced (or past retention) and will be deleted once
/// `deletion_time` (Unix seconds) is older than the delete delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    pub id: Ulid,
    pub deletion_time: i64,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl BlockMeta {
    /// Bytes of every file of the block, meta excluded.
    pub fn data_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

/// Parses `tenants/<tenant>/<ulid>/meta.json` into its tenant and ULID.
pub fn parse_meta_path(path: &Path) -> Option<(TenantId, Ulid)> {
    match parse_block_path(path)? {
        (t, u, f) if f == META_FILE => Some((t, u)),
        _ => None,
    }
}

/// Parses `tenants/<tenant>/<ulid>/<file>` into its tenant, ULID and file name.
pub fn parse_block_path(path: &Path) -> Option<(TenantId, Ulid, String)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, tenant, block, file] if root.as_ref() == TENANTS_DIR => Some((
            TenantId::new(tenant.as_ref()).ok()?,
            block.as_ref().parse().ok()?,
            file.as_ref().to_string(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_path_roundtrip() {
        let t = TenantId::new("a").unwrap();
        let u = Ulid::new();
        assert_eq!(parse_meta_path(&block_file(&t, u, META_FILE)), Some((t, u)));
        assert_eq!(parse_meta_path(&Path::from("tenants/a/x/meta.json")), None);
    }
}
