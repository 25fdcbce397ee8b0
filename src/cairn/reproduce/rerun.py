"""Re-running a recorded command in a throwaway store, and finding the original's rerun there.

The command runs with ``CAIRN_TRACKING_URI`` and ``CAIRN_REPRODUCE_STORE`` pointing at a
fresh local store in a temporary directory: every run, model version and data set version
the script makes lands there and is thrown away, so a script that makes nine runs does
not add eight to the experiment.  The throwaway store shares the real store's object
directory when the real store is local (content-addressed: nothing is copied, and what the
rerun writes is garbage-collected like any unreferenced object), and it holds, at the
same names and numbers, the data set versions the original runs read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..entities import Run
from ..store.base import Directory
from .plan import DataInput, Plan
from .workspace import SetupFailed

_TAIL_LINES = 15
_MAX_CANDIDATES = 10
_CAPTURE_LAG_MS = 60_000
# Not handed on to the rerun: where the original wrote, and its credentials.
_DROPPED = ("CAIRN_TRACKING_URI", "CAIRN_TRACKING_TOKEN", "CAIRN_REPRODUCE_STORE",
            "CAIRN_REPRODUCE_OF")


@dataclass(frozen=True, slots=True)
class Execution:
    returncode: int | None        # None: killed at the timeout
    seconds: float
    output_tail: str


def throwaway_store(real: Any, tmp: Path) -> Path:
    """A directory for the rerun's store, sharing ``real``'s objects when it is local."""
    path = tmp / "store"
    path.mkdir()
    if isinstance(real, Directory):
        objects = Path(real.root) / "objects"
        objects.mkdir(parents=True, exist_ok=True)
        os.symlink(objects, path / "objects", target_is_directory=True)
    return path


def seed_inputs(real_client: Any, rerun_client: Any, inputs: Iterable[DataInput],
                shared_objects: bool) -> None:
    """Give the throwaway store the data set versions the originals read, by digest."""
    from ..cas.tree import referenced_oids
    from ..data.entities import DataRef

    catalog = rerun_client.data.catalog
    done: set[str] = set()
    for item in inputs:
        if item.ref in done or item.tree is None:
            continue
        done.add(item.ref)
        v = real_client.data.version(item.ref)
        if v.tree != item.tree:
            continue  # changed since the plan was made: the comparison will say so
        if not shared_objects:
            src, dst = real_client.store.objects, rerun_client.store.objects
            for oid in [v.tree, *v.packs, *referenced_oids(real_client.data.files(item.ref))]:
                if not dst.has(oid):
                    dst.put_bytes(src.get_bytes(oid))
        catalog.create_version(
            v.name, tree=v.tree, packs=v.packs, files=v.files, size=v.size, user=v.created_by,
            message=v.message, source=v.source, kind=v.kind, commit=v.commit,
            transform=v.transform, stats=v.stats, quality=v.quality,
            parents=[DataRef.parse(p) for p in v.parents], aliases=v.aliases,
            version=v.version, created_at=v.created_at)


def execute(plan: Plan, code: Path, python: str, store: Path, originals: Sequence[str],
            timeout: float | None, log: Path) -> Execution:
    """Run the recorded command in ``code`` with ``python``, its runs going to ``store``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update({k: v for k, v in plan.env_vars.items() if k not in _DROPPED})
    env.update({"CAIRN_TRACKING_URI": str(store), "CAIRN_REPRODUCE_STORE": str(store),
                "CAIRN_REPRODUCE_OF": ",".join(originals), "CAIRN_CAPTURE_ENV": "1"})
    cwd = (code / plan.cwd).resolve()
    if not cwd.is_relative_to(code.resolve()):  # through a symbolic link of the code
        raise SetupFailed(f"the recorded working directory {plan.cwd!r} is outside the code")
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "wb") as out:
        # Its own process group, so that what the script starts (workers, a data loader's
        # processes) is stopped with it and nothing is left writing into the code's directory.
        proc = subprocess.Popen([python, *plan.command], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=os.name == "posix")
        try:
            code_ = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            code_ = None
        except BaseException:  # Ctrl-C: the rerun goes too
            _stop(proc)
            raise
        finally:
            _stop_group(proc)  # what the script left running after it exited
    lines = log.read_bytes().decode(errors="replace").splitlines()
    return Execution(code_, time.monotonic() - started, "\n".join(lines[-_TAIL_LINES:]))


def _stop(proc: subprocess.Popen) -> None:
    _stop_group(proc)
    proc.kill()
    proc.wait()


