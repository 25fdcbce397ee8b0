"""Bringing a pipeline up to date: plan each stage, restore what the cache has, run the rest.

For each stage, in topological order once everything it reads is done:

1. its key (:func:`~cairn.pipelines.state.stage_key`) from its command, the digests of
   its dependencies and its params; digests trust unchanged stats (:class:`Hasher`);
2. the lock's key for the stage is the same and its outputs are as recorded: nothing to
   do ("unchanged"); the same key but an output deleted or edited: it is restored from
   the object store ("restored");
3. a key the lock does not have: the run cache (:mod:`.cache`) is asked; a hit restores
   the outputs ("cached"), so switching branches back and forth runs nothing;
4. otherwise the command runs, as a run of its own, in a worker thread (``jobs`` at
   once); after it exits 0 its outputs are recorded as data set versions derived from
   its inputs, its metrics files logged, and only then is the key cached.

A failing stage's run is FAILED and its downstream stages are skipped; independent
stages go on.  On Ctrl-C (KeyboardInterrupt) the running commands' process groups are
stopped, their runs marked KILLED, and nothing of theirs is cached; what finished before
stays recorded.  Store writes happen on the calling thread only.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import CairnError, InvalidArgument
from . import cache as C
from .spec import Pipeline, Stage
from .state import LOCK_NAME, Digest, Hasher, State, stage_key

if TYPE_CHECKING:
    import subprocess
    from concurrent.futures import Future

Event = Callable[["StageResult"], None]
DONE_OK = {"ran", "unchanged", "restored", "cached"}
_KILL_GRACE_S = 5.0
_LOG_TAIL = 2000


class StageResult:
    """What happened to one stage (or, for a dry run and ``status``, what would)."""

    __slots__ = ("name", "status", "key", "run_id", "seconds", "reason", "cached")

    def __init__(self, name: str, status: str, key: str | None = None,
                 run_id: str | None = None, seconds: float = 0.0, reason: str = "",
                 cached: bool = False) -> None:
        self.name = name
        self.status = status  # ran failed killed skipped unchanged restored cached | stale
        self.key = key
        self.run_id = run_id  # the run that made the outputs (this one, or the cached one)
        self.seconds = seconds
        self.reason = reason  # why it ran or is stale; why it failed
        self.cached = cached  # dry run: the run cache has this key (it would be restored)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return f"StageResult({self.name!r}, {self.status!r}, reason={self.reason!r})"


class PipelineResult:
    """Every stage's :class:`StageResult`, in the order they ended."""

    __slots__ = ("file", "stages", "hashed")

    def __init__(self, file: str) -> None:
        self.file = file
        self.stages: list[StageResult] = []
        self.hashed = 0  # files read to compute digests (the rest were trusted by their stat)

    @property
    def ok(self) -> bool:
        return all(s.status in DONE_OK or s.status == "stale" for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "hashed": self.hashed,
                "stages": [s.to_dict() for s in self.stages]}


def check_jobs(jobs: Any) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise InvalidArgument(f"jobs must be an integer from 1 to 256, got {jobs!r}")
    return jobs


