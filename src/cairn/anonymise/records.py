"""A run's records through an anonymiser: the one step between building a batch and
handing it to a store (journal, spool or server), so nothing personal is written."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..entities import RecordBatch
from .rules import Anonymiser, active

# Tags whose whole value is a user name.
USER_TAGS = ("mlflow.user",)


def anonymise_batch(batch: RecordBatch, anon: Anonymiser) -> RecordBatch:
    """``batch`` with its params' and tags' values, its creation's user and name and its
    environment anonymised; metrics, keys and artifacts as they were."""
    changes: dict[str, Any] = {}
    if batch.params:
        changes["params"] = anon.mapping(batch.params)
    if batch.tags:
        changes["tags"] = anon.mapping(batch.tags, USER_TAGS)
    if batch.create is not None:
        create = dict(batch.create)
        if isinstance(create.get("user"), str):
            create["user"] = anon.user(create["user"])
        if isinstance(create.get("name"), str):
            create["name"] = anon.text(create["name"])
        changes["create"] = create
    if batch.env is not None:
        changes["env"] = anon.env(batch.env)
    return replace(batch, **changes) if changes else batch


def outgoing(batch: RecordBatch) -> RecordBatch:
    """``batch`` as the settings say it may leave this process (unchanged when
    anonymisation is off)."""
    anon = active()
    return batch if anon is None else anonymise_batch(batch, anon)
