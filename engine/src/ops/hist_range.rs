//! Range functions over native histogram samples (rate, increase, delta, irate, idelta, the *_over_time family, resets, changes) and the annotations of windows that mix floats and histograms.