class Runner:
    """One ``run`` (or dry run) of a pipeline against one client's store."""

    def __init__(self, client: Any, pipeline: Pipeline, *, jobs: int = 1,
                 experiment: str = "pipeline", on_event: Event | None = None,
                 state: State | None = None) -> None:
        self.client = client
        self.p = pipeline
        self.jobs = check_jobs(jobs)
        if not isinstance(experiment, str) or not experiment.strip():
            raise InvalidArgument(f"experiment must be a non-empty name, got {experiment!r}")
        self.experiment = experiment
        self.on_event = on_event or (lambda r: None)
        self.state = state if state is not None else State.load(pipeline.root / LOCK_NAME)
        self.hasher = Hasher(pipeline.root, self.state)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._dep_versions: dict[str, str | None] = {}  # source dependency -> "name@N"
        self._exp_id: str | None = None
        self._ds: Any = None
        self._git_commit: Any = ...  # not read yet

    # -- planning -------------------------------------------------------------------
    def _digests(self, paths: tuple[str, ...]) -> tuple[dict[str, Digest], list[str]]:
        found, missing = {}, []
        for rel in paths:
            d = self.hasher.digest(rel)
            if d is None:
                missing.append(rel)
            else:
                found[rel] = d
        return found, missing

    def _key(self, stage: Stage, deps: dict[str, Digest]) -> str:
        return stage_key(stage.cmd, stage.wdir, {k: v.digest for k, v in deps.items()},
                         dict(stage.params), stage.outs)

    def _changed_outs(self, stage: Stage, record: dict[str, Any]) -> list[str]:
        bad = []
        for rel in stage.outs:
            want = (record.get("outs") or {}).get(rel)
            try:
                cur = self.hasher.digest(rel)
            except CairnError:  # a FIFO, unreadable: not what was recorded; a restore
                cur = None  # replaces it, or the command runs (and fails if it stays so)
            if want is None or cur is None or cur.digest != want.get("digest"):
                bad.append(rel)
        return bad

    def _reason(self, stage: Stage, deps: dict[str, Digest], rec: dict[str, Any] | None) -> str:
        if rec is None:
            return "never run"
        params = _jsonable(dict(stage.params))
        for k, v in params.items():
            if k not in (rec.get("params") or {}):
                return f"new param {k}"
            if rec["params"][k] != v:
                return f"param {k} changed ({_short(rec['params'][k])} -> {_short(v)})"
        if list(stage.cmd) != rec.get("cmd"):
            return "command changed"
        old = rec.get("deps") or {}
        for rel, d in deps.items():
            if rel not in old:
                return f"new dependency {rel}"
            if old[rel] != d.digest:
                return f"dependency {rel} changed"
        for rel in old:
            if rel not in deps:
                return f"dependency {rel} removed"
        if sorted(stage.outs) != sorted(rec.get("outs") or {}):
            return "outputs changed"
        if stage.wdir != rec.get("wdir", "."):
            return "wdir changed"
        return "params changed"

    # -- the run ---------------------------------------------------------------------
    def run(self, targets: list[str], *, dry_run: bool = False, force: bool = False) -> PipelineResult:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        result = PipelineResult(str(self.p.path))
        results: dict[str, StageResult] = {}
        selected = set(targets)
        pending = list(targets)
        running: dict[Future[tuple[int, float, str]], tuple[Stage, StageResult, dict]] = {}
        # Commands that ended, recorded after the next stages are started: their bookkeeping
        # (hashing, versions, runs) then overlaps with those commands.
        ended: list[tuple[Stage, StageResult, dict, tuple[int, float, str]]] = []
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cairn-stage")

        def emit(r: StageResult) -> None:
            result.stages.append(r)
            self.on_event(r)

        try:
            while pending or running or ended:
                progressed = False
                for name in list(pending):
                    if len(running) >= self.jobs:
                        break
                    ups = [u for u in self.p.upstream[name] if u in selected]
                    if any(u not in results or results[u].status == "running" for u in ups):
                        continue
                    pending.remove(name)
                    progressed = True
                    failed_up = [u for u in ups if results[u].status not in DONE_OK | {"stale"}]
                    stale_up = [u for u in ups if results[u].status == "stale"]
                    stage = self.p.stages[name]
                    if failed_up:
                        r = StageResult(name, "skipped", reason=f"upstream stage {failed_up[0]} "
                                        f"{results[failed_up[0]].status}")
                    elif dry_run and stale_up:
                        r = StageResult(name, "stale", reason=f"upstream stage {stale_up[0]} is "
                                        "stale")
                    else:
                        r, ctx = self._plan(stage, dry_run=dry_run, force=force)
                        if r.status == "run":
                            r.status = "running"
                            results[name] = r
                            self._start(stage, r, ctx)
                            running[pool.submit(self._execute, stage)] = (stage, r, ctx)
                            continue
                    results[name] = r
                    emit(r)
                while ended:
                    stage, r, ctx, (rc, seconds, log) = ended[0]
                    self._finish(stage, r, ctx, rc, seconds, log)
                    ended.pop(0)
                    emit(r)
                    progressed = True
                if running and (not progressed or len(running) >= self.jobs or not pending):
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in done:
                        stage, r, ctx = running.pop(fut)
                        ended.append((stage, r, ctx, fut.result()))
        except BaseException:
            self._stopping = True
            self._kill_all()
            pool.shutdown(wait=True, cancel_futures=True)
            logs = [out[2] for *_, out in ended]
            logs += [f.result()[2] for f in running if f.done() and not f.cancelled()
                     and f.exception() is None]
            for log in logs:  # the commands' output files: _finish does not see these stages
                try:
                    os.unlink(log)
                except OSError:
                    pass
            stopped = [r for _, r, _ in running.values()] + [r for _, r, _, _ in ended]
            for r in stopped:
                r.status, r.reason = "killed", "interrupted"
                self._end_run(r, "KILLED")
                emit(r)
            self.state.save()
            raise
        pool.shutdown(wait=True)
        if self.state.dirty:
            self._prune()
        self.state.save()
        result.hashed = self.hasher.hashed
        return result

    def _plan(self, stage: Stage, *, dry_run: bool, force: bool) -> tuple[StageResult, dict]:
        r = StageResult(stage.name, "run")
        escaping = self._outside(stage.outs)
        if escaping:
            r.status = "stale" if dry_run else "failed"
            r.reason = f"output {escaping[0]} leads outside the project (a symbolic link)"
            return r, {}
        try:
            deps, missing = self._digests(stage.deps)
        except CairnError as exc:  # unreadable, a FIFO, changing while read: this stage only
            r.status = "stale" if dry_run else "failed"
            r.reason = f"dependency: {exc.message}"
            return r, {}
        if missing:
            r.status = "stale" if dry_run else "failed"
            r.reason = f"dependency {missing[0]} does not exist"
            return r, {}
        key = r.key = self._key(stage, deps)
        rec = self.state.stages.get(stage.name)
        ctx: dict[str, Any] = {"deps": deps, "key": key}
        if rec is not None and rec.get("key") == key and not force:
            bad = self._changed_outs(stage, rec)
            r.run_id = rec.get("run_id")
            if not bad:
                r.status = "unchanged"
                return r, ctx
            if dry_run:
                r.status, r.cached = "stale", True
                r.reason = f"output {bad[0]} is missing or changed"
                return r, ctx
            if self._restore(stage, rec, bad):
                r.status, r.reason = "restored", f"output {bad[0]} was missing or changed"
                return r, ctx
        reason = self._reason(stage, deps, rec) if not force else "forced"
        hit = None if force else self._lookup(key)
        if dry_run:
            r.status, r.reason, r.cached = "stale", reason, hit is not None
            if hit is not None:
                r.run_id = hit[0]
            return r, ctx
        if hit is not None:
            run_id, record = hit
            bad = self._changed_outs(stage, record)
            if self._restore(stage, record, bad):
                r.status, r.run_id, r.reason = "cached", run_id, reason
                self._lock_stage(stage, deps, key, record.get("outs") or {}, run_id)
                return r, ctx
        r.reason = reason
        return r, ctx

    def _prune(self) -> None:
        """Drop the lock's stat rows of paths that no stage of the pipeline reads or writes
        any more, so the lock does not grow with every path it ever saw.  (Stage records
        stay: cairn.yaml and dvc.yaml side by side share the lock.)"""
        from .spec import _ancestors

        roots = {p for s in self.p.stages.values() for p in (*s.deps, *s.outs)}
        files = self.state.files
        for k in [k for k in files if k not in roots
                  and not any(a in roots for a in _ancestors(k))]:
            del files[k]

    def _outside(self, outs: tuple[str, ...]) -> list[str]:
        """The outputs that a symbolic link (the output, or a directory above it) takes out
        of the project: restoring one would write outside it, recording one would copy
        what is outside into the store."""
        # The project's root is resolved once per run; each output every time, since an
        # earlier stage's command may have made a directory above it a link.
        root = self.__dict__.get("_real_root")
        if root is None:
            root = self.__dict__["_real_root"] = os.path.realpath(self.p.root)
        bad = []
        for rel in outs:
            real = os.path.realpath(os.path.join(root, rel))
            if not real.startswith(root + os.sep):
                bad.append(rel)
        return bad

    def _lookup(self, key: str) -> tuple[str, dict[str, Any]] | None:
        if self.client is None:  # status without a store: no run cache to ask
            return None
        try:
            return C.lookup(self.client, key)
        except CairnError:
            raise
        except Exception:  # noqa: BLE001 - a store that cannot search runs has no run cache
            return None

    def _restore(self, stage: Stage, record: dict[str, Any], bad: list[str]) -> bool:
        if self.client is None:
            return False
        outs = record.get("outs") or {}
        try:
            for rel in bad:
                C.restore(self._datasets(), self.p.root, rel, outs[rel])
        except (CairnError, KeyError, OSError):
            return False  # the version or its objects are gone (or the disk is full):
            # the stage runs again
        for rel in bad:  # their digests must now be the recorded ones
            d = self.hasher.digest(rel)
            if d is None or d.digest != outs[rel].get("digest"):
                return False
        return True

    # -- executing -------------------------------------------------------------------
    def _start(self, stage: Stage, r: StageResult, ctx: dict[str, Any]) -> None:
        if self._exp_id is None:
            self._exp_id = self.client.get_or_create_experiment(self.experiment).id
        params = {_param_name(k): _param_text(v) for k, v in stage.params.items()}
        run = self.client.create_run(self._exp_id, name=stage.name, params=params, tags={
            C.STAGE_TAG: stage.name, C.KEY_TAG: ctx["key"], C.FILE_TAG: self.p.path.name,
            "cairn.pipeline.cmd": _param_text(" && ".join(stage.cmd))})
        r.run_id = run.id
        ctx["t0"] = time.monotonic()

    def _execute(self, stage: Stage) -> tuple[int, float, str]:
        """Run the stage's command (a worker thread); its output goes to a log file."""
        import subprocess
        import tempfile

        t0 = time.monotonic()
        fd, log = tempfile.mkstemp(prefix=f"cairn-{stage.name[:40]}-", suffix=".log")
        cwd = self.p.root / stage.wdir
        try:
            for cmd in stage.cmd:
                with self._lock:
                    if self._stopping:
                        return -signal.SIGINT, time.monotonic() - t0, log
                    proc = subprocess.Popen(cmd, shell=True, cwd=cwd, stdout=fd, stderr=fd,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                    self._procs[stage.name] = proc
                rc = proc.wait()
                with self._lock:
                    self._procs.pop(stage.name, None)
                if rc != 0:
                    return rc, time.monotonic() - t0, log
            return 0, time.monotonic() - t0, log
        finally:
            os.close(fd)

    def _kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
            deadline = time.monotonic() + _KILL_GRACE_S
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                time.sleep(0.02)
            if all(p.poll() is not None for p in procs):
                break

    def _finish(self, stage: Stage, r: StageResult, ctx: dict[str, Any], rc: int,
                seconds: float, log: str) -> None:
        r.seconds = round(seconds, 3)
        try:
            if rc != 0:
                r.status = "failed"
                r.reason = _exit_text(rc) + _tail(log)
                self._end_run(r, "FAILED", error=r.reason)
                return
            missing = [o for o in stage.outs if not os.path.lexists(self.p.root / o)]
            if missing:
                r.status = "failed"
                r.reason = f"the command did not write its output {missing[0]}"
                self._end_run(r, "FAILED", error=r.reason)
                return
            escaping = self._outside(stage.outs)
            if escaping:  # the command made it a link: not recorded, so nothing outside
                r.status = "failed"  # the project is read into the store
                r.reason = f"output {escaping[0]} leads outside the project (a symbolic link)"
                self._end_run(r, "FAILED", error=r.reason)
                return
            try:
                outs = self._record_outputs(stage, r, ctx)
            except (CairnError, OSError) as exc:  # OSError: a full disk, a file unreadable
                msg = exc.message if isinstance(exc, CairnError) else str(exc)
                r.status, r.reason = "failed", f"recording outputs failed: {msg}"
                self._end_run(r, "FAILED", error=r.reason)
                return
            r.status = "ran"
            self._lock_stage(stage, ctx["deps"], ctx["key"], outs, r.run_id)
        finally:
            try:
                os.unlink(log)
            except OSError:
                pass

    def _record_outputs(self, stage: Stage, r: StageResult, ctx: dict[str, Any]) -> dict:
        """Outputs as data set versions derived from the inputs' versions; metrics logged;
        then the record that makes the key a cache hit, and the run FINISHED."""
        assert r.run_id is not None
        ds = self._datasets()
        parents = [self._dep_version(stage, dep) for dep in stage.deps]
        outs: dict[str, Any] = {}
        for rel in stage.outs:
            d = self.hasher.digest(rel)
            if d is None:
                raise InvalidArgument(f"output {rel} disappeared")
            v = ds.derive([p for p in parents if p], self.p.root / rel, dataset_name(rel),
                          transform={"pipeline": self.p.path.name, "stage": stage.name},
                          message=f"stage {stage.name}", run_id=r.run_id,
                          commit=self._commit())
            outs[rel] = {"digest": d.digest, "kind": d.kind, "tree": v.tree,
                         "dataset": v.name, "version": v.version}
        metrics = []
        now = int(time.time() * 1000)
        for rel in stage.metrics:
            for k, v in read_metrics(self.p.root / rel).items():
                metrics.append((k, v, 0, now))
        oid = C.save_record(self.client, {"key": ctx["key"], "stage": stage.name, "outs": outs})
        self.client.log_batch(r.run_id, metrics=metrics, tags={C.RECORD_TAG: oid})
        self.client.set_terminated(r.run_id, "FINISHED")
        return outs

    def _dep_version(self, stage: Stage, dep: str) -> str | None:
        """The data set version a dependency is: an upstream output's, or a source file's.
        Only the stages upstream of this one in this pipeline count: the lock may still
        hold a removed stage that once wrote what is now a source file."""
        for up in self.p.upstream.get(stage.name, ()):
            rec = self.state.stages.get(up) or {}
            for rel, out in (rec.get("outs") or {}).items():
                if (dep == rel or dep.startswith(rel + "/")) and out.get("dataset"):
                    return f"{out['dataset']}@{out['version']}"
        if dep not in self._dep_versions:
            try:
                v = self._datasets().add(self.p.root / dep, dataset_name(dep),
                                         message=f"dependency of {self.p.path.name}")
                self._dep_versions[dep] = v.ref
            except CairnError as exc:
                # An empty directory cannot be a version: the stage is recorded without it
                # in its lineage (its key still has the dependency's digest).
                import logging

                logging.getLogger("cairn.pipelines").warning(
                    "dependency %s is not recorded as a data set version: %s", dep, exc.message)
                self._dep_versions[dep] = None
        return self._dep_versions[dep]

    def _commit(self) -> str | None:
        """The project's git commit, read once (None outside git: derive finds out itself)."""
        if self._git_commit is ...:
            import subprocess

            try:
                out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.p.root,
                                     capture_output=True, text=True, timeout=30)
                self._git_commit = out.stdout.strip() if out.returncode == 0 else None
            except (OSError, subprocess.SubprocessError):
                self._git_commit = None
        return self._git_commit

    def _datasets(self) -> Any:
        if self._ds is None:
            from ..data import Datasets

            self._ds = Datasets(self.client)
        return self._ds

    def _end_run(self, r: StageResult, status: str, error: str = "") -> None:
        if r.run_id is None:
            return
        try:
            if error:
                self.client.set_tag(r.run_id, "cairn.pipeline.error", error[-_LOG_TAIL:])
            self.client.set_terminated(r.run_id, status)
        except CairnError:
            pass  # the run stays RUNNING; the stage's own result says what happened

    def _lock_stage(self, stage: Stage, deps: dict[str, Digest], key: str,
                    outs: dict[str, Any], run_id: str | None) -> None:
        self.state.set_stage(stage.name, {
            "key": key, "cmd": list(stage.cmd), "wdir": stage.wdir,
            "deps": {k: v.digest for k, v in deps.items()},
            "params": _jsonable(dict(stage.params)), "outs": outs, "run_id": run_id})


