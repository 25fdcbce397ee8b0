"""The code of a recorded run, rebuilt in a temporary directory.

At a commit: ``git worktree add --detach`` of the commit, then the stored patch applied
(``git apply --binary``) and the stored untracked files written.  Without git: the stored
snapshot's files.  The worktree is removed on the way out, on failure and Ctrl-C too; the
repository's own working tree is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

from .plan import Plan

_GIT_TIMEOUT_S = 300


class SetupFailed(Exception):
    """Rebuilding the code or the environment failed; the message says why (a verdict)."""


def _git(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise SetupFailed("git is not installed here, and the code is at a commit")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run([git, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SetupFailed(f"git {args[2] if args[:1] == ('-C',) else args[0]} did not finish "
                          f"within {_GIT_TIMEOUT_S} s") from None


def _write(dest: Path, rel: str, data: bytes) -> None:
    """Write a stored source file; a path that leaves ``dest`` (``..``, absolute, through a
    symbolic link) or names git's own files (``.git``) is refused: the store may be
    someone else's."""
    parts = rel.replace("\\", "/").split("/")
    if not rel or any(p.lower() == ".git" for p in parts):
        raise SetupFailed(f"stored source path {rel!r} is not a file of the code")
    target = (dest / rel).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise SetupFailed(f"stored source path {rel!r} points outside the code")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise SetupFailed(f"stored source file {rel!r} could not be written: "
                          f"{exc.strerror or exc}") from None


def _get(objects: Any, oid: str, what: str) -> bytes:
    from ..errors import CairnError

    try:
        return objects.get_bytes(oid)
    except CairnError as exc:  # gone or corrupt since the plan was made
        raise SetupFailed(f"{what} (object {oid[:12]}) cannot be read: {exc.message}") from None


@contextlib.contextmanager
def code(plan: Plan, objects: Any, tmp: Path) -> Iterator[Path]:
    """Yield the directory holding the run's code as it was when the run was made."""
    dest = tmp / "code"
    if plan.commit is None:
        dest.mkdir()
        for rel, oid in plan.snapshot.items():
            _write(dest, rel, _get(objects, oid, f"source file {rel}"))
        yield dest
        return
    assert plan.repo is not None
    added = _git("-C", plan.repo, "worktree", "add", "--detach", "--quiet", str(dest), plan.commit)
    if added.returncode != 0:
        raise SetupFailed(f"commit {plan.commit} could not be checked out from {plan.repo}: "
                          f"{added.stderr.strip()[-300:]}")
    try:
        if plan.patch:
            patch = tmp / "uncommitted.patch"
            patch.write_bytes(_get(objects, plan.patch, "the patch"))
            applied = _git("apply", "--binary", "--whitespace=nowarn", str(patch), cwd=str(dest))
            if applied.returncode != 0:
                raise SetupFailed(f"the stored patch does not apply to {plan.commit[:12]}: "
                                  f"{applied.stderr.strip()[-300:]}")
        for rel, oid in plan.untracked.items():
            _write(dest, rel, _get(objects, oid, f"untracked file {rel}"))
        yield dest
    finally:
        with contextlib.suppress(SetupFailed):
            _git("-C", plan.repo, "worktree", "remove", "--force", str(dest))
        shutil.rmtree(dest, ignore_errors=True)
        with contextlib.suppress(SetupFailed):
            _git("-C", plan.repo, "worktree", "prune")
