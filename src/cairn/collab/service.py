"""Comments and saved views on a store with an SQL index (a local store, PostgreSQL).

:class:`Collab` acts as one user.  Every value is checked (:mod:`.rules`) before anything
is written, and every write is one transaction (a comment with its mentions; an edit with
the body it replaced), so a refused call stores nothing.

Who may do what: anyone who may use the store writes comments and views; a comment is
edited, deleted or restored by its author, and a view replaced or deleted by its creator,
unless the service acts ``admin=True`` (on a server, the routes set it for admins of the
target).  On a local store everyone may do everything, as for the registry, by saying so.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .. import clock
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..services import StoreService
from ..store.base import Indexed
from ..store.validation import text_checked
from . import repo, rules
from .entities import Comment, CommentEdit, Dashboard, Report, SavedView

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@text_checked()
class Collab(StoreService):
    """Comments on runs, experiments, model versions and data set versions, and saved views
    of an experiment's runs table, on ``store`` as ``user``.

    Build it with :func:`cairn.collab.collab_for` (a server's client gets a
    :class:`~cairn.collab.remote.RemoteCollab` with the same methods).
    """

    def __init__(self, store: Any = None, user: str | None = None, *, admin: bool = False) -> None:
        StoreService.__init__(self, store, user)
        self.admin = admin

    @property
    def store(self) -> Any:
        store = self._backend
        if not isinstance(store, Indexed):
            raise InvalidArgument(f"comments and saved views need a store with a database (a "
                                  f"local store directory or a server), not {store.uri}")
        store.open()
        return store

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self.store.index.session(write=write)

    # -- targets ---------------------------------------------------------------------
    def resolve_target(self, target_type: str, target_id: str) -> str:
        """The canonical id of a target that exists (NotFound otherwise): a run's id, an
        experiment's id, ``NAME@VERSION`` of a model version or data set version (a data set
        alias, ``NAME@gold``, names the version it points to now)."""
        rules.check_target(target_type, target_id)
        if target_type == "run":
            return self.client.get_run(target_id).id
        if target_type == "experiment":
            return self.client.get_experiment(target_id).id
        name, _, version = target_id.rpartition("@")
        if target_type == "model_version":
            from ..services import registry_for

            if not name:
                raise NotFound(f"no model version {target_id!r}")
            mv = registry_for(self.client).get_model_version(name, version)
            return f"{mv.name}@{mv.version}"
        from ..services import datasets_for

        if not name or not version:
            raise InvalidArgument(f"a data set version is named NAME@VERSION, got {target_id!r}")
        return datasets_for(self.client).version(target_id).ref  # an alias: the version it names

    # -- comments --------------------------------------------------------------------
    def add_comment(self, target_type: str, target_id: str, body: str,
                    parent_id: str | None = None) -> Comment:
        """Comment on a target (reply to ``parent_id``, a comment on the same target)."""
        rules.check_target(target_type, target_id)
        rules.check_body(body)
        if parent_id is not None:
            rules.check_comment_id(parent_id)
        target = self.resolve_target(target_type, target_id)
        now = clock.now_ms()
        c = Comment(id=uuid.uuid4().hex, target_type=target_type, target_id=target,
                    parent_id=parent_id, author=self.user, body=body,
                    mentions=rules.mentions(body), created_at=now)
        with self.session(write=True) as conn:
            if parent_id is not None:
                parent = repo.require_comment(conn, parent_id)
                if (parent.target_type, parent.target_id) != (target_type, target):
                    raise InvalidArgument(f"comment {parent_id!r} is on {parent.target}, not on "
                                          f"{target_type}:{target}: a reply stays on its thread")
            repo.insert_comment(conn, c)
        return c

    def comments(self, target_type: str, target_id: str) -> list[Comment]:
        """Every comment on a target, oldest first (deleted ones as empty placeholders, so
        that a thread keeps its shape: build it from ``parent_id``)."""
        target = self.resolve_target(target_type, target_id)
        with self.session() as conn:
            return repo.comments_on(conn, target_type, target)

    def get_comment(self, comment_id: str) -> Comment:
        rules.check_comment_id(comment_id)
        with self.session() as conn:
            return repo.require_comment(conn, comment_id)

    def comment_history(self, comment_id: str) -> list[CommentEdit]:
        """The bodies a comment had before each edit, oldest first (none once deleted)."""
        rules.check_comment_id(comment_id)
        with self.session() as conn:
            if repo.require_comment(conn, comment_id).deleted:
                return []
            return repo.history(conn, comment_id)

    def _deletable(self, kind: str, name: str, found: Any) -> None:
        """Refuse the delete of a missing dashboard or report (404), or of another user's
        unless the caller is an admin (403)."""
        if found is None:
            raise NotFound(f"no {kind} named {name!r}", name=name)
        if found.created_by != self.user and not self.admin:
            raise PermissionDenied(f"{kind} {name!r} was saved by {found.created_by!r}; only "
                                   "they or an admin may delete it")

    def _mine(self, c: Comment, verb: str) -> None:
        if c.author != self.user and not self.admin:
            raise PermissionDenied(f"only {c.author!r}, who wrote comment {c.id!r}, or an admin "
                                   f"may {verb} it", comment_id=c.id, author=c.author)

    def edit_comment(self, comment_id: str, body: str) -> Comment:
        """Replace a comment's body; the old body is kept in its history."""
        rules.check_comment_id(comment_id)
        rules.check_body(body)
        with self.session(write=True) as conn:
            old = repo.require_comment(conn, comment_id)
            self._mine(old, "edit")
            if old.deleted:
                raise InvalidArgument(f"comment {comment_id!r} is deleted; restore it first")
            if old.body != body:
                repo.edit_comment(conn, old, body, rules.mentions(body), self.user,
                                  clock.now_ms())
            return repo.require_comment(conn, comment_id)

    def delete_comment(self, comment_id: str) -> Comment:
        """Soft-delete a comment: its replies stay, its text is hidden until restored."""
        rules.check_comment_id(comment_id)
        with self.session(write=True) as conn:
            old = repo.require_comment(conn, comment_id)
            self._mine(old, "delete")
            if not old.deleted:
                repo.delete_comment(conn, old, self.user, clock.now_ms())
            return repo.require_comment(conn, comment_id)

    def restore_comment(self, comment_id: str) -> Comment:
        """Undo :meth:`delete_comment`."""
        rules.check_comment_id(comment_id)
        with self.session(write=True) as conn:
            old = repo.require_comment(conn, comment_id)
            self._mine(old, "restore")
            if old.deleted and old.deleted_by != old.author and not self.admin:
                # An admin's moderation stays until an admin undoes it.
                raise PermissionDenied(f"comment {comment_id!r} was deleted by "
                                       f"{old.deleted_by!r}; only an admin may restore it",
                                       comment_id=comment_id)
            if old.deleted:
                body = repo.stored_body(conn, comment_id)
                repo.restore_comment(conn, comment_id, rules.mentions(body), clock.now_ms())
            return repo.require_comment(conn, comment_id)

    def mentions(self, user: str | None = None, limit: int = 100) -> list[Comment]:
        """Comments that mention ``user`` (default: this service's user), newest first."""
        who = self.user if user is None else user
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 1000:
            raise InvalidArgument(f"limit must be an integer from 1 to 1000, got {limit!r}")
        with self.session() as conn:
            return repo.mentioning(conn, who, limit)

    # -- saved views -----------------------------------------------------------------
    def _experiment(self, experiment_id: str) -> str:
        if not isinstance(experiment_id, str) or not experiment_id:
            raise InvalidArgument(f"experiment_id must be a non-empty string, got "
                                  f"{experiment_id!r}")
        return self.client.get_experiment(experiment_id).id

    def save_view(self, experiment_id: str, name: str, state: Mapping[str, Any]) -> SavedView:
        """Save (or replace) a named state of an experiment's runs table."""
        rules.check_view_name(name)
        clean = rules.check_state(dict(state) if isinstance(state, Mapping) else state)
        exp = self._experiment(experiment_id)
        now = clock.now_ms()
        with self.session(write=True) as conn:
            old = repo.view(conn, exp, name)
            if old is not None and old.created_by != self.user and not self.admin:
                raise PermissionDenied(f"view {name!r} was saved by {old.created_by!r}; only "
                                       "they or an admin may replace it; save it under "
                                       "another name")
            v = SavedView(exp, name, clean, old.created_by if old else self.user,
                          old.created_at if old else now, self.user, now)
            repo.put_view(conn, v, exists=old is not None)
            return v

    def views(self, experiment_id: str) -> list[SavedView]:
        exp = self._experiment(experiment_id)
        with self.session() as conn:
            return repo.views(conn, exp)

    def get_view(self, experiment_id: str, name: str) -> SavedView:
        rules.check_view_name(name)
        exp = self._experiment(experiment_id)
        with self.session() as conn:
            v = repo.view(conn, exp, name)
        if v is None:
            raise NotFound(f"experiment {exp!r} has no saved view {name!r}", name=name)
        return v

    def delete_view(self, experiment_id: str, name: str) -> None:
        rules.check_view_name(name)
        exp = self._experiment(experiment_id)
        with self.session(write=True) as conn:
            v = repo.view(conn, exp, name)
            if v is None:
                raise NotFound(f"experiment {exp!r} has no saved view {name!r}", name=name)
            if v.created_by != self.user and not self.admin:
                raise PermissionDenied(f"view {name!r} was saved by {v.created_by!r}; only "
                                       "they or an admin may delete it")
            repo.delete_view(conn, exp, name)

    # -- dashboards ------------------------------------------------------------------
    def save_dashboard(self, name: str, panels: Sequence[Mapping[str, Any]],
                       description: str = "") -> Dashboard:
        """Save (or replace) a dashboard: named panels over saved queries (see
        :class:`~cairn.collab.entities.Dashboard` for a panel's keys).  Every experiment
        and saved view a panel names must exist."""
        rules.check_dashboard_name(name)
        rules.check_description(description)
        clean = rules.check_panels([dict(p) if isinstance(p, Mapping) else p for p in panels]
                                   if isinstance(panels, (list, tuple)) else panels)
        for p in clean:
            p["experiment_id"] = self._experiment(p["experiment_id"])
        now = clock.now_ms()
        with self.session(write=True) as conn:
            for i, p in enumerate(clean):
                if p["view"] is not None and repo.view(conn, p["experiment_id"], p["view"]) is None:
                    raise NotFound(f"panels[{i}]: experiment {p['experiment_id']!r} has no "
                                   f"saved view {p['view']!r}", name=p["view"])
            old = repo.dashboard(conn, name)
            if old is not None and old.created_by != self.user and not self.admin:
                raise PermissionDenied(f"dashboard {name!r} was saved by {old.created_by!r}; "
                                       "only they or an admin may replace it")
            d = Dashboard(name, description, tuple(clean), old.created_by if old else self.user,
                          old.created_at if old else now, self.user, now)
            repo.put_dashboard(conn, d, exists=old is not None)
            return d

    def dashboards(self) -> list[Dashboard]:
        with self.session() as conn:
            return repo.dashboards(conn)

    def get_dashboard(self, name: str) -> Dashboard:
        rules.check_dashboard_name(name)
        with self.session() as conn:
            d = repo.dashboard(conn, name)
        if d is None:
            raise NotFound(f"no dashboard named {name!r}", name=name)
        return d

    def delete_dashboard(self, name: str) -> None:
        rules.check_dashboard_name(name)
        with self.session(write=True) as conn:
            self._deletable("dashboard", name, repo.dashboard(conn, name))
            repo.delete_dashboard(conn, name)

    # -- reports ---------------------------------------------------------------------
    def resolve_panels(self, body: str) -> list[dict[str, Any]]:
        """The body's panels, checked, each run and model looked up (NotFound names the
        panel); a run's panel records the experiments it draws from."""
        from ..errors import CairnError
        from . import reports

        panels = reports.parse_panels(body)
        for i, p in enumerate(panels):
            where = reports.panel_where(i, p)
            if p["type"] == "stages":
                from ..services import registry_for

                try:
                    p["model"] = registry_for(self.client).get_registered_model(p["model"]).name
                except NotFound:
                    raise NotFound(f"{where}: no model {p['model']!r}", panel=i + 1) from None
                continue
            runs = []
            for run_id in reports.panel_runs(p):
                try:
                    runs.append(self.client.get_run(run_id))
                except NotFound:
                    raise NotFound(f"{where}: no run {run_id!r}", panel=i + 1) from None
                except CairnError as exc:
                    raise type(exc)(f"{where}: {exc.message}", panel=i + 1) from None
            if p["type"] == "metric":
                p["run"] = runs[0].id
            else:
                p["runs"] = [r.id for r in runs]
            p["experiments"] = list(dict.fromkeys(r.experiment_id for r in runs))
        return panels

    def save_report(self, name: str, body: str) -> Report:
        """Save (or replace) a report: Markdown with ``cairn-panel`` blocks (see
        :mod:`cairn.collab.reports`).  Every run and model a panel names must exist."""
        from . import reports

        reports.check_report_name(name)
        panels = self.resolve_panels(body)
        exps, models = reports.sources(panels)
        now = clock.now_ms()
        with self.session(write=True) as conn:
            old = repo.report(conn, name)
            if old is not None and old.created_by != self.user and not self.admin:
                raise PermissionDenied(f"report {name!r} was written by {old.created_by!r}; "
                                       "only they or an admin may replace it")
            r = Report(name, body, tuple(panels), exps, models,
                       old.created_by if old else self.user, old.created_at if old else now,
                       self.user, now)
            repo.put_report(conn, r, exists=old is not None)
            return r

    def reports(self) -> list[Report]:
        with self.session() as conn:
            return repo.reports(conn)

    def get_report(self, name: str) -> Report:
        from . import reports

        reports.check_report_name(name)
        with self.session() as conn:
            r = repo.report(conn, name)
        if r is None:
            raise NotFound(f"no report named {name!r}", name=name)
        return r

    def delete_report(self, name: str) -> None:
        from . import reports

        reports.check_report_name(name)
        with self.session(write=True) as conn:
            self._deletable("report", name, repo.report(conn, name))
            repo.delete_report(conn, name)

    def report_data(self, name: str) -> dict[str, Any]:
        """The report with each panel's data drawn now, as JSON (what the UI renders)."""
        from . import reports

        return reports.snapshot(self.client, self.get_report(name))

    def export_report(self, name: str) -> str:
        """The report as one self-contained HTML file (see :mod:`cairn.collab.export`)."""
        from .export import export_html

        return export_html(self.report_data(name))
