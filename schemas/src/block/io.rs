//! An [`AsyncFileReader`] over an object-store file of known size, able to hand back a footer
//! that was read before so repeated queries of a block skip that round trip.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use crate::SchemaError;

pub(super) struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    metadata: Option<Arc<ParquetMetaData>>,
}

impl StoreReader {
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        size: u64,
        metadata: Option<Arc<ParquetMetaData>>,
    ) -> Self {
        Self {
            store,
            path,
            size,
            metadata,
        }
    }

    pub(super) fn with_metadata(mut self, metadata: Arc<ParquetMetaData>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Reads the footer with the offset index when the file has one (every block written
    /// by Hypnos does), so that row selections fetch and decode only the pages they need.
    pub(super) async fn load_metadata(mut self) -> Result<Arc<ParquetMetaData>, SchemaError> {
        if let Some(m) = &self.metadata {
            return Ok(Arc::clone(m));
        }
        let size = self.size;
        let m = ParquetMetaDataReader::new()
            .with_offset_index_policy(PageIndexPolicy::Optional)
            .load_and_finish(&mut self, size)
            .await?;
        Ok(Arc::new(m))
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            if let Some(m) = &self.metadata {
                return Ok(Arc::clone(m));
            }
            let size = self.size;
            let m = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(&mut *self, size)
                .await?;
            let m = Arc::new(m);
            self.metadata = Some(Arc::clone(&m));
            Ok(m)
        }
        .boxed()
    }
}
