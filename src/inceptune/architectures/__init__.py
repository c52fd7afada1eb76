"""Inception networks from scratch: building blocks, whole networks, their cost and diagrams."""
