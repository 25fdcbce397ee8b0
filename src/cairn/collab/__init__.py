"""Collaboration: comments (threads, Markdown, @mentions, edit history) on runs,
experiments, model versions and data set versions, saved views of the runs table, and
dashboards (named panels over saved queries), and reports (Markdown with live panels,
exported as one HTML file).

Nothing here is imported by ``import cairn``::

    from cairn.collab import collab_for

    talk = collab_for(cairn.Client(), "alice")
    c = talk.add_comment("run", run_id, "Loss plateaus after step 300, @bob?")
    talk.mentions("bob")          # comments that mention bob, newest first

A mention is stored (and listed for the UI); notifications will go through the event
webhooks once the server has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entities import TARGET_TYPES, Comment, CommentEdit, Dashboard, Report, SavedView

if TYPE_CHECKING:  # pragma: no cover
    from .remote import RemoteCollab
    from .service import Collab

__all__ = ["TARGET_TYPES", "Comment", "CommentEdit", "Dashboard", "Report", "SavedView",
           "collab_for"]


def collab_for(target: Any = None, user: str | None = None, *,
               admin: bool = False) -> "Collab | RemoteCollab":
    """Comments and saved views on ``target`` (a store or a :class:`cairn.Client`; None: the
    fluent API's client), acting as ``user``: a :class:`~cairn.collab.remote.RemoteCollab`
    for a server's client, else a :class:`~cairn.collab.service.Collab` on the store's
    database.  ``admin=True`` lets the user edit and delete others' comments and views (a
    local store has no roles; on a server the server decides)."""
    from ..services import REMOTE, services_of, store_of

    if services_of(store_of(target)) is REMOTE:
        from .remote import RemoteCollab

        return RemoteCollab(target, user, admin=admin)
    from .service import Collab

    return Collab(target, user, admin=admin)
