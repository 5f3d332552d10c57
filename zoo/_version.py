"""The version of zoo."""

__version__ = "0.1.0"
