"""Suggesting the next semantic version from what changed against the parent version.

==========  ==============================================================
MAJOR       the signature or the architecture changed, or the model was
            trained on a different data set (by name)
MINOR       hyperparameters, a data set's version, or the code commit changed
PATCH       anything else (retrained weights, metadata, docs)
==========  ==============================================================

Every rule that fired is kept as a reason, so ``mv.bump_reasons`` explains the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import signature as sig


@dataclass(frozen=True)
class Facts:
    """What a version's bump is decided on; stored with every version."""

    flavor: str
    signature: Mapping[str, Any] | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    datasets: Sequence[Mapping[str, Any]] = ()
    code: str | None = None  # git commit


def _changes(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 4) -> str:
    keys = sorted(set(a) | set(b))
    diffs = [f"{k} {a.get(k, '-')} -> {b.get(k, '-')}" for k in keys if a.get(k) != b.get(k)]
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _architecture(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    if a == b:
        return None
    if a.get("class") != b.get("class"):
        return f"architecture changed: {a.get('class')} -> {b.get('class')}"
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            av, bv = a.get(key), b.get(key)
            if isinstance(av, Mapping) and isinstance(bv, Mapping):
                changed = sorted(k for k in set(av) | set(bv) if av.get(k) != bv.get(k))
                shown = ", ".join(changed[:3]) + ("..." if len(changed) > 3 else "")
                return f"architecture changed: {key} differs at {shown}"
            return f"architecture changed: {key}"
    return "architecture changed"


def _datasets(ds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {d["name"]: d.get("version") for d in ds}


def suggest(parent: Facts | None, new: Facts) -> tuple[str, list[str]]:
    """``(part, reasons)``: which part to bump and why; ``("major", [...])`` wins over minor."""
    if parent is None:
        return "initial", ["first version of this model"]
    major: list[str] = []
    minor: list[str] = []
    if parent.signature and new.signature:
        changes = sig.diff(parent.signature, new.signature)
        if changes:
            major.append("signature changed: " + "; ".join(changes))
    if parent.flavor != new.flavor:
        major.append(f"flavor changed: {parent.flavor} -> {new.flavor}")
    else:
        arch = _architecture(parent.fingerprint, new.fingerprint)
        if arch:
            major.append(arch)
    old_ds, new_ds = _datasets(parent.datasets), _datasets(new.datasets)
    if set(old_ds) != set(new_ds) and (old_ds or new_ds):
        major.append(f"training data set changed: {', '.join(sorted(old_ds)) or '-'} -> "
                     f"{', '.join(sorted(new_ds)) or '-'}")
    else:
        moved = {k: (old_ds[k], new_ds[k]) for k in new_ds if old_ds.get(k) != new_ds[k]}
        if moved:
            minor.append("data set version changed: " + ", ".join(
                f"{k} {a} -> {b}" for k, (a, b) in sorted(moved.items())))
    if dict(parent.params) != dict(new.params):
        minor.append("hyperparameters changed: " + _changes(parent.params, new.params))
    if parent.code and new.code and parent.code != new.code:
        minor.append(f"code changed: commit {parent.code[:12]} -> {new.code[:12]}")
    if major:
        return "major", major + minor
    if minor:
        return "minor", minor
    return "patch", ["no change in signature, architecture, data, hyperparameters or code"]
