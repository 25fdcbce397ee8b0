"""Deterministic splits: membership is a pure function of (content, seed).

Every item (a table row, or a file of a directory data set) gets a key from its
content: the row's values, or the file's digest.  Items are ordered by
``sha256(seed, key)`` (ties by position) and cut into exact counts per split, by
largest remainder; with ``stratify`` each stratum is cut separately, so every
split keeps the label proportions.  Running a split twice gives the same files,
so the same digests; identical rows or files always land in the same split, so a
duplicate cannot leak from train into test.

CSV and TSV rows are copied byte for byte (the header line first); Parquet rows
are taken with pyarrow and written again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from typing import Any, Iterator, Mapping, Sequence

from ..entities import FileEntry
from ..errors import InvalidArgument
from .entities import check_alias


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise InvalidArgument("fractions must be a mapping like {'train': 0.8, 'test': 0.2}")
    out: dict[str, float] = {}
    for name, f in fractions.items():
        check_alias(name)
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise InvalidArgument(f"fraction of split {name!r} must be in (0, 1], got {f!r}")
        out[name] = float(f)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise InvalidArgument(f"split fractions must add up to 1, got {total:g}")
    return out


def assign(keys: Sequence[bytes], fractions: Mapping[str, float], seed: int,
           strata: Sequence[str] | None = None) -> list[str]:
    """The split of each item, given its content key and (optionally) its stratum."""
    names = list(fractions)
    salt = f"cairn.split/1:{seed}:".encode()
    order_key = [hashlib.sha256(salt + k).digest() for k in keys]
    groups: dict[str, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(strata[i] if strata is not None else "", []).append(i)
    out = [""] * len(keys)
    for _, members in sorted(groups.items()):
        members.sort(key=lambda i: (order_key[i], i))
        counts = _counts(len(members), [fractions[n] for n in names])
        pos = 0
        for name, count in zip(names, counts):
            for i in members[pos:pos + count]:
                out[i] = name
            pos += count
    return out


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Exact counts adding up to n, by largest remainder (ties: earlier split first)."""
    raw = [n * f for f in fractions]
    counts = [math.floor(x) for x in raw]
    rest = n - sum(counts)
    order = sorted(range(len(raw)), key=lambda j: (-(raw[j] - counts[j]), j))
    for j in order[:rest]:
        counts[j] += 1
    return counts


# -- files -----------------------------------------------------------------------------

def split_files(entries: Sequence[FileEntry], fractions: Mapping[str, float], seed: int,
                stratify: str | None) -> dict[str, list[FileEntry]]:
    """Split the files of a directory data set; ``stratify="dir"`` keeps each folder's share."""
    if stratify not in (None, "dir"):
        raise InvalidArgument("a directory data set is split by files; stratify must be None "
                              "or 'dir' (the parent folder is the label)")
    keys = [e.digest.encode() for e in entries]
    strata = [e.path.rsplit("/", 1)[0] if "/" in e.path else "" for e in entries] \
        if stratify else None
    labels = assign(keys, fractions, seed, strata)
    out: dict[str, list[FileEntry]] = {n: [] for n in fractions}
    for e, label in zip(entries, labels):
        out[label].append(e)
    return out


# -- rows ------------------------------------------------------------------------------

def split_table(data: bytes, fmt: str, fractions: Mapping[str, float], seed: int,
                stratify: str | None, path: str = "") -> dict[str, bytes]:
    if fmt in ("csv", "tsv"):
        return _split_csv(data, "\t" if fmt == "tsv" else ",", fractions, seed, stratify, path)
    from .stats import read_table, write_table

    table = read_table(data, fmt, path)
    rows = table.to_pylist()
    keys = [json.dumps(r, sort_keys=True, default=str).encode() for r in rows]
    strata = None
    if stratify:
        if stratify not in table.column_names:
            raise InvalidArgument(f"{path}: no column {stratify!r} to stratify by")
        strata = [json.dumps(r[stratify], default=str) for r in rows]
    labels = assign(keys, fractions, seed, strata)
    _check_rows(labels, fractions, path)
    out = {}
    for name in fractions:
        idx = [i for i, label in enumerate(labels) if label == name]
        out[name] = write_table(table.take(idx), fmt)
    return out


def _split_csv(data: bytes, delimiter: str, fractions: Mapping[str, float], seed: int,
               stratify: str | None, path: str) -> dict[str, bytes]:
    text = data.decode("utf-8", errors="surrogateescape")
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidArgument(f"{path}: empty file, nothing to split") from None
    except csv.Error as exc:
        raise InvalidArgument(f"{path}: cannot read as CSV: {exc}") from None
    header_raw = "".join(consumed)
    newline = "\r\n" if header_raw.endswith("\r\n") else "\n"
    if not header_raw.endswith(("\n", "\r")):
        header_raw += newline
    consumed.clear()
    col = None
    if stratify:
        if stratify not in header:
            raise InvalidArgument(f"{path}: no column {stratify!r} to stratify by")
        col = header.index(stratify)
    raws: list[str] = []
    keys: list[bytes] = []
    strata: list[str] | None = [] if col is not None else None
    try:
        for rec in reader:
            raw = "".join(consumed)
            consumed.clear()
            if not rec:
                continue  # blank line
            if not raw.endswith(("\n", "\r")):
                raw += newline
            raws.append(raw)
            keys.append(json.dumps(rec).encode())
            if strata is not None and col is not None:  # strata is a list when col is set
                strata.append(rec[col] if col < len(rec) else "")
    except csv.Error as exc:
        raise InvalidArgument(f"{path}: cannot read as CSV: {exc}") from None
    labels = assign(keys, fractions, seed, strata)
    _check_rows(labels, fractions, path)
    out = {}
    for name in fractions:
        body = "".join(r for r, label in zip(raws, labels) if label == name)
        out[name] = (header_raw + body).encode("utf-8", errors="surrogateescape")
    return out


def _check_rows(labels: Sequence[str], fractions: Mapping[str, float], path: str) -> None:
    """Refuse a split that gives some part no rows, as a split by files refuses an empty
    part: a table of only its header is no data set to train or test on."""
    present = set(labels)
    for name in fractions:
        if name not in present:
            raise InvalidArgument(f"split {name!r} of {path} would be empty ({len(labels)} "
                                  "rows in all); use larger fractions or more data")


def describe(fractions: Mapping[str, float], seed: int, stratify: str | None, by: str,
             split: str) -> dict[str, Any]:
    return {"split": split, "fractions": dict(fractions), "seed": seed, "stratify": stratify,
            "by": by}