def dataset_name(rel: str) -> str:
    """The data set a pipeline path is versioned as: the path, made a valid name."""
    out = "".join(c if c.isascii() and (c.isalnum() or c in "._-/") else "_" for c in rel)
    out = "/".join(part for part in out.split("/") if part) or "out"
    if not out[0].isalnum():
        out = "p" + out
    return out[:256]


def read_metrics(path: Path) -> dict[str, float]:
    """The numbers of a metrics file (JSON or YAML), nested keys joined with '.'."""
    from .spec import check_expanded_size

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # a directory, unreadable: the stage fails, the pipeline goes on
        raise InvalidArgument(f"metrics file {path.name} cannot be read: "
                              f"{exc.strerror or exc}", path=str(path)) from None
    try:
        doc = json.loads(text)
    except ValueError:
        from .spec import yaml_module

        yaml = yaml_module()
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"metrics file {path.name} is neither JSON nor YAML: "
                                  f"{exc}") from None
        check_expanded_size(doc, path)
    out: dict[str, float] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and prefix:
            out[prefix] = float(node)

    walk(doc, "")
    return out


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def _param_name(key: str) -> str:
    file, _, name = key.partition(":")
    return name if file == "params.yaml" else key


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 6000 else text[:5990] + "..."


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _exit_text(rc: int) -> str:
    if rc < 0:  # the shell itself was killed
        return f"command was killed by {_signal_name(-rc)}"
    if 128 < rc < 128 + 65:  # how a shell reports a child killed by a signal
        return f"command exited with {rc} (killed by {_signal_name(rc - 128)}?)"
    return f"command exited with {rc}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(log: str) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _LOG_TAIL))
            text = f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
    return f":\n{text}" if text else ""
