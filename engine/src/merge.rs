//! Merging the same series read from several sources (heads, blocks, replicas of a retried
//! write) into one, sorted by time with each timestamp once.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::try_join_all;
use hypnos_schemas::{
    Labels, Matcher, ReadAggregate, ReadHints, SchemaError, SeriesData, SeriesSource, TenantId,
    TimeRange,
};

use crate::catalog::{Piece, chain_counters};
#[cfg(test)]
use crate::series_merge::merge_series;
use crate::series_merge::{merge_parts, union_labels};

/// A [`SeriesSource`] reading several sources and merging what they return.
#[derive(Debug, Clone)]
pub struct MergedSource {
    sources: Vec<Arc<dyn SeriesSource>>,
}

impl MergedSource {
    pub fn new(sources: Vec<Arc<dyn SeriesSource>>) -> Self {
        Self { sources }
    }
}

#[async_trait]
impl SeriesSource for MergedSource {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        let parts = try_join_all(
            self.sources
                .iter()
                .map(|s| s.select(tenant, matchers, range)),
        )
        .await?;
        Ok(merge_parts(parts.into_iter().flatten()))
    }

    /// Every source reads with the hints (heads, raw only, answer through the trait's
    /// default); parts of one series are merged as in [`select`](Self::select). Counters
    /// that may come from downsampled data are joined instead where one source's part
    /// starts below the end of the one before: the catalog's counter is adjusted for resets
    /// and would otherwise seem to reset where the heads' raw counter takes over.
    async fn select_hinted(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        hints: ReadHints,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        let parts = try_join_all(
            self.sources
                .iter()
                .map(|s| s.select_hinted(tenant, matchers, range, hints)),
        )
        .await?;
        if hints.aggregate == ReadAggregate::Counter && hints.max_resolution_ms > 0 {
            let pieces = parts.into_iter().flatten().map(|series| Piece {
                series,
                res: 0,
                max: None,
            });
            return Ok(chain_counters(pieces.collect(), true));
        }
        Ok(merge_parts(parts.into_iter().flatten()))
    }

    async fn series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, SchemaError> {
        let parts = try_join_all(
            self.sources
                .iter()
                .map(|s| s.series(tenant, matchers, range)),
        )
        .await?;
        Ok(union_labels(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int64Array};

    fn part(ts: &[i64], vs: &[f64]) -> SeriesData {
        SeriesData::new(
            Labels::from_pairs([("__name__", "m")]),
            Int64Array::from(ts.to_vec()),
            Float64Array::from(vs.to_vec()),
        )
    }

    #[test]
    fn merges_sorted_and_dedupes() {
        let m = merge_series(vec![
            part(&[1, 3, 5], &[1.0, 3.0, 5.0]),
            part(&[2, 3, 6], &[2.0, 9.0, 6.0]),
        ]);
        assert_eq!(m.timestamps().values().to_vec(), vec![1, 2, 3, 5, 6]);
        assert_eq!(m.values().values().to_vec(), vec![1.0, 2.0, 3.0, 5.0, 6.0]);
    }

    #[test]
    fn merge_parts_groups_by_labels_in_label_order() {
        let named = |name: &str, ts: &[i64], vs: &[f64]| SeriesData {
            labels: Labels::from_pairs([("__name__", name)]),
            ..part(ts, vs)
        };
        // Two sources, each in label order; "b" is in both, "c" only in the second, and
        // an empty part is dropped.
        let merged = merge_parts(vec![
            named("a", &[1], &[1.0]),
            named("b", &[1, 2], &[1.0, 2.0]),
            named("z", &[], &[]),
            named("b", &[2, 3], &[9.0, 3.0]),
            named("c", &[5], &[5.0]),
            named("a", &[0], &[0.5]),
        ]);
        let names: Vec<&str> = merged.iter().map(|s| s.labels.get("__name__")).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(merged[0].timestamps().values().to_vec(), vec![0, 1]);
        assert_eq!(merged[1].timestamps().values().to_vec(), vec![1, 2, 3]);
        // The first source's sample wins at a shared timestamp.
        assert_eq!(merged[1].values().values().to_vec(), vec![1.0, 2.0, 3.0]);
    }

    /// A source answering the same series whatever it is asked.
    #[derive(Debug)]
    struct Fixed(Vec<SeriesData>);

    #[async_trait]
    impl SeriesSource for Fixed {
        async fn select(
            &self,
            _: &TenantId,
            _: &[Matcher],
            _: TimeRange,
        ) -> Result<Vec<SeriesData>, SchemaError> {
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn counters_continue_across_sources_when_reading_downsampled_data() {
        // Blocks (a counter adjusted for resets), then heads (raw, lower, with a reset).
        let blocks: Arc<dyn SeriesSource> = Arc::new(Fixed(vec![part(&[1, 2], &[100.0, 150.0])]));
        let heads: Arc<dyn SeriesSource> =
            Arc::new(Fixed(vec![part(&[3, 4, 5], &[20.0, 30.0, 5.0])]));
        let m = MergedSource::new(vec![blocks, heads]);
        let t = TenantId::new("t").unwrap();
        let read = |max_resolution_ms, aggregate| {
            let m = &m;
            let t = &t;
            async move {
                let hints = ReadHints {
                    max_resolution_ms,
                    aggregate,
                };
                let got = m
                    .select_hinted(t, &[], TimeRange::new(0, 10), hints)
                    .await
                    .unwrap();
                assert_eq!(got.len(), 1);
                got[0].values().values().to_vec()
            }
        };
        // The heads continue the counter (nothing counted across the boundary, where the
        // raw counter rose by at most one scrape), and their own reset counts as one.
        assert_eq!(
            read(300_000, ReadAggregate::Counter).await,
            vec![100.0, 150.0, 150.0, 160.0, 165.0]
        );
        // Raw reads and other aggregates merge as they are.
        assert_eq!(
            read(0, ReadAggregate::Counter).await,
            vec![100.0, 150.0, 20.0, 30.0, 5.0]
        );
        assert_eq!(
            read(300_000, ReadAggregate::Max).await,
            vec![100.0, 150.0, 20.0, 30.0, 5.0]
        );
    }

    #[tokio::test]
    async fn counters_of_raw_sources_stay_as_stored_unless_they_seem_to_reset_between() {
        let t = TenantId::new("t").unwrap();
        let hints = ReadHints {
            max_resolution_ms: 300_000,
            aggregate: ReadAggregate::Counter,
        };
        let read = |a: SeriesData, b: SeriesData| {
            let t = t.clone();
            async move {
                let m = MergedSource::new(vec![
                    Arc::new(Fixed(vec![a])) as Arc<dyn SeriesSource>,
                    Arc::new(Fixed(vec![b])),
                ]);
                let got = m
                    .select_hinted(&t, &[], TimeRange::new(0, 10), hints)
                    .await
                    .unwrap();
                points(&got[0])
            }
        };
        // Successive raw parts, one with its own reset: exactly as stored.
        assert_eq!(
            read(
                part(&[1, 2], &[10.0, 20.0]),
                part(&[3, 4, 5], &[30.0, 5.0, 8.0])
            )
            .await,
            vec![(1, 10.0), (2, 20.0), (3, 30.0), (4, 5.0), (5, 8.0)]
        );
        // Heads replayed over a block whose counter was joined (higher): the overlap is
        // read once, from the block, and the heads continue it.
        assert_eq!(
            read(
                part(&[1, 2, 3], &[100.0, 150.0, 200.0]),
                part(&[2, 3, 4, 5], &[20.0, 30.0, 40.0, 45.0])
            )
            .await,
            vec![(1, 100.0), (2, 150.0), (3, 200.0), (4, 200.0), (5, 205.0)]
        );
    }

    fn points(s: &SeriesData) -> Vec<(i64, f64)> {
        s.timestamps()
            .values()
            .iter()
            .copied()
            .zip(s.values().values().iter().copied())
            .collect()
    }

    /// A part whose samples at `hist` positions are histograms (`value` 0) with the given
    /// stored bytes.
    fn hpart(ts: &[i64], samples: &[Result<f64, &[u8]>]) -> SeriesData {
        let vs: Vec<f64> = samples
            .iter()
            .map(|s| *s.as_ref().unwrap_or(&0.0))
            .collect();
        let hs: arrow::array::BinaryArray = samples.iter().map(|s| s.err()).collect();
        SeriesData::with_histograms(
            Labels::from_pairs([("__name__", "m")]),
            Int64Array::from(ts.to_vec()),
            Float64Array::from(vs),
            hs,
        )
    }

    /// Each sample as its float or its histogram bytes.
    fn samples(s: &SeriesData) -> Vec<(i64, Result<f64, Vec<u8>>)> {
        (0..s.len())
            .map(|i| {
                let t = s.timestamps().value(i);
                match s.histograms().filter(|h| h.is_valid(i)) {
                    Some(h) => (t, Err(h.value(i).to_vec())),
                    None => (t, Ok(s.values().value(i))),
                }
            })
            .collect()
    }

    #[test]
    fn histograms_are_merged_like_floats() {
        // A block part and an overlapping head part (a replay after a crash): the overlap
        // is read once, from the first part, histograms kept.
        let block = hpart(&[1, 2, 3], &[Ok(1.0), Err(b"h2"), Err(b"h3")]);
        let head = hpart(&[2, 3, 4, 5], &[Err(b"x2"), Ok(9.0), Err(b"h4"), Ok(5.0)]);
        let m = merge_series(vec![block.clone(), head.clone()]);
        let h = |b: &[u8]| Err(b.to_vec());
        assert_eq!(
            samples(&m),
            vec![
                (1, Ok(1.0)),
                (2, h(b"h2")),
                (3, h(b"h3")),
                (4, h(b"h4")),
                (5, Ok(5.0))
            ]
        );
        // A float part first: its float wins at the shared timestamp.
        let floats = part(&[3, 6], &[7.0, 6.0]);
        let m = merge_series(vec![floats.clone(), block.clone()]);
        assert_eq!(
            samples(&m),
            vec![(1, Ok(1.0)), (2, h(b"h2")), (3, Ok(7.0)), (6, Ok(6.0))]
        );
        // Floats only: no histogram column.
        let m = merge_series(vec![floats, part(&[1], &[1.0])]);
        assert!(m.histograms().is_none());
        // Through merge_parts and MergedSource::select.
        let out = merge_parts(vec![head.clone(), block.clone()]);
        assert_eq!(out.len(), 1);
        assert_eq!(samples(&out[0])[..2], [(1, Ok(1.0)), (2, h(b"x2"))]);
    }

    #[tokio::test]
    async fn merged_sources_keep_histograms() {
        let heads: Arc<dyn SeriesSource> =
            Arc::new(Fixed(vec![hpart(&[3, 4], &[Err(b"head3"), Err(b"head4")])]));
        let blocks: Arc<dyn SeriesSource> = Arc::new(Fixed(vec![hpart(
            &[1, 2, 3],
            &[Err(b"b1"), Ok(2.0), Err(b"b3")],
        )]));
        let t = TenantId::new("t").unwrap();
        let m = MergedSource::new(vec![heads, blocks]);
        let got = m.select(&t, &[], TimeRange::new(0, 10)).await.unwrap();
        let h = |b: &[u8]| Err(b.to_vec());
        assert_eq!(
            samples(&got[0]),
            vec![
                (1, h(b"b1")),
                (2, Ok(2.0)),
                (3, h(b"head3")),
                (4, h(b"head4"))
            ]
        );
    }

    #[test]
    fn groups_by_labels() {
        let mut other = part(&[1], &[7.0]);
        other.labels = Labels::from_pairs([("__name__", "n")]);
        let out = merge_parts(vec![part(&[1], &[1.0]), other, part(&[1, 2], &[1.0, 2.0])]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 2);
    }
}
