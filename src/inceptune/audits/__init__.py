"""`inceptune audit`: label errors, near-duplicates across splits, outliers and bad photos, found on the
features that train caches (workflows/audit.py), written as issues.csv, audit.json and audit.html."""
