"""Cairn: local-first experiment tracking, model registry and data versioning."""
__version__ = "0.1.0"
