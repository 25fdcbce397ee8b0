"""Prepared drift references, stored once and reused by every later report.

Most of a drift report's work that does not depend on the window is the reference: reading
the training data set version's files, sorting each numerical column, counting each
categorical one, and scoring the model version on those rows for the prediction's
reference.  A data set version never changes, so that work is done once per (model version,
data set version): the prepared columns are stored as one artifact of the version's
monitoring run, ``reference/<name>@<version>.npz``, through the public client (a local
store and a team server alike), and later reports, from cron or another machine, read it
back instead of the training data.

The file is a NumPy archive read with ``allow_pickle=False``: per column its values
(sorted numbers, or counts per category) and, for numbers, the inner bin edges; and one JSON
document (``meta``) with the format, the data set version, each column's kind, row count,
standard deviation and categories, and the reference columns that could not be prepared
(with why).  A column whose categories do not survive JSON unchanged (a type JSON would
turn into another) is left out, so it is prepared afresh when a report needs it; a file
that cannot be read, or was written in another format, counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import drift as D

log = logging.getLogger("cairn.monitoring")

FORMAT = 1
ROOT = "reference"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


@dataclass
class Prepared:
    """The reference's columns, prepared, and those that could not be (name -> why)."""

    columns: dict[str, D.Reference] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    predicted: bool = False       # whether the prediction's reference was attempted
    prediction_note: str = ""     # why it has none, when that failed


def artifact_path(dataset: str) -> str:
    """Where the prepared form of ``dataset`` (``name@version``) is kept in the run: its name
    made safe for a path, with a digest so that two names that read alike stay apart."""
    digest = hashlib.sha256(dataset.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{ROOT}/{_UNSAFE.sub('_', dataset)[:100]}-{digest}.npz"


def load(client: Any, run_id: str, dataset: str) -> Prepared | None:
    """The stored prepared reference of ``dataset`` in ``run_id``, or None."""
    import numpy as np

    path = artifact_path(dataset)
    try:
        if not any(e.path == path for e in client.list_artifacts(run_id, ROOT)):
            return None
        with tempfile.TemporaryDirectory(prefix="cairn-reference-") as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            with np.load(Path(local), allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                if meta.get("format") != FORMAT or meta.get("dataset") != dataset:
                    return None
                out = Prepared(failed=dict(meta.get("failed") or {}),
                               predicted=bool(meta.get("predicted")),
                               prediction_note=str(meta.get("prediction_note") or ""))
                for i, col in enumerate(meta["columns"]):
                    edges = archive[f"e{i}"] if col["edges"] else None
                    out.columns[col["name"]] = D.Reference(
                        col["kind"], int(col["rows"]), archive[f"v{i}"],
                        categories=tuple(col["categories"]), std=float(col["std"]),
                        edges=edges)
                return out
    except Exception as exc:  # noqa: BLE001 (a damaged or foreign file is prepared afresh)
        log.warning("drift: the stored reference %s of run %s could not be read (%s); "
                    "preparing it again", path, run_id, getattr(exc, "message", exc))
        return None


def save(client: Any, run_id: str, dataset: str, prepared: Prepared) -> bool:
    """Store ``prepared`` for later reports; False (and a warning) when the store refused."""
    import numpy as np

    arrays: dict[str, Any] = {}
    columns: list[dict[str, Any]] = []
    for name, ref in prepared.columns.items():
        cats = list(ref.categories)
        if not _survives_json(cats):
            continue
        i = len(columns)
        arrays[f"v{i}"] = np.ascontiguousarray(ref.values)
        if ref.edges is not None:
            arrays[f"e{i}"] = np.ascontiguousarray(ref.edges)
        columns.append({"name": name, "kind": ref.kind, "rows": ref.rows, "std": ref.std,
                        "categories": cats, "edges": ref.edges is not None})
    meta = {"format": FORMAT, "dataset": dataset, "columns": columns,
            "failed": prepared.failed, "predicted": prepared.predicted,
            "prediction_note": prepared.prediction_note}
    path = artifact_path(dataset)
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-reference-") as tmp:
            local = Path(tmp) / Path(path).name
            with open(local, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta, allow_nan=False)), **arrays)
            client.log_artifact(run_id, local, ROOT)
        return True
    except Exception as exc:  # noqa: BLE001 (the report stands without it)
        log.warning("drift: the prepared reference %s could not be stored in run %s: %s",
                    dataset, run_id, getattr(exc, "message", exc))
        return False


def _survives_json(values: list[Any]) -> bool:
    try:
        back = json.loads(json.dumps(values, allow_nan=False))
    except (TypeError, ValueError):
        return False
    return all(type(a) is type(b) and a == b for a, b in zip(values, back))
