"""`cairn predictions`: what `cairn serve --log-sample` logged, listed and exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .main import console, emit_json, handle_errors, json_option

FORMATS = ("parquet", "csv", "jsonl")  # batchio.FORMATS, without loading serving at CLI start


@click.group()
def predictions() -> None:
    """List and export the prediction log of served models.

    MODEL_REF is models:/NAME, models:/NAME/VERSION, models:/NAME@ALIAS or NAME.
    --since and --until take ISO 8601 times (UTC unless they say otherwise).
    """


def _time_options(fn: Any) -> Any:
    fn = click.option("--until", default=None, metavar="ISO",
                      help="Only requests before this time.")(fn)
    fn = click.option("--since", default=None, metavar="ISO",
                      help="Only requests at or after this time.")(fn)
    return click.option("--version", "version", default=None,
                        help="Only this version (or give models:/NAME/VERSION).")(fn)


@predictions.command("ls")
@click.argument("model_ref")
@_time_options
@json_option
@click.pass_obj
@handle_errors
def ls(obj, model_ref: str, version: str | None, since: str | None, until: str | None,
       as_json: bool) -> None:
    """Segments logged per version and UTC hour: their count, rows and bytes.

    \b
    Examples:
      cairn predictions ls fraud
      cairn predictions ls models:/fraud/1.2.0 --since 2025-01-31T00:00 --json
    """
    from ..progress import bar
    from ..serving.predlog_read import segments, summary

    obj.must_exist = True
    client = obj.client
    name, version = model_and_version(client, model_ref, version)
    found = segments(client, name, version, since, until)
    with bar(f"reading {len(found)} segment(s)", len(found), unit="segments") as advance:
        groups = summary(client, found, progress=lambda _s: advance(1))
    if as_json:
        emit_json([{**g, "hour": g["hour"].isoformat()} for g in groups])
        return
    from rich.table import Table

    table = Table("version", "hour (UTC)", "segments", "rows", "bytes")
    for g in groups:
        table.add_row(g["version"], g["hour"].strftime("%Y-%m-%d %H:00"), f"{g['segments']:,}",
                      f"{g['rows']:,}", f"{g['bytes']:,}")
    console().print(table)
    if not groups:
        click.echo(f"no predictions logged for {name}" + (f" {version}" if version else ""),
                   err=True)


@predictions.command("export")
@click.argument("model_ref")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The file to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="parquet, csv or jsonl (default: from the file's suffix, else parquet).")
@_time_options
@json_option
@click.pass_obj
@handle_errors
def export(obj, model_ref: str, output: str, fmt: str | None, version: str | None,
           since: str | None, until: str | None, as_json: bool) -> None:
    """Write the logged rows (oldest first) to one file.

    \b
    Examples:
      cairn predictions export fraud -o fraud.parquet --since 2025-01-31
      cairn predictions export models:/fraud/1.2.0 -o last-hour.csv --format csv
    """
    from ..progress import bar
    from ..serving.batchio import format_of
    from ..serving.predlog_read import read_segments, segments

    fmt = format_of(Path(output), fmt, "--format")  # an unknown extension: an error, not Parquet
    obj.must_exist = True
    client = obj.client
    name, version = model_and_version(client, model_ref, version)
    found = segments(client, name, version, since, until)
    total = len(found)
    with bar(f"reading {total} segment(s)", total, unit="segments") as advance:
        table = read_segments(client, found, since, until, progress=lambda _s: advance(1))
    write_table(table, Path(output), fmt)
    if as_json:
        emit_json({"model": name, "version": version, "output": output, "format": fmt,
                   "segments": total, "rows": table.num_rows})
    else:
        click.echo(f"wrote {table.num_rows:,} row(s) from {total} segment(s) to {output}",
                   err=True)


def model_and_version(client: Any, ref: str, version: str | None) -> tuple[str, str | None]:
    """MODEL_REF (and --version) as (name, version or None for all versions)."""
    from ..errors import InvalidArgument
    from ..registry.naming import check_name

    text = ref.removeprefix("models:/")
    named: str | None = None
    if "@" in text:  # an alias or stage: the version it points at now
        mv = client.resolve_model(text)
        name, named = mv.name, mv.version
    elif "/" in text:
        name, _, named = text.rpartition("/")
    else:
        name = text
    check_name(name)
    if named is not None and version is not None and named != version:
        raise InvalidArgument(f"{ref} names version {named}, but --version says {version}")
    return name, version or named


def write_table(table: Any, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        from ..serving.batchio import json_value

        with path.open("w", encoding="utf-8") as out:
            for batch in table.to_batches():
                for row in batch.to_pylist():
                    out.write(json.dumps({k: json_value(v) for k, v in row.items()},
                                         default=str, ensure_ascii=False) + "\n")
