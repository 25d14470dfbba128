//! The object store holding blocks, from `--objstore-url` or a Thanos bucket YAML file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use serde::Deserialize;

/// Where blocks live, before any connection is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BucketConfig {
    pub(crate) kind: BucketKind,
    /// Every object lives under this prefix (no leading or trailing `/`); empty for none.
    pub(crate) prefix: String,
}

/// The supported kinds of object store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BucketKind {
    /// A local directory (created if missing).
    Filesystem { directory: PathBuf },
    /// An S3 bucket. Unset fields come from the `AWS_*` environment variables.
    S3(S3Config),
}

/// The S3 settings of Thanos' bucket configuration that Hypnos uses; other keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct S3Config {
    pub(crate) bucket: String,
    /// `host[:port]` as Thanos takes it, or a full URL.
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) session_token: String,
    /// Plain HTTP to the endpoint.
    pub(crate) insecure: bool,
    /// `auto`, `path` or `virtual-hosted`.
    pub(crate) bucket_lookup_type: String,
}

#[derive(Debug, Deserialize)]
struct ThanosBucketFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_yaml_ng::Value,
    #[serde(default)]
    prefix: String,
}

#[derive(Debug, Default, Deserialize)]
struct FilesystemConfig {
    #[serde(default)]
    directory: String,
}

impl BucketConfig {
    /// A local directory without prefix (the default `<data-dir>/bucket`).
    pub(crate) fn directory(directory: impl Into<PathBuf>) -> Self {
        Self {
            kind: BucketKind::Filesystem {
                directory: directory.into(),
            },
            prefix: String::new(),
        }
    }

    /// Parses `file:///abs/path` or `s3://bucket[/prefix]`.
    pub(crate) fn from_url(s: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(s).with_context(|| format!("invalid object store URL {s:?}"))?;
        match url.scheme() {
            "file" => {
                let directory = url.to_file_path().map_err(|()| {
                    anyhow::anyhow!(
                        "invalid object store URL {s:?}: a file URL needs an absolute path, \
                         as in file:///var/lib/hypnos/bucket"
                    )
                })?;
                Ok(Self::directory(directory))
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default();
                if bucket.is_empty() {
                    bail!("invalid object store URL {s:?}: no bucket, expected s3://bucket/prefix");
                }
                Ok(Self {
                    kind: BucketKind::S3(S3Config {
                        bucket: bucket.to_string(),
                        ..S3Config::default()
                    }),
                    prefix: normalize_prefix(url.path()),
                })
            }
            other => bail!(
                "unsupported object store URL scheme {other:?} in {s:?}: use file:///path or \
                 s3://bucket/prefix"
            ),
        }
    }

    /// Parses Thanos' bucket configuration YAML (`type`, `config`, `prefix`).
    pub(crate) fn from_yaml(text: &str) -> anyhow::Result<Self> {
        let file: ThanosBucketFile =
            serde_yaml_ng::from_str(text).context("invalid bucket configuration YAML")?;
        let kind = match file.kind.to_ascii_uppercase().as_str() {
            "FILESYSTEM" => {
                let fs: FilesystemConfig = deserialize_config(file.config, "FILESYSTEM")?;
                if fs.directory.is_empty() {
                    bail!("bucket configuration of type FILESYSTEM needs config.directory");
                }
                BucketKind::Filesystem {
                    directory: PathBuf::from(fs.directory),
                }
            }
            "S3" => {
                let s3: S3Config = deserialize_config(file.config, "S3")?;
                if s3.bucket.is_empty() {
                    bail!("bucket configuration of type S3 needs config.bucket");
                }
                BucketKind::S3(s3)
            }
            other => bail!(
                "object store type {other:?} is not supported by this build (supported: S3, \
                 FILESYSTEM)"
            ),
        };
        Ok(Self {
            kind,
            prefix: normalize_prefix(&file.prefix),
        })
    }

    /// Reads and parses a bucket configuration file.
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read bucket configuration {}", path.display()))?;
        Self::from_yaml(&text).with_context(|| format!("bucket configuration {}", path.display()))
    }

    /// Builds the store, creating a local directory when needed.
    pub(crate) fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let store: Arc<dyn ObjectStore> = match &self.kind {
            BucketKind::Filesystem { directory } => {
                std::fs::create_dir_all(directory).with_context(|| {
                    format!("cannot create bucket directory {}", directory.display())
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(directory).with_context(|| {
                        format!("cannot open bucket directory {}", directory.display())
                    })?,
                )
            }
            BucketKind::S3(c) => Arc::new(
                s3_builder(c)
                    .build()
                    .with_context(|| format!("cannot configure S3 bucket {:?}", c.bucket))?,
            ),
        };
        Ok(if self.prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, self.prefix.as_str()))
        })
    }

    /// For the startup log line.
    pub(crate) fn describe(&self) -> String {
        let base = match &self.kind {
            BucketKind::Filesystem { directory } => format!("file://{}", directory.display()),
            BucketKind::S3(c) => format!("s3://{}", c.bucket),
        };
        if self.prefix.is_empty() {
            base
        } else {
            format!("{base} (prefix {})", self.prefix)
        }
    }
}

