"""inceptune's version, as pyproject.toml declares it: read by the API, the run folder and the reports."""

__version__ = "0.5.0"
