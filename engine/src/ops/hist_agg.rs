//! Aggregations over native histogram samples (sum, avg, count, group, and the aggregations that ignore histograms, with their annotations).
