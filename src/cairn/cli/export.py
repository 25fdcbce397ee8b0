"""`cairn export`: runs copied into a new local store, optionally anonymised."""

from __future__ import annotations

import click

from .main import emit_json, handle_errors, json_option


@click.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("-e", "--experiment", "experiments", multiple=True, metavar="NAME|ID",
              help="An experiment to export (repeatable); all of them by default.")
@click.option("--anonymise", is_flag=True,
              help="Pseudonymise users, hosts, home paths, e-mail and IP addresses with "
                   "CAIRN_ANONYMISE_KEY (and CAIRN_ANONYMISE_RULES) on the way.")
@click.option("--force", is_flag=True, help="Export into a directory that is not empty.")
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="Where a database store's artifacts are (what `cairn server --objects` "
                   "names).")
@click.option("--endpoint-url", default=None,
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@json_option
@click.pass_obj
@handle_errors
def export(obj, dest: str, experiments: tuple[str, ...], anonymise: bool, force: bool,
           objects_at: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Copy runs (params, tags, metric histories, artifacts) into a new local store at DEST.

    The source is the current store: a local one, a database or a team server.  DEST is
    a store directory that `cairn --store DEST ...` reads, or that can be copied
    anywhere.  Metric values and artifact contents are copied as they are.

    \b
    Examples:
      cairn export ./share -e baseline -e tuned
      CAIRN_ANONYMISE_KEY=... cairn export ./share --anonymise --json
      cairn --store postgresql://cairn@db/cairn export ./share --objects s3://ml/cairn
    """
    from ..lifecycle.export import export_runs
    from ..anonymise.rules import from_key
    from ..errors import InvalidArgument
    from ..settings import ANONYMISE_KEY, ANONYMISE_RULES

    anonymiser = None
    if anonymise:
        key = ANONYMISE_KEY.get()
        if not key:
            raise InvalidArgument("--anonymise needs the team's key in CAIRN_ANONYMISE_KEY (at "
                                  "least 16 characters), so pseudonyms match the team's")
        anonymiser = from_key(key, ANONYMISE_RULES.get() or None, local=True)
    objects = None
    if endpoint_url is not None and objects_at is None:
        raise InvalidArgument("--endpoint-url is the S3 endpoint of --objects s3://...: give both")
    if objects_at is not None:
        from ..server.serve import open_objects

        objects = open_objects(objects_at, endpoint_url)
    report = export_runs(obj.client, dest, experiments=experiments or None,
                         anonymiser=anonymiser, force=force, objects=objects,
                         progress=None if not as_json else False)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"exported {report.runs} run(s) of {len(report.experiments)} experiment(s) "
                   f"({report.metric_points} metric points, {report.artifacts} artifact(s)) to "
                   f"{report.dest}{' anonymised' if report.anonymised else ''}")
