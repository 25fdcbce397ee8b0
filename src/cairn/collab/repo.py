"""Collaboration rows in and out, in SQLAlchemy Core (SQLite and PostgreSQL alike).

Rows never leave this module; callers get entities.  Functions take the caller's
connection so that a comment, its edit history and its mentions change in one transaction.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..store.sql import tables_collab as T
from .entities import Comment, CommentEdit, Dashboard, Report, SavedView

C, E, M, V, D = T.comments, T.comment_edits, T.comment_mentions, T.saved_views, T.dashboards
R = T.reports


def _mentions(conn: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(sa.select(M.c.comment_id, M.c.user_name)
                            .where(M.c.comment_id.in_(ids[i:i + 500]))
                            .order_by(M.c.comment_id, M.c.user_name)).all()
        for cid, user in rows:
            out.setdefault(cid, []).append(user)
    return out


def _to_comments(conn: Connection, rows: Sequence[sa.Row[Any]]) -> list[Comment]:
    mentioned = _mentions(conn, [r.id for r in rows])
    return [Comment(id=r.id, target_type=r.target_type, target_id=r.target_id,
                    parent_id=r.parent_id, author=r.author,
                    body="" if r.deleted_at is not None else r.body,
                    mentions=tuple(mentioned.get(r.id, ())), created_at=r.created_at,
                    edited_at=r.edited_at, edited_by=r.edited_by, edits=r.edits,
                    deleted_at=r.deleted_at, deleted_by=r.deleted_by) for r in rows]


def comment_row(conn: Connection, comment_id: str) -> sa.Row[Any] | None:
    return conn.execute(sa.select(C).where(C.c.id == comment_id)).first()


def require_comment(conn: Connection, comment_id: str) -> Comment:
    row = comment_row(conn, comment_id)
    if row is None:
        raise NotFound(f"no comment {comment_id!r}", comment_id=comment_id)
    return _to_comments(conn, [row])[0]


def insert_comment(conn: Connection, c: Comment) -> None:
    conn.execute(sa.insert(C).values(
        id=c.id, target_type=c.target_type, target_id=c.target_id, parent_id=c.parent_id,
        author=c.author, body=c.body, created_at=c.created_at, edits=0))
    set_mentions(conn, c.id, c.mentions, c.created_at)


def set_mentions(conn: Connection, comment_id: str, users: Iterable[str], now: int) -> None:
    conn.execute(sa.delete(M).where(M.c.comment_id == comment_id))
    rows = [{"user_name": u, "comment_id": comment_id, "created_at": now} for u in users]
    if rows:
        conn.execute(sa.insert(M), rows)


def edit_comment(conn: Connection, old: Comment, body: str, mentions: Iterable[str],
                 editor: str, now: int) -> None:
    """Keep the body being replaced as edit ``old.edits + 1``, then replace it."""
    conn.execute(sa.insert(E).values(comment_id=old.id, seq=old.edits + 1, body=old.body,
                                     editor=editor, edited_at=now))
    conn.execute(sa.update(C).where(C.c.id == old.id)
                 .values(body=body, edited_at=now, edited_by=editor, edits=old.edits + 1))
    set_mentions(conn, old.id, mentions, now)


def delete_comment(conn: Connection, old: Comment, actor: str, now: int) -> None:
    """A soft delete: the row stays (its replies keep their thread) and its body is kept
    for :func:`restore_comment`, but nothing hands it out while it is deleted."""
    conn.execute(sa.update(C).where(C.c.id == old.id).values(deleted_at=now, deleted_by=actor))
    set_mentions(conn, old.id, (), now)


def restore_comment(conn: Connection, comment_id: str, mentions: Iterable[str], now: int) -> None:
    conn.execute(sa.update(C).where(C.c.id == comment_id)
                 .values(deleted_at=None, deleted_by=None))
    set_mentions(conn, comment_id, mentions, now)


def stored_body(conn: Connection, comment_id: str) -> str:
    """The body as stored, a deleted comment's too (to restore it)."""
    return conn.execute(sa.select(C.c.body).where(C.c.id == comment_id)).scalar_one()


def comments_on(conn: Connection, target_type: str, target_id: str) -> list[Comment]:
    rows = conn.execute(sa.select(C).where(C.c.target_type == target_type,
                                           C.c.target_id == target_id)
                        .order_by(C.c.created_at, C.c.id)).all()
    return _to_comments(conn, rows)


def history(conn: Connection, comment_id: str) -> list[CommentEdit]:
    rows = conn.execute(sa.select(E).where(E.c.comment_id == comment_id)
                        .order_by(E.c.seq)).all()
    return [CommentEdit(r.comment_id, r.seq, r.body, r.editor, r.edited_at) for r in rows]


