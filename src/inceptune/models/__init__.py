"""The networks: where weights come from, the Inception-v3 backbone, the classifier around it."""
