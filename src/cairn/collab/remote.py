"""Comments and saved views of a Cairn server, with the same Python API as :class:`Collab`.

Each method is one request to the server's ``/api/v1/comments`` or
``/api/v1/experiments/{id}/views`` endpoints; the server applies it with its own
:class:`~cairn.collab.service.Collab` (the caller's token as the user, its roles on the
target deciding what it may do) and audits it.  Values are checked here first, with the
same rules, so a refused value never travels.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Mapping, Sequence

from ..errors import InvalidArgument
from ..services import StoreService
from ..store.validation import text_checked
from . import rules
from .entities import Comment, CommentEdit, Dashboard, Report, SavedView


def _q(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


def comment_from_json(d: Mapping[str, Any]) -> Comment:
    return Comment(id=d["id"], target_type=d["target_type"], target_id=d["target_id"],
                   parent_id=d.get("parent_id"), author=d["author"], body=d["body"],
                   mentions=tuple(d.get("mentions") or ()), created_at=d["created_at"],
                   edited_at=d.get("edited_at"), edited_by=d.get("edited_by"),
                   edits=d.get("edits", 0), deleted_at=d.get("deleted_at"),
                   deleted_by=d.get("deleted_by"))


def view_from_json(d: Mapping[str, Any]) -> SavedView:
    return SavedView(d["experiment_id"], d["name"], dict(d["state"]), d["created_by"],
                     d["created_at"], d["updated_by"], d["updated_at"])


def dashboard_from_json(d: Mapping[str, Any]) -> Dashboard:
    return Dashboard(d["name"], d["description"], tuple(d["panels"]), d["created_by"],
                     d["created_at"], d["updated_by"], d["updated_at"])


def report_from_json(d: Mapping[str, Any]) -> Report:
    return Report(d["name"], d["body"], tuple(d["panels"]), tuple(d["experiment_ids"]),
                  tuple(d["models"]), d["created_by"], d["created_at"], d["updated_by"],
                  d["updated_at"])


@text_checked()
class RemoteCollab(StoreService):
    """:class:`~cairn.collab.service.Collab`'s API over a server's REST API."""

    def __init__(self, store: Any = None, user: str | None = None, *, admin: bool = False) -> None:
        StoreService.__init__(self, store, user)
        self.admin = admin  # decided by the server from the caller's roles; kept for symmetry

    @property
    def store(self) -> Any:
        return self._backend

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.store.call(method, path, **kw)

    # -- comments --------------------------------------------------------------------
    def add_comment(self, target_type: str, target_id: str, body: str,
                    parent_id: str | None = None) -> Comment:
        rules.check_target(target_type, target_id)
        rules.check_body(body)
        if parent_id is not None:
            rules.check_comment_id(parent_id)
        return comment_from_json(self._call("POST", "/comments", json={
            "target_type": target_type, "target_id": target_id, "body": body,
            "parent_id": parent_id}))

    def comments(self, target_type: str, target_id: str) -> list[Comment]:
        rules.check_target(target_type, target_id)
        d = self._call("GET", "/comments", params={"target_type": target_type,
                                                   "target_id": target_id})
        return [comment_from_json(c) for c in d["comments"]]

    def get_comment(self, comment_id: str) -> Comment:
        rules.check_comment_id(comment_id)
        return comment_from_json(self._call("GET", f"/comments/{comment_id}"))

    def comment_history(self, comment_id: str) -> list[CommentEdit]:
        rules.check_comment_id(comment_id)
        d = self._call("GET", f"/comments/{comment_id}/history")
        return [CommentEdit(e["comment_id"], e["seq"], e["body"], e["editor"], e["edited_at"])
                for e in d["edits"]]

    def edit_comment(self, comment_id: str, body: str) -> Comment:
        rules.check_comment_id(comment_id)
        rules.check_body(body)
        return comment_from_json(self._call("PUT", f"/comments/{comment_id}",
                                            json={"body": body}))

    def delete_comment(self, comment_id: str) -> Comment:
        rules.check_comment_id(comment_id)
        return comment_from_json(self._call("DELETE", f"/comments/{comment_id}"))

    def restore_comment(self, comment_id: str) -> Comment:
        rules.check_comment_id(comment_id)
        return comment_from_json(self._call("POST", f"/comments/{comment_id}/restore"))

    def mentions(self, user: str | None = None, limit: int = 100) -> list[Comment]:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 1000:
            raise InvalidArgument(f"limit must be an integer from 1 to 1000, got {limit!r}")
        params: dict[str, Any] = {"limit": limit}
        if user is not None:
            params["user"] = user
        d = self._call("GET", "/comments/mentions", params=params)
        return [comment_from_json(c) for c in d["comments"]]

    # -- saved views -----------------------------------------------------------------
    @staticmethod
    def _exp(experiment_id: str) -> str:
        if not isinstance(experiment_id, str) or not experiment_id:
            raise InvalidArgument(f"experiment_id must be a non-empty string, got "
                                  f"{experiment_id!r}")
        return _q(experiment_id)

    def save_view(self, experiment_id: str, name: str, state: Mapping[str, Any]) -> SavedView:
        rules.check_view_name(name)
        clean = rules.check_state(dict(state) if isinstance(state, Mapping) else state)
        return view_from_json(self._call(
            "PUT", f"/experiments/{self._exp(experiment_id)}/views/{_q(name)}",
            json={"state": clean}))

    def views(self, experiment_id: str) -> list[SavedView]:
        d = self._call("GET", f"/experiments/{self._exp(experiment_id)}/views")
        return [view_from_json(v) for v in d["views"]]

    def get_view(self, experiment_id: str, name: str) -> SavedView:
        rules.check_view_name(name)
        return view_from_json(self._call(
            "GET", f"/experiments/{self._exp(experiment_id)}/views/{_q(name)}"))

    def delete_view(self, experiment_id: str, name: str) -> None:
        rules.check_view_name(name)
        self._call("DELETE", f"/experiments/{self._exp(experiment_id)}/views/{_q(name)}")

    # -- dashboards ------------------------------------------------------------------
    def save_dashboard(self, name: str, panels: Sequence[Mapping[str, Any]],
                       description: str = "") -> Dashboard:
        rules.check_dashboard_name(name)
        rules.check_description(description)
        clean = rules.check_panels([dict(p) if isinstance(p, Mapping) else p for p in panels]
                                   if isinstance(panels, (list, tuple)) else panels)
        return dashboard_from_json(self._call("PUT", f"/dashboards/{_q(name)}", json={
            "description": description, "panels": clean}))

    def dashboards(self) -> list[Dashboard]:
        return [dashboard_from_json(d) for d in self._call("GET", "/dashboards")["dashboards"]]

    def get_dashboard(self, name: str) -> Dashboard:
        rules.check_dashboard_name(name)
        return dashboard_from_json(self._call("GET", f"/dashboards/{_q(name)}"))

    def delete_dashboard(self, name: str) -> None:
        rules.check_dashboard_name(name)
        self._call("DELETE", f"/dashboards/{_q(name)}")

    # -- reports ---------------------------------------------------------------------
    def save_report(self, name: str, body: str) -> Report:
        from . import reports

        reports.check_report_name(name)
        reports.parse_panels(body)
        return report_from_json(self._call("PUT", f"/reports/{_q(name)}", json={"body": body}))

    def reports(self) -> list[Report]:
        return [report_from_json(d) for d in self._call("GET", "/reports")["reports"]]

    def get_report(self, name: str) -> Report:
        from . import reports

        reports.check_report_name(name)
        return report_from_json(self._call("GET", f"/reports/{_q(name)}"))

    def delete_report(self, name: str) -> None:
        from . import reports

        reports.check_report_name(name)
        self._call("DELETE", f"/reports/{_q(name)}")

    def report_data(self, name: str) -> dict[str, Any]:
        from . import reports

        reports.check_report_name(name)
        return dict(self._call("GET", f"/reports/{_q(name)}/data"))

    def export_report(self, name: str) -> str:
        """The server draws the data (what the caller may view) and this side inlines it
        with the renderer, as a local export does."""
        from .export import export_html

        return export_html(self.report_data(name))
