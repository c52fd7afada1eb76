"""Where the work runs: precision and tf.distribute (devices), the multi-worker cluster, Ray (an optional extra)."""
