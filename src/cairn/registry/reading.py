"""What a registry does with versions it has read: the same for a local store and a server.

:class:`VersionReading` is mixed into :class:`~cairn.registry.service.Registry` (SQL) and
:class:`~cairn.registry.remote.RemoteRegistry` (REST); each provides ``get_model_version``
and ``store`` (whose ``objects`` read trees).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import signature as sigmod
from .entities import ModelVersion
from .semver import SemVer
from .versions import Facts, suggest

if TYPE_CHECKING:
    from .loading import ModelSource


def version_facts(mv: ModelVersion) -> Facts:
    """What decides a version's semver bump, from the version as recorded."""
    return Facts(mv.flavor, None if mv.signature is None else dict(mv.signature),
                 dict(mv.fingerprint), dict(mv.params), [dict(x) for x in mv.datasets],
                 (mv.lineage.get("code") or {}).get("commit"))


class VersionReading:
    store: Any

    def get_model_version(self, name: str, version: str) -> ModelVersion:  # pragma: no cover
        raise NotImplementedError

    def diff_model_versions(self, name: str, a: str, b: str) -> dict[str, Any]:
        """What differs between versions ``a`` and ``b``, and the bump ``b`` would get from ``a``."""
        va = self.get_model_version(name, str(SemVer.parse(a)))
        vb = self.get_model_version(name, str(SemVer.parse(b)))
        part, reasons = suggest(version_facts(va), version_facts(vb))
        objects = self.store.objects
        fa = {e.path: e.digest for e in objects.get_tree(va.tree_oid)}
        fb = {e.path: e.digest for e in objects.get_tree(vb.tree_oid)}

        def changed(x: Mapping, y: Mapping) -> dict[str, list]:
            return {k: [x.get(k), y.get(k)] for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}

        return {
            "name": name, "a": va.version, "b": vb.version, "suggested_bump": part,
            "reasons": reasons, "flavor": [va.flavor, vb.flavor],
            "signature": sigmod.diff(va.signature, vb.signature),
            "architecture_changed": dict(va.fingerprint) != dict(vb.fingerprint),
            "params": changed(va.params, vb.params), "metrics": changed(va.metrics, vb.metrics),
            "datasets": [list(va.datasets), list(vb.datasets)] if va.datasets != vb.datasets else [],
            "code": [(va.lineage.get("code") or {}).get("commit"),
                     (vb.lineage.get("code") or {}).get("commit")],
            "files": {"added": sorted(set(fb) - set(fa)), "removed": sorted(set(fa) - set(fb)),
                      "changed": sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p])},
            "stage": [va.stage, vb.stage],
        }

    # -- loading and integrity (loading.py) --------------------------------
    def load_model(self: ModelSource, ref: Any, **kwargs: Any) -> Any:
        from .loading import load

        return load(self, ref, **kwargs)

    def download_model(self: ModelSource, ref: Any, dst: Any = None, **kwargs: Any) -> Path:
        from .loading import download

        return download(self, ref, dst, **kwargs)

    def verify_model_versions(self: ModelSource, name: str, version: str | None = None,
                              trusted_keys: Iterable[Any] | None = None,
                              progress: bool | None = False) -> list:
        from .loading import verify_versions

        return verify_versions(self, name, version, trusted_keys, progress)
