"""`cairn backup` and `cairn restore`: a store's consistent snapshot, and bringing it back."""

from __future__ import annotations

import click

from .main import emit_json, handle_errors, json_option

_OBJECTS_HELP = ("The object store of a database store (what `cairn server --objects` names): "
                 "a directory or s3://BUCKET/PREFIX.")


@click.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help=_OBJECTS_HELP + " A local store's own by default.")
@click.option("--endpoint-url", default=None,
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@json_option
@click.pass_obj
@handle_errors
def backup(obj, dest: str, objects_at: str | None, endpoint_url: str | None,
           as_json: bool) -> None:
    """Take a consistent snapshot of the store into directory DEST, while writers run.

    The index is copied at one point in time, then journals and objects; a second backup
    into the same DEST copies only the objects it lacks.  An encrypted store's objects
    are copied as stored (no key needed).  Exit status 1 when objects that the index
    names are missing from the store itself (`cairn doctor` says where).

    \b
    Examples:
      cairn backup /backups/cairn
      cairn --store postgresql://cairn@db/cairn backup /backups/team --objects s3://ml/cairn
    """
    from ..lifecycle.backup import backup as take

    report = take(obj.client.store, dest, objects=objects_at, endpoint_url=endpoint_url)
    if as_json:
        emit_json(report.to_dict())
    else:
        c = report.counts
        click.echo(f"backup of {report.source_kind} store at {report.dest}: "
                   f"{c.get('runs', 0)} run(s), {c.get('model_versions', 0)} model version(s), "
                   f"{c.get('audit_events', 0)} audit event(s), {report.objects} object(s) "
                   f"({report.objects_copied} copied, {report.objects_reused} already there) "
                   f"in {report.seconds:.1f} s")
    if report.missing:
        click.echo(f"Error: {len(report.missing)} object(s) the index names are missing from "
                   f"the store itself (first: {report.missing[0]}); the backup was written "
                   "without them: run `cairn doctor`", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True,
              help="Replace a store that is not empty: everything in it is deleted and the "
                   "backup takes its place (nothing is merged).")
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help=_OBJECTS_HELP)
@click.option("--endpoint-url", default=None,
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, src: str, force: bool, objects_at: str | None, endpoint_url: str | None,
            as_json: bool) -> None:
    """Restore the backup in directory SRC into the store (given with --store), which must
    be empty.

    Every file and object is checked against the backup's manifest first; a damaged
    backup is refused and nothing is left that claims to be a store.  A local backup
    can go into a local store or a database; a database's backup into a database.

    \b
    Examples:
      cairn --store ./restored restore /backups/cairn
      cairn --store postgresql://cairn@db/cairn restore /backups/team --objects s3://ml/cairn
    """
    from ..client import Client
    from ..lifecycle.restore import restore as bring_back

    target = Client(obj.uri).uri  # not opened: opening would make the store restore refuses
    report = bring_back(src, target, objects=objects_at, endpoint_url=endpoint_url, force=force)
    if as_json:
        emit_json(report.to_dict())
    else:
        c = report.counts
        replaced = " (replacing what was there)" if report.replaced else ""
        click.echo(f"restored {report.target} from {src}{replaced}: {c.get('runs', 0)} run(s), "
                   f"{c.get('model_versions', 0)} model version(s), {report.objects} object(s); "
                   "check it with `cairn doctor`")