/// The S3 builder: the `AWS_*` environment first, then whatever the configuration sets.
fn s3_builder(c: &S3Config) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&c.bucket);
    if !c.endpoint.is_empty() {
        let endpoint = if c.endpoint.contains("://") {
            c.endpoint.clone()
        } else {
            let scheme = if c.insecure { "http" } else { "https" };
            format!("{scheme}://{}", c.endpoint)
        };
        b = b.with_endpoint(endpoint);
    }
    if c.insecure {
        b = b.with_allow_http(true);
    }
    if !c.region.is_empty() {
        b = b.with_region(&c.region);
    }
    if !c.access_key.is_empty() {
        b = b.with_access_key_id(&c.access_key);
    }
    if !c.secret_key.is_empty() {
        b = b.with_secret_access_key(&c.secret_key);
    }
    if !c.session_token.is_empty() {
        b = b.with_token(&c.session_token);
    }
    match c.bucket_lookup_type.as_str() {
        "virtual-hosted" | "virtual_hosted" => b = b.with_virtual_hosted_style_request(true),
        "path" => b = b.with_virtual_hosted_style_request(false),
        _ => {}
    }
    b
}

fn deserialize_config<T: for<'de> Deserialize<'de> + Default>(
    v: serde_yaml_ng::Value,
    kind: &str,
) -> anyhow::Result<T> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_yaml_ng::from_value(v)
        .with_context(|| format!("invalid config section for bucket type {kind}"))
}

fn normalize_prefix(p: &str) -> String {
    p.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn file_urls() {
        let c = BucketConfig::from_url("file:///var/lib/hypnos/bucket").unwrap();
        assert_eq!(c, BucketConfig::directory("/var/lib/hypnos/bucket"));
        assert!(BucketConfig::from_url("file://relative/path").is_err());
        let e = BucketConfig::from_url("ftp://nowhere/x").unwrap_err();
        assert!(e.to_string().contains("ftp"), "{e}");
        assert!(BucketConfig::from_url("not a url").is_err());
    }

    #[test]
    fn s3_urls() {
        let c = BucketConfig::from_url("s3://metrics/a/b/").unwrap();
        assert_eq!(c.prefix, "a/b");
        let BucketKind::S3(s3) = c.kind else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "metrics");
        assert_eq!(BucketConfig::from_url("s3://metrics").unwrap().prefix, "");
        assert!(BucketConfig::from_url("s3:///x").is_err());
    }

    #[test]
    fn thanos_s3_yaml() {
        let c = BucketConfig::from_yaml(
            r#"
type: S3
config:
  bucket: "thanos"
  endpoint: "127.0.0.1:9000"
  access_key: "AK"
  secret_key: "SK"
  insecure: true
  region: "eu-west-1"
  signature_version2: false
  http_config:
    idle_conn_timeout: 90s
prefix: /tenant-data/
"#,
        )
        .unwrap();
        assert_eq!(c.prefix, "tenant-data");
        let BucketKind::S3(s3) = &c.kind else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "thanos");
        assert_eq!(s3.endpoint, "127.0.0.1:9000");
        assert_eq!(
            (s3.access_key.as_str(), s3.secret_key.as_str()),
            ("AK", "SK")
        );
        assert!(s3.insecure);
        assert_eq!(s3.region, "eu-west-1");
        // Builds without contacting anything.
        c.build().unwrap();
    }

    #[test]
    fn thanos_filesystem_yaml() {
        let c =
            BucketConfig::from_yaml("type: FILESYSTEM\nconfig:\n  directory: /tmp/b\n").unwrap();
        assert_eq!(c, BucketConfig::directory("/tmp/b"));
        let c = BucketConfig::from_yaml(
            "type: filesystem\nconfig:\n  directory: \"/tmp/b\"\nprefix: \"some/prefix\"\n",
        )
        .unwrap();
        assert_eq!(c.prefix, "some/prefix");
    }

    #[test]
    fn yaml_errors_are_clear() {
        let e = BucketConfig::from_yaml("type: GCS\nconfig:\n  bucket: x\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("\"GCS\" is not supported"),
            "{e:#}"
        );
        let e = BucketConfig::from_yaml("type: S3\nconfig: {}\n").unwrap_err();
        assert!(format!("{e:#}").contains("config.bucket"), "{e:#}");
        let e = BucketConfig::from_yaml("type: FILESYSTEM\n").unwrap_err();
        assert!(format!("{e:#}").contains("config.directory"), "{e:#}");
        assert!(BucketConfig::from_yaml("config: {}\n").is_err());
        let e = BucketConfig::from_file(Path::new("/nonexistent/bucket.yml")).unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/bucket.yml"),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn filesystem_store_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("created");
        let c = BucketConfig {
            kind: BucketKind::Filesystem {
                directory: root.clone(),
            },
            prefix: "p/q".into(),
        };
        let store = c.build().unwrap();
        store
            .put(&"a/b.txt".into(), bytes::Bytes::from_static(b"x").into())
            .await
            .unwrap();
        assert!(root.join("p/q/a/b.txt").is_file());
    }
}
