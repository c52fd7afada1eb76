"""Facts of Inception-v3 that settings and models share (no Keras needed to know them)."""

BLOCKS = tuple(f"mixed{i}" for i in range(11))  # the inception blocks, as Keras names their outputs
MIN_IMAGE_SIZE = 75  # the smallest input InceptionV3 accepts
