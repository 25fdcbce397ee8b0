"""`cairn check`: a CI gate for promotions (cairn.gate).  Being built (#20)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Adds `cairn check` to ``cli`` (being built)."""