def mentioning(conn: Connection, user: str, limit: int) -> list[Comment]:
    """Live comments that mention ``user``, newest first."""
    rows = conn.execute(sa.select(C).join(M, M.c.comment_id == C.c.id)
                        .where(M.c.user_name == user, C.c.deleted_at.is_(None))
                        .order_by(C.c.created_at.desc(), C.c.id).limit(limit)).all()
    return _to_comments(conn, rows)


# -- saved views ---------------------------------------------------------------
def _to_view(r: sa.Row[Any]) -> SavedView:
    return SavedView(r.experiment_id, r.name, json.loads(r.state), r.created_by, r.created_at,
                     r.updated_by, r.updated_at)


def view(conn: Connection, experiment_id: str, name: str) -> SavedView | None:
    r = conn.execute(sa.select(V).where(V.c.experiment_id == experiment_id,
                                        V.c.name == name)).first()
    return None if r is None else _to_view(r)


def views(conn: Connection, experiment_id: str) -> list[SavedView]:
    rows = conn.execute(sa.select(V).where(V.c.experiment_id == experiment_id)
                        .order_by(V.c.name)).all()
    return [_to_view(r) for r in rows]


def put_view(conn: Connection, v: SavedView, exists: bool) -> None:
    state = json.dumps(v.state, sort_keys=True, ensure_ascii=False)
    if exists:
        conn.execute(sa.update(V).where(V.c.experiment_id == v.experiment_id, V.c.name == v.name)
                     .values(state=state, updated_by=v.updated_by, updated_at=v.updated_at))
    else:
        conn.execute(sa.insert(V).values(
            experiment_id=v.experiment_id, name=v.name, state=state, created_by=v.created_by,
            created_at=v.created_at, updated_by=v.updated_by, updated_at=v.updated_at))


def delete_view(conn: Connection, experiment_id: str, name: str) -> None:
    conn.execute(sa.delete(V).where(V.c.experiment_id == experiment_id, V.c.name == name))


# -- dashboards ----------------------------------------------------------------------
def _to_dashboard(r: sa.Row[Any]) -> Dashboard:
    return Dashboard(r.name, r.description, tuple(json.loads(r.panels)), r.created_by,
                     r.created_at, r.updated_by, r.updated_at)


def dashboard(conn: Connection, name: str) -> Dashboard | None:
    r = conn.execute(sa.select(D).where(D.c.name == name)).first()
    return None if r is None else _to_dashboard(r)


def dashboards(conn: Connection) -> list[Dashboard]:
    return [_to_dashboard(r) for r in conn.execute(sa.select(D).order_by(D.c.name)).all()]


def put_dashboard(conn: Connection, d: Dashboard, exists: bool) -> None:
    panels = json.dumps(list(d.panels), sort_keys=True, ensure_ascii=False)
    if exists:
        conn.execute(sa.update(D).where(D.c.name == d.name).values(
            description=d.description, panels=panels, updated_by=d.updated_by,
            updated_at=d.updated_at))
    else:
        conn.execute(sa.insert(D).values(
            name=d.name, description=d.description, panels=panels, created_by=d.created_by,
            created_at=d.created_at, updated_by=d.updated_by, updated_at=d.updated_at))


def delete_dashboard(conn: Connection, name: str) -> None:
    conn.execute(sa.delete(D).where(D.c.name == name))


# -- reports -------------------------------------------------------------------------
def _to_report(r: sa.Row[Any]) -> Report:
    return Report(r.name, r.body, tuple(json.loads(r.panels)), tuple(json.loads(r.experiments)),
                  tuple(json.loads(r.models)), r.created_by, r.created_at, r.updated_by,
                  r.updated_at)


def report(conn: Connection, name: str) -> Report | None:
    r = conn.execute(sa.select(R).where(R.c.name == name)).first()
    return None if r is None else _to_report(r)


def reports(conn: Connection) -> list[Report]:
    return [_to_report(r) for r in conn.execute(sa.select(R).order_by(R.c.name)).all()]


def put_report(conn: Connection, rep: Report, exists: bool) -> None:
    values = {"body": rep.body,
              "panels": json.dumps(list(rep.panels), sort_keys=True, ensure_ascii=False),
              "experiments": json.dumps(list(rep.experiment_ids)),
              "models": json.dumps(list(rep.models), ensure_ascii=False),
              "updated_by": rep.updated_by, "updated_at": rep.updated_at}
    if exists:
        conn.execute(sa.update(R).where(R.c.name == rep.name).values(**values))
    else:
        conn.execute(sa.insert(R).values(name=rep.name, created_by=rep.created_by,
                                         created_at=rep.created_at, **values))


def delete_report(conn: Connection, name: str) -> None:
    conn.execute(sa.delete(R).where(R.c.name == name))
