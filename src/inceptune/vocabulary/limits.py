"""Numeric limits and thresholds that settings and the modules that apply them share."""

DEFAULT_MAX_PIXELS = 100_000_000  # the largest image in pixels (about 10000 x 10000); larger files are skipped
DUPLICATE_SIMILARITY = 0.95  # near-duplicates' least cosine similarity; the planted near-duplicates keep 0.96 or more
MAX_ACCURACY_DROP = 0.005  # an int8 export loses at most this (absolute) on the held-out photos, or is not kept
THRESHOLD = 0.5  # a multi-label answer is yes at or above this probability, unless calibrated thresholds say otherwise
