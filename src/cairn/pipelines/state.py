"""What the last runs left: the lock file, and content digests that trust unchanged stats.

``cairn.lock`` (JSON, next to the pipeline file) records for each stage the key it was
last brought up to date with, its command, the digests of its dependencies, its params
and its outputs (digest, data set version, tree), and for every file it hashed the
``stat`` it had (size, mtime_ns, ctime_ns, inode) with its SHA-256.  A re-run whose files
all stat the same hashes nothing; the lock is rewritten only when something changed.
It is local state: deleting it costs one re-hash of every dependency and output, and a
run-cache lookup per stage (hits restore nothing that is already there).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat as stat_mod
import time
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import Conflict, InvalidArgument, PermissionDenied

LOCK_NAME = "cairn.lock"
LOCK_FORMAT = "cairn.pipeline.lock/1"
RACY_NS = 100_000_000  # as the data hash cache: a file this fresh may change within one tick


class Digest(NamedTuple):
    """What a path holds: ``digest`` (SHA-256 of its canonical listing) and its kind."""

    digest: str
    kind: str  # "file" | "dir"
    files: int
    size: int


class State:
    """The lock file's content, loaded once per command; ``save`` writes it if it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, list[Any]] = {}
        self.stages: dict[str, dict[str, Any]] = {}
        self.pipeline: dict[str, Any] = {}  # the parsed pipeline (spec.load_pipeline's cache)
        self.dirty = False
        self.readonly = False  # a run of the pipeline holds it: save writes nothing

    @classmethod
    def load(cls, path: Path) -> "State":
        state = cls(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return state
        try:
            doc = json.loads(raw)
            if doc.get("format") != LOCK_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            # Entries of the wrong shape (a hand edit, a damaged file) are dropped one by one.
            state.files = {k: v for k, v in dict(doc.get("files") or {}).items()
                           if isinstance(v, list) and len(v) == 6}
            state.stages = {k: v for k, v in dict(doc.get("stages") or {}).items()
                            if isinstance(v, dict) and isinstance(v.get("outs") or {}, dict)
                            and all(isinstance(o, dict) for o in (v.get("outs") or {}).values())}
            state.pipeline = dict(doc.get("pipeline") or {})
        except (ValueError, AttributeError, TypeError) as exc:
            # Only a record of the last runs: starting over costs hashing, not results.
            state.files, state.stages, state.dirty = {}, {}, True
            import logging

            logging.getLogger("cairn.pipelines").warning(
                "ignoring the unreadable lock file %s (%s); stages are checked again", path, exc)
        return state

    def set_stage(self, name: str, record: dict[str, Any]) -> None:
        if self.stages.get(name) != record:
            self.stages[name] = record
            self.dirty = True

    def save(self) -> None:
        if not self.dirty or self.readonly:
            return
        doc = {"format": LOCK_FORMAT, "pipeline": self.pipeline,
               "stages": dict(sorted(self.stages.items())),
               "files": dict(sorted(self.files.items()))}
        data = json.dumps(doc, indent=1, default=str).encode()
        tmp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.dirty = False


class Hasher:
    """Digests of the pipeline's paths, trusting :class:`State`'s stats where they match."""

    def __init__(self, root: Path, state: State) -> None:
        self.root = root
        self.state = state
        self.started = time.time_ns()
        self.hashed = 0  # files read this command (the rest were trusted)

    def digest(self, rel: str) -> Digest | None:
        """The digest of ``rel`` (relative to the root); None when it does not exist.

        A file's digest is over its name-free listing, so moving a file keeps its digest
        only when its name inside the output stays: ``[["", size, sha256]]`` for a file,
        ``[[path inside, size, sha256], ...]`` sorted for a directory (symbolic links and
        special files inside are skipped, as data set versions do)."""
        path = os.path.join(self.root, rel)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise PermissionDenied(f"cannot read {rel}: permission denied", path=rel) from None
        if stat_mod.S_ISDIR(st.st_mode):
            files = _walk(path)
            kind = "dir"
        elif not stat_mod.S_ISREG(st.st_mode):  # a FIFO or a device: reading it could block
            raise InvalidArgument(f"{rel} is not a regular file or a directory", path=rel)
        else:
            files = [("", path, st)]
            kind = "file"
        listing = []
        size = 0
        known = self.state.files
        for inside, full, fst in files:
            key = f"{rel}/{inside}" if inside else rel
            row = known.get(key)
            sig = [fst.st_size, fst.st_mtime_ns, fst.st_ctime_ns, fst.st_ino]
            if row is not None and row[:4] == sig and not row[5]:
                digest = row[4]
            else:
                digest, sig = self._hash(full, sig)
                new = [*sig, digest, sig[1] >= self.started - RACY_NS]
                if row != new:
                    known[key] = new
                    self.state.dirty = True
            listing.append([inside, sig[0], digest])
            size += sig[0]
        text = json.dumps(listing, separators=(",", ":"), ensure_ascii=False)
        return Digest(hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest(),
                      kind, len(listing), size)

    def _hash(self, path: str, stat: list[int]) -> tuple[str, list[int]]:
        for _ in range(3):
            with open(path, "rb") as fh:
                before = os.fstat(fh.fileno())
                h = hashlib.sha256()
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
                after = os.fstat(fh.fileno())
            b = [before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino]
            a = [after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino]
            if a == b:
                self.hashed += 1
                return h.hexdigest(), a
        raise Conflict(f"{path} changed while it was being read (3 attempts)", path=path)


def _walk(top: str) -> list[tuple[str, str, os.stat_result]]:
    """Regular files under ``top``: (posix path inside, full path, stat), sorted."""
    out = []
    stack = [(top, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    out.append((f"{prefix}{entry.name}", entry.path,
                                entry.stat(follow_symlinks=False)))
    out.sort()
    return out


def stage_key(cmd: tuple[str, ...], wdir: str, deps: dict[str, str], params: dict[str, Any],
              outs: tuple[str, ...]) -> str:
    """The run-cache key of a stage: what decides its outputs.  Params are JSON values."""
    try:
        # JSON's own keys first: a YAML mapping may mix key types ({1: a, b: 2}), which
        # sort_keys cannot order; as JSON they are all text, as the lock keeps them.
        params = json.loads(json.dumps(params, default=_json_default))
        doc = {"format": "cairn.stage/1", "cmd": list(cmd), "wdir": wdir,
               "deps": dict(sorted(deps.items())), "params": params, "outs": sorted(outs)}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=_json_default)
    except ValueError as exc:
        raise InvalidArgument(f"params cannot be hashed: {exc}") from None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json_default(value: Any) -> Any:
    # YAML dates and the like: their text is what the user wrote.
    return str(value)
