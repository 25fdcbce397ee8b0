"""Batch scoring: every row of a file through a registered model, predictions written beside it.

::

    from cairn.serving.batch import predict_file

    summary = predict_file(registry, "models:/fraud@production", "transactions.parquet",
                           "scored.parquet")

The version is loaded as ``cairn serve`` loads it (:func:`~cairn.serving.holder.load_version`:
the record's digest, its signature and every file's digest are checked, so a damaged version
is refused before a row is read).  The input is read in chunks of ``batch_rows`` rows
(:mod:`~cairn.serving.batchio`), each fitted to the version's signature by the server's own
:func:`~cairn.serving.validate.conform`, predicted, and appended to a temporary file beside
the output, which is renamed over the output only once every row is scored: a bad row
leaves no half-written output behind.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..errors import CairnError, InvalidArgument, NotFound
from . import batchio
from .errors import RequestError
from .holder import Served, load_version
from .inputs import Parsed, pandas
from .validate import conform

# ``progress(total, unit)`` is called once, before the first chunk, with the input's size
# ("rows" or "bytes"; total None when unknown); it returns ``advance(n)``, called per chunk.
Progress = Callable[[int | None, str], Callable[[int], None]]
# What an MLflow pyfunc raises when the input does not fit its schema: the input's fault.
_INPUT_ERRORS = ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def predict_file(reg: Any, ref: str, source: str | os.PathLike[str],
                 output: str | os.PathLike[str], *, batch_rows: int = 10_000,
                 input_format: str | None = None, output_format: str | None = None,
                 allow_nan: bool = False, keep_input: bool = True,
                 progress: Progress | None = None, fast_path: bool = True) -> dict[str, Any]:
    """Score every row of ``source`` with ``ref`` (``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION``) and write ``output``: the input's columns (unless
    ``keep_input`` is False) and the predictions, as ``prediction`` (one value a row),
    ``prediction.<column>`` (a data frame) or ``prediction.0`` ... (a 2-D array).

    Formats (``parquet``, ``csv``, ``jsonl``) come from the file extensions unless given.
    ``fast_path`` False calls the model's own ``predict`` (see :mod:`.fastpath`).
    Returns a summary: ``model``, ``version``, ``rows``, ``batches``, ``seconds``,
    ``input``, ``output`` and the prediction ``columns``.

    Raises :class:`~cairn.errors.NotFound` (a reference or input that is not there),
    :class:`~cairn.errors.CorruptObject` (a damaged version),
    :class:`~cairn.errors.InvalidArgument` (rows that do not fit the signature, named with
    their batch) and :class:`~cairn.errors.CairnError` (the model failing inside predict);
    the output is then left as it was."""
    started = time.monotonic()
    source, output = Path(source), Path(output)
    if batch_rows < 1:
        raise InvalidArgument(f"batch_rows {batch_rows}: give at least 1")
    in_fmt = batchio.format_of(source, input_format, "--input-format")
    out_fmt = batchio.format_of(output, output_format, "--format")
    batchio.require({in_fmt, out_fmt})
    if not source.is_file():
        raise NotFound(f"no input file {source}", path=str(source))
    if not output.parent.is_dir():
        raise NotFound(f"no directory {output.parent} to write {output.name} into",
                       path=str(output.parent))
    text = ref.removeprefix("models:/")
    try:
        mv = reg.resolve(text)
    except NotFound as exc:
        raise NotFound(f"nothing to score with: {exc.message}", **exc.details) from None
    # A warm-up only matters to a server's latency.
    served = load_version(reg, mv, warm=False, fast=fast_path)

    tmp = _temp_beside(output)
    rows = batches = 0
    columns: list[str] = []
    try:
        src = batchio.open_source(source, in_fmt, batch_rows)
        try:
            advance = progress(src.total, src.unit) if progress else (lambda n: None)
            writer = batchio.Writer(tmp, out_fmt)
            try:
                for df, step in src.chunks:
                    if len(df) == 0:  # a header with no rows: nothing to fit or predict
                        advance(step)
                        continue
                    scored, columns = _score(served, df, rows, batches + 1, source,
                                             allow_nan, keep_input)
                    writer.write(scored)
                    rows += len(df)
                    batches += 1
                    advance(step)
            finally:
                writer.close()
        finally:
            src.close()
        if rows == 0:
            raise InvalidArgument(f"{source} holds no rows: nothing to score",
                                  path=str(source))
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no partial output, whatever stopped the run
        raise
    return {"model": mv.name, "version": mv.version, "rows": rows, "batches": batches,
            "seconds": round(time.monotonic() - started, 3), "input": str(source),
            "output": str(output), "columns": columns, "fast_path": served.fast_path}


def _temp_beside(output: Path) -> Path:
    """A fresh hidden file in the output's directory, so the final rename cannot cross file
    systems and a failed run leaves nothing that looks like the output."""
    # Named, not created (mkstemp would make it 0600): the writer creates it as any file.
    return output.parent / f".{output.name}.{uuid.uuid4().hex[:12]}.tmp"


def _score(served: Served, df: Any, start: int, batch: int, source: Path, allow_nan: bool,
           keep_input: bool) -> tuple[Any, list[str]]:
    """One chunk with its predictions, and the prediction columns' names."""
    pd = pandas()
    stop = start + len(df) - 1
    where = f"{source}, batch {batch} (rows {start} to {stop}, counted from 0)"
    try:
        inputs = conform(Parsed("batch", _model_columns(df, served.version.signature)),
                         served.version.signature, allow_nan=allow_nan)
    except RequestError as exc:
        raise InvalidArgument(f"{where} does not fit {served.version.uri}: "
                              f"{_file_rows(exc.message, start)}",
                              path=str(source), batch=batch, rows=[start, stop]) from None
    try:
        raw = served.predict(_writable(inputs))
    except Exception as exc:  # noqa: BLE001 (the model's own failure, named with its rows)
        message = getattr(exc, "message", None) or str(exc)
        if getattr(exc, "error_code", None) in _INPUT_ERRORS:  # an MLflow model's schema
            raise InvalidArgument(f"{served.version.uri} refused {where}: {message}",
                                  path=str(source), batch=batch, rows=[start, stop]) from None
        raise CairnError(f"{served.version.uri} failed inside predict on {where}: "
                         f"{type(exc).__name__}: {message}", batch=batch,
                         rows=[start, stop]) from exc
    predicted = prediction_columns(raw, len(df), where)
    kept = df.reset_index(drop=True) if keep_input else pd.DataFrame(index=range(len(df)))
    clash = [c for c in predicted if c in kept.columns]
    if clash:
        raise InvalidArgument(f"{source} already has column(s) {', '.join(map(repr, clash))}; "
                              "score it with --no-keep-input (predictions only), or rename "
                              "them", columns=clash)
    out = pd.concat([kept, pd.DataFrame(predicted)], axis=1)
    return out, list(predicted)


