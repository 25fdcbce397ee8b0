"""Registered models, versions, stages and aliases from an MLflow registry.

MLflow numbers versions 1, 2, 3...; Cairn numbers them MAJOR.MINOR.PATCH.  MLflow
version N becomes Cairn version ``N.0.0``: the order is kept, the MLflow number can
be read off the major part, and a later import recognises what it already brought
in.  A version's files (whatever MLflow's download URI for it holds: an ``MLmodel``
directory) are registered with flavor ``directory`` under ``model/``; its source run
is linked when that run was imported (the files then also appear among the run's
artifacts under ``models/NAME/N.0.0/``, as for any registration inside a run).
MLflow stage ``None`` is Cairn's Development; Staging, Production and Archived keep
their names.  When MLflow had several versions in Production at once, the imported
model's Production stage is made non-exclusive so that all of them stay there.
A later import brings stages and aliases in line with the source again.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from .mlflow import SOURCE_TAG, pages, run_exists
from .mlflow_source import Source
from .summary import Counts, ImportSummary

if TYPE_CHECKING:  # pragma: no cover
    from ..client import Client

STAGES = {"none": "Development", "staging": "Staging", "production": "Production",
          "archived": "Archived"}


def cairn_version(mlflow_version: Any) -> str:
    return f"{int(mlflow_version)}.0.0"


@dataclass(slots=True)
class _Model:
    name: str
    description: str
    tags: dict[str, str]
    versions: dict[str, Any]  # Cairn version -> MLflow ModelVersion
    aliases: dict[str, str]  # alias -> Cairn version


@dataclass(slots=True)
class Imported:
    """What the registry part selected, for verification after the runs are checked."""

    models: list[_Model] = field(default_factory=list)

    def verify(self, client: "Client", cairn: Counts, problems: list[str]) -> None:
        for m in self.models:
            try:
                got = client.get_registered_model(m.name)
            except NotFound:
                problems.append(f"model {m.name!r} is missing")
                continue
            cairn.models += 1
            tags = {k: v for k, v in m.tags.items() if got.tags.get(k) == v}
            if tags != m.tags or got.description != m.description:
                problems.append(f"model {m.name!r}: description or tags differ")
            have = {v.version: v for v in client.list_model_versions(m.name)}
            for ver, mv in m.versions.items():
                cv = have.get(ver)
                if cv is None:
                    problems.append(f"model version {m.name}/{ver} is missing")
                    continue
                cairn.versions += 1
                if cv.stage != _stage(mv):
                    problems.append(f"{m.name}/{ver} is in {cv.stage}, in MLflow {_stage(mv)}")
                elif cv.stage != "Development":
                    cairn.stages += 1
                if cv.description != (mv.description or ""):
                    problems.append(f"{m.name}/{ver}: description differs")
            aliases = dict(got.aliases)
            for alias, ver in m.aliases.items():
                if aliases.get(alias) == ver:
                    cairn.aliases += 1
                else:
                    problems.append(f"alias {m.name}@{alias} points at {aliases.get(alias)}, "
                                    f"in MLflow at {ver}")


def select_models(client: "Client", src: Source, only: set[str] | None) -> Imported:
    """What to import from the registry (``only``: versions whose source run is in this set),
    checked against what Cairn can hold before anything is written."""
    out = Imported(_select(src, only))
    _preflight(client, out.models)
    return out


def import_models(client: "Client", src: Source, out: Imported, summary: ImportSummary,
                  report: Callable[[str, int, int], None]) -> None:
    total = sum(len(m.versions) for m in out.models)
    done = 0
    for m in out.models:
        _count(summary.source, m)
        _model(client, src, m, summary.imported)
        done += len(m.versions)
        report("model versions", done, total)


def _select(src: Source, only: set[str] | None) -> list[_Model]:
    out = []
    names = [rm.name for rm in pages(lambda token: src.client.search_registered_models(
        max_results=1000, page_token=token))]
    for name in sorted(names):
        if not _valid_name(name):  # reported by _preflight; it could not be quoted in a filter
            out.append(_Model(name, "", {}, {}, {}))
            continue
        rm = src.client.get_registered_model(name)
        versions = list(pages(lambda token: src.client.search_model_versions(
            f"name = '{name}'", max_results=10000, page_token=token)))  # noqa: B023  (list() drains it here)
        if only is not None:
            versions = [v for v in versions if v.run_id in only]
            if not versions:
                continue
        by_ver = {cairn_version(v.version): v for v in sorted(versions, key=lambda v: int(v.version))}
        aliases = {a: cairn_version(v) for a, v in (rm.aliases or {}).items()
                   if cairn_version(v) in by_ver}
        out.append(_Model(name, rm.description or "", dict(rm.tags or {}), by_ver, aliases))
    return out


def _valid_name(name: str) -> bool:
    from ..registry.naming import check_name

    try:
        check_name(name)
    except InvalidArgument:
        return False
    return True


def _preflight(client: "Client", models: list[_Model]) -> None:
    from ..registry.naming import check_alias

    policy = client.get_naming_policy() if models else None
    bad = []
    for m in models:
        if not _valid_name(m.name):
            bad.append(f"model name {m.name!r}")
            continue
        try:
            got = client.get_registered_model(m.name)
        except NotFound:
            if policy is not None:  # the registry's naming policy applies to new models
                try:
                    policy.check(m.name)
                except InvalidArgument as exc:
                    bad.append(f"model name {m.name!r} ({exc.message})")
        else:
            if SOURCE_TAG not in got.tags:
                raise Conflict(f"Cairn already has a model named {m.name!r} that was not "
                               "imported from MLflow; its versions would mix with MLflow's. "
                               "Rename one of them, or import without the registry (--no-models)")
        for alias in m.aliases:
            try:
                check_alias(alias)
            except InvalidArgument:
                bad.append(f"alias {m.name}@{alias}")
    if bad:
        raise InvalidArgument("the MLflow registry has names Cairn cannot hold: "
                              + ", ".join(bad) + ". Model names use letters, digits, '.', '_' "
                              "and '-'; aliases cannot be stage names or 'latest'. Rename them "
                              "in MLflow, or import without the registry (--no-models)")


def _count(counts: Counts, m: _Model) -> None:
    counts.models += 1
    counts.versions += len(m.versions)
    counts.aliases += len(m.aliases)
    counts.stages += sum(1 for v in m.versions.values() if _stage(v) != "Development")


def _stage(mv: Any) -> str:
    return STAGES.get(str(mv.current_stage or "None").lower(), "Development")


def _model(client: "Client", src: Source, m: _Model, imported: Counts) -> None:
    try:
        client.get_registered_model(m.name)
    except NotFound:
        try:
            client.create_registered_model(m.name, m.description,
                                           {**m.tags, SOURCE_TAG: src.label})
            imported.models += 1
        except AlreadyExists:  # another import made it a moment ago
            pass
    have = {v.version: v for v in client.list_model_versions(m.name)}
    for ver, mv in m.versions.items():
        if ver not in have:
            try:
                _register(client, src, m.name, ver, mv)
                imported.versions += 1
            except AlreadyExists:  # another import registered it a moment ago
                pass
    if sum(1 for v in m.versions.values() if _stage(v) == "Production") > 1:
        policy = {p.stage: p for p in client.get_stage_policies(m.name)}["Production"]
        if policy.exclusive:
            client.set_stage_policy(m.name, "Production", policy.approvals, policy.approvers,
                                    exclusive=False)
    current = {v.version: v.stage for v in client.list_model_versions(m.name)}
    for ver, mv in m.versions.items():
        if current.get(ver) != _stage(mv):
            client.transition_model_version_stage(m.name, ver, _stage(mv),
                                                  comment="imported from MLflow")
            if _stage(mv) != "Development":
                imported.stages += 1
    aliases = dict(client.get_registered_model(m.name).aliases)
    for alias, ver in m.aliases.items():
        if aliases.get(alias) != ver:
            client.set_alias(m.name, alias, ver)
            imported.aliases += 1


def _register(client: "Client", src: Source, name: str, version: str, mv: Any) -> None:
    import mlflow.artifacts

    uri = src.client.get_model_version_download_uri(mv.name, mv.version)
    run_id = mv.run_id if mv.run_id and run_exists(client, mv.run_id) else None
    with tempfile.TemporaryDirectory(prefix="cairn-mlflow-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=f"{tmp}/dl",
                                                         tracking_uri=src.uri))
        if local.is_file():  # a single-file model: registered as a directory holding it
            folder = Path(tmp) / "model"
            folder.mkdir()
            shutil.move(str(local), folder / local.name)
            local = folder
        client.register_model(name, local, flavor="directory", version=version, run_id=run_id,
                              description=mv.description or "")
