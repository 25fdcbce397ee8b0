"""Where the prediction log lives: one tracking run per served model version.

The runs are in experiment ``cairn-serving``, tagged ``cairn.serving.model=NAME`` and
``cairn.serving.version=VERSION``; segments are their artifacts at
``predictions/YYYY-MM-DD/HH/<writer-id>-<seq>.parquet`` (the UTC hour of the requests).
Everything goes through the public :class:`cairn.Client`, so a local store and a team
server (``--uri http://...``) behave the same.  Two servers starting at once may each make
a run for the same version; readers read every run the tags find.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import NotFound

EXPERIMENT = "cairn-serving"
MODEL_TAG = "cairn.serving.model"
VERSION_TAG = "cairn.serving.version"
ROOT = "predictions"
DROPPED = "predlog.dropped"  # a metric: requests not logged since the previous point
SEGMENT = re.compile(r"predictions/(\d{4}-\d{2}-\d{2})/(\d{2})/([A-Za-z0-9_.]+)-(\d+)\.parquet")


def hour_of(epoch_s: float) -> dt.datetime:
    """The UTC hour a request arrived in."""
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).replace(
        minute=0, second=0, microsecond=0)


def segment_dir(hour: dt.datetime) -> str:
    return f"{ROOT}/{hour:%Y-%m-%d}/{hour:%H}"


@dataclass(frozen=True, slots=True)
class ServingRun:
    run_id: str
    model: str
    version: str


def find_runs(client: Any, model: str, version: str | None = None) -> list[ServingRun]:
    """The prediction-log runs of ``model`` (one version, or all), oldest first."""
    flt = f"tags.`{MODEL_TAG}` = {_quote(model)}"
    if version is not None:
        flt += f" AND tags.`{VERSION_TAG}` = {_quote(version)}"
    out: list[ServingRun] = []
    token = None
    while True:
        try:
            page = client.search_runs([EXPERIMENT], flt, ["attributes.start_time ASC"],
                                      max_results=1000, page_token=token)
        except NotFound:  # no experiment yet: nothing was ever logged
            return []
        out.extend(ServingRun(r.id, model, r.tags.get(VERSION_TAG, "")) for r in page)
        token = page.token
        if not token:
            return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SegmentSink(Protocol):
    """Where the prediction log's writer puts a finished segment file."""

    def upload(self, model: str, version: str, directory: str, local: Path) -> None:
        """Store ``local`` as ``directory/<local.name>`` for ``model`` ``version``."""


class RunSink:
    """Segments as artifacts of the version's run, found or made on first use (lazily: the
    constructor does no I/O, so a server starts while its store is still coming up)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._runs: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def upload(self, model: str, version: str, directory: str, local: Path) -> None:
        run_id = self.run_for(model, version)
        self.client.log_artifact(run_id, local, directory)

    def record_dropped(self, model: str, version: str, n: int, when_ms: int) -> None:
        """``n`` requests of ``model`` ``version`` were not logged: one ``predlog.dropped``
        point of the version's run (a count since the last point, at ``when_ms``)."""
        self.client.log_metric(self.run_for(model, version), DROPPED, n, timestamp=when_ms)

    def run_for(self, model: str, version: str) -> str:
        with self._lock:
            key = (model, version)
            run_id = self._runs.get(key)
            if run_id is None:
                found = find_runs(self.client, model, version)
                run_id = found[0].run_id if found else self._create(model, version)
                self._runs[key] = run_id
            return run_id

    def _create(self, model: str, version: str) -> str:
        exp = self.client.get_or_create_experiment(EXPERIMENT)
        run = self.client.create_run(exp.id, name=f"{model}-{version}-predictions",
                                     tags={MODEL_TAG: model, VERSION_TAG: version})
        return str(run.id)
