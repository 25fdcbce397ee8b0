"""`cairn pipeline`: stages with a cache (cairn.pipelines).  Being built (#20)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Adds `cairn pipeline` to ``cli`` (being built)."""
