"""Facts every layer shares (names, limits, defaults) in plain Python, below settings and without Keras."""
