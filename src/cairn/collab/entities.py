"""What collaboration hands out: comments, their edit history, saved views of the runs table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TARGET_TYPES = ("run", "experiment", "model_version", "dataset_version")


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment on a target: a run (its id), an experiment (its id), a model version
    (``NAME@VERSION``) or a data set version (``NAME@N``).

    ``parent_id`` is the comment it replies to (None: it starts a thread).  A deleted
    comment keeps its place in the thread with an empty body and ``deleted_at`` set.
    ``mentions`` are the user names its body mentions (``@alice``).
    """

    id: str
    target_type: str
    target_id: str
    parent_id: str | None
    author: str
    body: str
    mentions: tuple[str, ...]
    created_at: int
    edited_at: int | None = None
    edited_by: str | None = None
    edits: int = 0
    deleted_at: int | None = None
    deleted_by: str | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def target(self) -> str:
        """``TYPE:ID``, as the CLI spells a target (``run:0f3a...``)."""
        return f"{self.target_type}:{self.target_id}"


@dataclass(frozen=True, slots=True)
class CommentEdit:
    """One edit of a comment: the body it replaced, who edited it and when (``seq`` 1, 2...)."""

    comment_id: str
    seq: int
    body: str
    editor: str
    edited_at: int


@dataclass(frozen=True, slots=True)
class SavedView:
    """A named state of an experiment's runs table: ``state`` holds ``filter``, ``columns``,
    ``group``, ``sort`` (``{"id": ..., "dir": "ASC"|"DESC"}``) and ``charts``."""

    experiment_id: str
    name: str
    state: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    created_at: int = 0
    updated_by: str = ""
    updated_at: int = 0

    @property
    def url(self) -> str:
        """The runs page that opens this view (relative to the server's address)."""
        from urllib.parse import urlencode

        return "/?" + urlencode({"experiments": self.experiment_id, "view": self.name})


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Named panels over saved queries, stored on the server.

    Each panel is a dict: ``title``, ``kind`` (``line``: metric histories of the runs;
    ``scatter``: two columns across runs; ``parallel``: parallel coordinates; ``table``),
    ``experiment_id``, the query (``view``: a saved view's name, whose filter and sort it
    uses, or ``filter`` and ``sort``), ``columns`` (``metrics.loss``, ``params.lr``...: a
    line panel's metrics, a scatter's x then y) and ``limit`` (runs shown, at most 100).
    """

    name: str
    description: str = ""
    panels: tuple[dict[str, Any], ...] = ()
    created_by: str = ""
    created_at: int = 0
    updated_by: str = ""
    updated_at: int = 0

    @property
    def experiment_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p["experiment_id"] for p in self.panels))

    @property
    def url(self) -> str:
        from urllib.parse import quote

        return "/dashboards/" + quote(self.name, safe="")


@dataclass(frozen=True, slots=True)
class Report:
    """A Markdown document with live panels, stored on the server (or in the local store).

    ``body`` is the Markdown as written; each fenced block whose info string is
    ``cairn-panel`` holds one panel as JSON (``{"type": "metric", "run": ID, "key":
    "loss"}``, see :mod:`cairn.collab.reports`).  ``panels`` are those blocks, checked and
    resolved when the report was saved (each keeps its block's text as ``source``);
    ``experiment_ids`` and ``models`` are what the panels draw from, which decide who may
    read the report on a server.
    """

    name: str
    body: str
    panels: tuple[dict[str, Any], ...] = ()
    experiment_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    created_by: str = ""
    created_at: int = 0
    updated_by: str = ""
    updated_at: int = 0

    @property
    def author(self) -> str:
        return self.created_by

    @property
    def url(self) -> str:
        from urllib.parse import quote

        return "/reports/" + quote(self.name, safe="")
