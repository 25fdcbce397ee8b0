"""The artifact proxy's free paths: files PUT to a path that is no run's artifacts.

``mlflow server --serve-artifacts`` stores whatever path a client uploads (MLflow 3 keeps
logged models and traces under ``<experiment>/models/…`` and ``<experiment>/traces/…``,
and a user's ``MlflowArtifactsRepository`` may name anything), and GET and list answer it
back.  Cairn keeps a run's artifacts with the run; every other path lives here: the bytes
in the content-addressed object store, and path -> file entry in the database's settings
table (``registry_settings``: not derived from journals, so ``cairn reindex`` keeps it).
A row's key is ``mlflow.art/<hash of the first path part>/<hash of the path>``, so that
listing under one top-level directory reads that directory's rows only.

Permissions: a path whose first part names an experiment is that experiment's (as MLflow's
auth judges ``<experiment id>/…``); any other path is the server's, open to whoever holds
the route's role on some experiment or model, except that a top-level directory belongs to
the user whose upload made it: only they (and admins) write under it, so one user cannot
replace another's files (``mlflow.art.owner/<hash of the first part>`` keeps the owner).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from ...cas.tree import check_entry, check_path
from ...entities import FileEntry
from ...errors import InvalidArgument, NotFound, PermissionDenied
from ...store.sql import tables as T
from ...store.sql.engine import session
from ...store.validation import check_text
from ..auth import Guard, Principal
from ..context import ServerContext

PREFIX = "mlflow.art/"
OWNER_PREFIX = "mlflow.art.owner/"  # outside PREFIX: listings never read these rows


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _group(path: str) -> str:
    return f"{PREFIX}{_digest(path.split('/', 1)[0], 16)}/"


def _key(path: str) -> str:
    return _group(path) + _digest(path, 40)


def clean(path: str) -> str:
    """A free path as the store keeps it: no leading or trailing ``/``, each part a name
    (valid Unicode: the path is hashed and stored as text)."""
    rel = check_text(path, "path").strip("/")
    if rel:
        try:
            check_path(rel)
        except InvalidArgument as exc:
            raise InvalidArgument(f"Invalid artifact path '{path}': {exc.message}") from None
    return rel


def _experiment_path(c: ServerContext, path: str) -> str | None:
    """The experiment id that ``path``'s first part names, if it names one."""
    first = path.split("/", 1)[0]
    if not first:
        return None
    try:
        c.store.get_experiment(first)
    except (NotFound, InvalidArgument):
        return None
    return first


def check_access(c: ServerContext, p: Principal, path: str, role: str | None = None) -> None:
    """The route's role (or ``role``) on the experiment the path's first part names, else on
    some experiment or model."""
    exp = _experiment_path(c, path)
    if exp is not None:
        c.guard.need(p, "experiment", exp, role)
        return
    if c.guard.enabled:
        c.guard.require_somewhere(p, role or Guard.route_role(p, "experiment"))


def _engine(c: ServerContext) -> Any:
    if c.engine is None:
        raise InvalidArgument("artifacts outside a run need a store with a database (a local "
                              "store directory or a database URL)")
    return c.engine


def _entry(value: str) -> FileEntry:
    d = json.loads(value)
    return FileEntry(d["path"], d["size"], d["digest"], tuple(tuple(x) for x in d["chunks"]))


def _rows(conn: Any, group: str | None) -> list[FileEntry]:
    S = T.registry_settings
    # LIKE, not a range: a database's collation may order '/' apart from the hex digits.
    pattern = (group or PREFIX) + "%"
    return [_entry(v) for v in conn.execute(sa.select(S.c.value).where(S.c.key.like(pattern)))
            .scalars()]


def entries(c: ServerContext, path: str) -> list[FileEntry]:
    """The files at and under ``path`` (every free file for the root)."""
    with session(_engine(c)) as conn:
        found = _rows(conn, _group(path) if path else None)
    below = path + "/"
    return [e for e in found if not path or e.path == path or e.path.startswith(below)]


def _clash(found: list[FileEntry], path: str) -> str | None:
    """Why ``path`` cannot be a file among ``found`` (a directory there, a file above)."""
    parts = path.split("/")
    above = {"/".join(parts[:i]) for i in range(1, len(parts))}
    for e in found:
        if e.path.startswith(path + "/"):
            return f"'{path}' is a directory"
        if e.path in above:
            return f"'{e.path}' is a file"
    return None


def _lock(conn: Any, group: str) -> None:
    """Serialise writers of one top-level directory until the transaction ends.

    Two PUTs of one path (or of ``a`` and ``a/b``) would otherwise both pass the checks
    on PostgreSQL and the second insert fail on the key; SQLite's write transactions are
    already one at a time."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "big", signed=True)
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def _claim(conn: Any, path: str, user: str, may_take: bool) -> None:
    """Make ``user`` the owner of ``path``'s top-level directory if it has none; refuse
    (403) a write under another user's unless ``may_take`` (an admin, or auth off)."""
    S = T.registry_settings
    top = path.split("/", 1)[0]
    key = OWNER_PREFIX + _digest(top, 40)
    owner = conn.execute(sa.select(S.c.value).where(S.c.key == key)).scalar()
    if owner is None:
        conn.execute(sa.insert(S).values(key=key, value=user))
    elif owner != user and not may_take:
        raise PermissionDenied(f"'{top}/' holds another user's artifacts ({owner}'s); only "
                               "they or an admin may write under it")


def put(c: ServerContext, entry: FileEntry, p: Principal | None = None) -> None:
    """Keep ``entry`` at its path, replacing the file there (as a second PUT does on
    MLflow); ``p``, the uploader, must own the path's top-level directory (or make it)."""
    check_entry(entry)
    S = T.registry_settings
    value = json.dumps({"path": entry.path, "size": entry.size, "digest": entry.digest,
                        "chunks": [list(x) for x in entry.chunks]}, separators=(",", ":"))
    with session(_engine(c), write=True) as conn:
        _lock(conn, _group(entry.path))
        if p is not None and not _experiment_path(c, entry.path):
            _claim(conn, entry.path, p.user, not c.guard.enabled or p.is_admin)
        why = _clash(_rows(conn, _group(entry.path)), entry.path)
        if why is not None:
            raise InvalidArgument(f"Cannot store an artifact at '{entry.path}': {why}")
        conn.execute(sa.delete(S).where(S.c.key == _key(entry.path)))
        conn.execute(sa.insert(S).values(key=_key(entry.path), value=value))
