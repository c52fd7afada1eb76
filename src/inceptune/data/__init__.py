"""From files on disk to a validated, split dataset."""
