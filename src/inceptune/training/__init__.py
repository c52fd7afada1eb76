"""The two-phase recipe: head on cached features, then fine-tuning of the top blocks."""
