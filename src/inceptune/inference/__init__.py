"""From a trained model (or ImageNet's) and image files to ranked class probabilities."""
