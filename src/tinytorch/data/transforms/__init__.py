"""The transforms stage: per-sample and batch-vectorized augmentation and normalization."""
