"""Pipelines: stages with a cache (``cairn pipeline run`` / ``status``; docs/pipelines.md).

``run(client, path)`` brings a ``cairn.yaml`` (or ``dvc.yaml``) up to date: each stage
whose key (command, dependencies' contents, params) was seen before is restored from the
object store instead of run; the others run, in parallel where independent, each as a
run whose inputs and outputs are data set versions.  ``status(client, path)`` says which
stages are stale and why, without running or writing anything but the lock's stat cache.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from .runner import PipelineResult, Runner, StageResult, dataset_name, read_metrics
from .spec import Pipeline, Stage, find_pipeline_file, load_pipeline
from .state import LOCK_NAME, State

__all__ = ["Pipeline", "PipelineResult", "Stage", "StageResult", "dataset_name", "load_pipeline",
           "read_metrics", "run", "status"]


def run(client: Any, path: str | os.PathLike[str] | None = None, stage: str | None = None, *,
        jobs: int = 1, dry_run: bool = False, force: bool = False,
        experiment: str = "pipeline", on_event: Any = None) -> PipelineResult:
    """Bring the pipeline at ``path`` (default ``cairn.yaml``, else ``dvc.yaml``) up to date:
    every stage, or ``stage`` and the stages it reads from.  ``dry_run``: say what would
    run, run nothing.  ``force``: run the selected stages even when cached."""
    if stage is not None and (not isinstance(stage, str) or not stage):
        raise _invalid(f"stage must be a stage name, got {stage!r}")
    with _exclusive(path, dry_run) as alone:
        state, pipeline = _load(path)
        state.readonly = not alone
        runner = Runner(client, pipeline, jobs=jobs, experiment=experiment, on_event=on_event,
                        state=state)
        return runner.run(pipeline.select(stage), dry_run=dry_run, force=force)


@contextlib.contextmanager
def _exclusive(path: str | os.PathLike[str] | None, dry_run: bool) -> Iterator[bool]:
    """One ``run`` per pipeline file at a time: two would run the same stages into the same
    outputs, and the second to save the lock file would drop what the first recorded.
    An advisory lock on the pipeline file itself (no file is created).  Dry runs and
    ``status`` share it and never wait: while a run holds it they answer without saving
    the lock file's stat cache (yields False), so they cannot drop what the run records."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield True
        return
    file = find_pipeline_file(path)
    fd = os.open(file, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if dry_run else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            if dry_run:
                yield False
                return
            from ..errors import Conflict

            raise Conflict(f"another 'cairn pipeline run' is running {file}; wait for it to "
                           "end", path=str(file)) from None
        yield True
    finally:
        os.close(fd)  # releases the lock


def status(client: Any, path: str | os.PathLike[str] | None = None,
           stage: str | None = None) -> PipelineResult:
    """Which stages are stale and why (a dry run): ``stale`` stages carry a ``reason``, and
    ``cached`` when the run cache has their key (a run would restore, not execute them).
    ``client`` None: no store yet, so no run cache to ask."""
    return run(client, path, stage, dry_run=True)


def _load(path: str | os.PathLike[str] | None) -> tuple[State, Pipeline]:
    """The lock file and the pipeline, parsed or taken from the lock when unchanged."""
    file = find_pipeline_file(path).resolve()
    state = State.load(file.parent / LOCK_NAME)
    before = dict(state.pipeline)
    pipeline = load_pipeline(file, state.pipeline)
    if state.pipeline != before:
        state.dirty = True
    return state, pipeline


def _invalid(message: str) -> Exception:
    from ..errors import InvalidArgument

    return InvalidArgument(message)
