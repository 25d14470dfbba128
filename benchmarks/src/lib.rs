//! Whole-system benchmarks of Hypnos against Prometheus and VictoriaMetrics. Empty in this
//! build: the benchmark binary and data generator come with the benchmarks issue.