def _stop_group(proc: subprocess.Popen) -> None:
    if os.name != "posix":
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty: nothing left


# -- which run of the rerun is the original's ----------------------------------------------
def _order(run: Run) -> tuple[int, str]:
    return run.start_time, run.id


def _key(run: Run) -> tuple[str, tuple[tuple[str, str], ...]]:
    return run.experiment, tuple(sorted(run.params.items()))


def _all_runs(client: Any, experiments: Any = None, filter: str = "") -> list[Run]:
    out: list[Run] = []
    token = None
    while True:
        page = client.search_runs(experiments, filter, max_results=1000, page_token=token,
                                  lifecycle=None)
        out += page
        token = page.token
        if not token:
            return out


class Matcher:
    """Finds, among the runs a rerun made, the one that corresponds to each original.

    A run corresponds when it sits at the same place (top level, or under the rerun of the
    original's parent), in an experiment of the same name, with the same params; among
    several such runs, the one with the original's name if only one has it, else the one
    at the original's position among its process's runs of that kind (by start time).
    Runs started in the same millisecond cannot be ordered: then :meth:`candidates` lists the
    nearest others too, and one of them that reproduces the original is taken.
    """

    def __init__(self, real_client: Any, rerun_client: Any) -> None:
        self.real = real_client
        self.rerun = rerun_client
        runs = sorted(_all_runs(rerun_client), key=_order)
        self.by_parent: dict[str | None, list[Run]] = {}
        for r in runs:
            self.by_parent.setdefault(r.parent_id, []).append(r)
        self.made = len(runs)
        self._memo: dict[str, list[Run]] = {}
        self._tied: set[str] = set()  # originals whose siblings started in one millisecond

    def find(self, original: Run) -> Run | None:
        found = self.candidates(original)
        return found[0] if found else None

    def candidates(self, original: Run) -> list[Run]:
        """The rerun of ``original`` first, then the runs it cannot be told apart from
        (same place, params and start millisecond): the caller may take one of those that
        reproduces it."""
        if original.id not in self._memo:
            self._memo[original.id] = self._find(original)
        return self._memo[original.id]

    def _find(self, original: Run) -> list[Run]:
        if original.parent_id:
            parent = self.find(self.real.get_run(original.parent_id))
            if parent is None:
                return []
            pool = self.by_parent.get(parent.id, [])
        else:
            pool = self.by_parent.get(None, [])
        candidates = [r for r in pool if _key(r) == _key(original)]
        if not candidates:
            return []
        named = [r for r in candidates if r.name == original.name]
        if len(named) == 1:
            return [self.rerun.get_run(named[0].id)]
        position = self._position(original)
        if position >= len(candidates):
            return []
        if not self._ordered(original, candidates):
            # Order within a millisecond is unknown: the nearest others may be the one.
            near = sorted(range(len(candidates)), key=lambda i: abs(i - position))
            return [self.rerun.get_run(candidates[i].id) for i in near[:_MAX_CANDIDATES]]
        return [self.rerun.get_run(candidates[position].id)]

    def _ordered(self, original: Run, candidates: list[Run]) -> bool:
        """Whether start times alone order the candidates (and the original's siblings)."""
        starts = [r.start_time for r in candidates]
        return len(set(starts)) == len(starts) and original.id not in self._tied

    def _position(self, original: Run) -> int:
        """Where ``original`` is among the runs of its process with the same key."""
        process = (original.env.get("process") or {}) if isinstance(original.env, dict) else {}
        started, pid = process.get("started"), process.get("id")
        if not isinstance(started, int) or not pid:
            return 0
        parent = f"attributes.parent_id = '{original.parent_id}'" if original.parent_id \
            else "attributes.parent_id IS NULL"
        # The capture starts with the process's first run, a moment after that run's start.
        flt = (f"attributes.start_time >= {started - _CAPTURE_LAG_MS} AND "
               f"attributes.start_time <= {original.start_time} AND {parent}")
        same = [r for r in _all_runs(self.real, [original.experiment_id], flt)
                if _key(r) == _key(original)]
        mine = [r for r in sorted(same, key=_order)
                if r.id == original.id or
                (self.real.get_run(r.id).env.get("process") or {}).get("id") == pid]
        ids = [r.id for r in mine]
        starts = [r.start_time for r in mine]
        if len(set(starts)) != len(starts):
            self._tied.add(original.id)
        return ids.index(original.id) if original.id in ids else 0