# Where conform names a row, it counts from the batch's first row ("in row 5", "NaN or null at
# [5, 1]"); the user knows rows by their place in the file.
_ROW = re.compile(r"(\bin row |\bat \[)(\d+)")


def _file_rows(message: str, start: int) -> str:
    return _ROW.sub(lambda m: f"{m.group(1)}{start + int(m.group(2))}", message)


def _model_columns(df: Any, signature: Any) -> Any:
    """What the model is given: for a model of named columns, those of its signature that
    the input has (a missing one is still named by conform); an input's other columns (ids,
    timestamps, labels) only pass through to the output.  Any other model gets every
    column, in the file's order."""
    schema = (signature or {}).get("inputs") or {}
    if schema.get("type") != "dataframe":
        return df
    names = {c["name"] for c in schema["columns"]}
    return df[[c for c in df.columns if str(c) in names]]


def _writable(inputs: Any) -> Any:
    """Arrays the model may write to: pandas' copy-on-write and Arrow's zero-copy reads hand
    out read-only arrays, which torch warns of (and a model that scales in place fails on)."""
    import numpy as np

    if isinstance(inputs, np.ndarray) and not inputs.flags.writeable:
        return inputs.copy()
    if isinstance(inputs, dict):
        return {k: _writable(v) for k, v in inputs.items()}
    return inputs


def prediction_columns(raw: Any, rows: int, where: str) -> dict[str, Any]:
    """``raw`` as named columns of ``rows`` values: ``prediction`` for one value a row,
    ``prediction.<name>`` for a data frame's (or a dict's) columns, ``prediction.<i>`` for
    the columns of a 2-D array."""
    import numpy as np

    pd = pandas()
    if isinstance(raw, pd.Series):
        cols = {"prediction": raw.to_numpy()}
    elif isinstance(raw, pd.DataFrame):
        cols = {f"prediction.{c}": raw[c].to_numpy() for c in raw.columns}
    elif isinstance(raw, dict):
        cols = {f"prediction.{k}": np.asarray(v) for k, v in raw.items()}
    else:
        if hasattr(raw, "detach"):  # a torch tensor a model returned itself
            raw = raw.detach().cpu().numpy()
        try:
            arr = np.asarray(raw)
        except ValueError as exc:  # ragged lists
            raise CairnError(f"the predictions for {where} are not a table: {exc}") from None
        if arr.ndim == 2:
            cols = {f"prediction.{i}": arr[:, i] for i in range(arr.shape[1])}
        else:
            cols = {"prediction": arr}
    for name, values in cols.items():
        shape = list(np.shape(values))
        if len(shape) != 1 or shape[0] != rows:
            raise CairnError(f"the model's {name} for {where} has shape {shape}; a batch of "
                             f"{rows} rows needs one value a row (or a 2-D array, one column "
                             "a value)", shape=shape)
    return cols
