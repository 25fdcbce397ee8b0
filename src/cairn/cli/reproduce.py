"""`cairn reproduce`: rebuild a recorded run and re-run it (cairn.reproduce).  Being built (#20)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Adds `cairn reproduce` to ``cli`` (being built)."""
