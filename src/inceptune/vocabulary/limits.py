"""Numeric limits and thresholds that settings and the modules that apply them share."""

DEFAULT_MAX_PIXELS = 100_000_000  # the largest image in pixels (about 10000 x 10000); larger files are skipped
DECODE_SLOTS = 2  # images `serve` decodes and resizes at once, whatever the clients send: one at the largest size
# above is about 1.2 GB of float32 while it is resized, so its memory is bounded by this many of them
DUPLICATE_SIMILARITY = 0.95  # near-duplicates' least cosine similarity; the planted near-duplicates keep 0.96 or more
MAX_ACCURACY_DROP = 0.005  # an int8 export loses at most this (absolute) on the held-out photos, or is not kept
OOD_KEEP = 0.95  # of held-out in-distribution photos answered as known: each runtime's OOD threshold keeps this many
THRESHOLD = 0.5  # a multi-label answer is yes at or above this probability, unless calibrated thresholds say otherwise
# What a bf16 or int8 candidate must keep of the FP32 Keras model on the held-out photos, on every output:
INT8_MIN_AGREEMENT = 0.99  # the same top-1 class, and the same "none of these" decision, on this share of photos
# (refused when an exact binomial test at INT8_ALPHA finds its disagreements more than 1 - this would give)
INT8_MAX_PROBABILITY_DIFF = 0.15  # the largest |p_int8 - p_fp32| over every class of every photo
INT8_ALPHA = 0.05  # the level of both exact tests: McNemar on accuracy, binomial on agreement
