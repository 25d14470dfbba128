//! The compactor: merges small Parquet blocks into larger ones, deduplicates HA replicas,
//! downsamples to 5m and 1h and applies retention. Empty in this build: blocks are written by
//! head flushes and read as they are.
