"""`cairn predict`: score a file of rows with a registered model (batch, no server)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .main import emit_json, handle_errors, json_option

FORMATS = ("parquet", "csv", "jsonl")  # as cairn.serving.batchio, without importing pandas


def _require_pandas() -> None:
    from importlib.util import find_spec

    from ..errors import MissingDependency

    if find_spec("pandas") is None:  # pyarrow is checked once the formats are known
        raise MissingDependency("cairn predict needs pandas: pip install 'cairn[serve]'")


@click.command()
@click.argument("ref")
@click.argument("source", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write: the input's columns and the predictions.")
@click.option("--batch-rows", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Rows read, checked and predicted at a time.")
@click.option("--input-format", type=click.Choice(FORMATS),
              help="INPUT's format (default: from its extension).")
@click.option("--format", "output_format", type=click.Choice(FORMATS),
              help="OUTPUT's format (default: from its extension).")
@click.option("--keep-input/--no-keep-input", default=True, show_default=True,
              help="Write the input's columns beside the predictions.")
@click.option("--allow-nan", is_flag=True,
              help="Pass null/NaN in float inputs to the model instead of refusing them.")
@click.option("--no-fast-path", is_flag=True,
              help="Call the model's own predict (as cairn serve --no-fast-path).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: on a terminal, never with --json).")
@json_option
@click.pass_obj
@handle_errors
def predict(obj, ref: str, source: Path, output: Path, batch_rows: int,
            input_format: str | None, output_format: str | None, keep_input: bool,
            allow_nan: bool, no_fast_path: bool, progress: bool | None,
            as_json: bool) -> None:
    """Score every row of INPUT with a registered model and write OUTPUT.

    REF is models:/NAME@ALIAS or models:/NAME/VERSION.  INPUT and OUTPUT are Parquet, CSV
    or JSON lines (.parquet, .csv, .jsonl).  Each batch is checked against the version's
    signature as `cairn serve` checks a request; rows that do not fit stop the run with
    an error naming the batch and the field, and OUTPUT is then not written.  Predictions
    are the column `prediction`, or `prediction.<name>` / `prediction.0`, `prediction.1`
    ... for a model that predicts several values a row.

    \b
    Examples:
      cairn predict models:/fraud@production transactions.parquet -o scored.parquet
      cairn predict models:/fraud/1.2.0 rows.csv -o scored.jsonl --batch-rows 5000 --json
    """
    _require_pandas()
    from ..progress import bar
    from ..services import registry_for
    from ..serving.batch import predict_file

    obj.must_exist = True  # a mistyped --store must not create an empty store
    reg = registry_for(obj.client)
    show = progress if progress is not None else (not as_json and sys.stderr.isatty())
    with contextlib.ExitStack() as stack:
        def start(total: int | None, unit: str) -> Callable[[int], None]:
            return stack.enter_context(bar(f"scoring {source.name}", total, enabled=show,
                                           unit=unit))

        summary: dict[str, Any] = predict_file(
            reg, ref, source, output, batch_rows=batch_rows, input_format=input_format,
            output_format=output_format, allow_nan=allow_nan, keep_input=keep_input,
            progress=start, fast_path=not no_fast_path)
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"scored {summary['rows']:,} rows with {summary['model']}/"
                   f"{summary['version']} in {summary['seconds']:.2f}s: {summary['output']}")
