"""Deployment: exports for other runtimes, and the runtimes that run them."""
