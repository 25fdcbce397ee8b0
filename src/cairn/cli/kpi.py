"""Placeholder: filled in by the work that owns these commands."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
