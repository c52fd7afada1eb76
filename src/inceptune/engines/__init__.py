"""Engines that spread inceptune's work over more than one machine (optional extras)."""
