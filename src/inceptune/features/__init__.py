"""Backbone features: computed once per image, cached on disk, read back by training."""
