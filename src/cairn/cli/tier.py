"""`cairn tier`: move objects nobody reads to the cold tier."""

from __future__ import annotations

import click

from .main import emit_json, handle_errors, json_option


@click.command()
@click.option("--cold-objects", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="The cold tier (default: the one the store has, or CAIRN_COLD_OBJECTS). "
                   "Recorded in the store the first time; it cannot be changed later.")
@click.option("--cold-endpoint-url", default=None, metavar="URL",
              help="S3-compatible endpoint (MinIO, Ceph, ...) of an s3:// cold tier "
                   "(or CAIRN_COLD_ENDPOINT_URL).")
@click.option("--days", type=click.FloatRange(min=0), default=None, metavar="N",
              help="Move objects unread for N days (default: CAIRN_TIER_AFTER_DAYS, 30).")
@click.option("--dry-run", is_flag=True, help="Say what would move; move nothing.")
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="The hot object store of a database store (what `cairn server --objects` "
                   "names); a local store's own by default.")
@click.option("--endpoint-url", default=None, metavar="URL",
              help="S3-compatible endpoint of an s3:// --objects.")
@json_option
@click.pass_obj
@handle_errors
def tier(obj, cold_objects: str | None, cold_endpoint_url: str | None, days: float | None,
         dry_run: bool, objects_at: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Move objects unread for N days to the cold tier; reads find them there.

    Each object is copied to the cold tier, read back and hashed, then deleted from the
    hot store: interrupted at any point, nothing is lost and the next run finishes.

    \b
    Examples:
      cairn tier --cold-objects /mnt/archive/cairn --dry-run
      cairn tier --cold-objects s3://archive/cairn --days 90
      cairn tier --json          # the store remembers its cold tier
      cairn --store postgresql://cairn@db/cairn tier --objects s3://ml/cairn
    """
    import os

    from ..cas.tiering import configure, move_cold
    from ..errors import InvalidArgument
    from ..progress import size_text
    from ..settings import COLD_ENDPOINT_URL, COLD_OBJECTS

    if endpoint_url is not None and objects_at is None:
        raise InvalidArgument("--endpoint-url is the S3 endpoint of --objects s3://...: give both")
    if objects_at is not None:
        from ..server.serve import open_objects

        objects = open_objects(objects_at, endpoint_url)
    else:
        from ..store import local_directory

        uri = obj.uri or os.environ.get("CAIRN_TRACKING_URI") or ".cairn"
        root = local_directory(uri)
        if root is None:
            raise InvalidArgument(f"{uri} keeps its objects elsewhere: give its object store "
                                  "with --objects DIR or s3://BUCKET/PREFIX (as for `cairn "
                                  "server`), on a machine that can reach it")
        if not root.is_dir():
            raise InvalidArgument(f"no Cairn store at {root}: check --store (or "
                                  "CAIRN_TRACKING_URI)")
        from ..cas.odb import ObjectStore

        objects = ObjectStore.local(root / "objects")
    cold = cold_objects or COLD_OBJECTS.get() or None
    if cold is not None:
        configure(objects, cold, cold_endpoint_url or COLD_ENDPOINT_URL.get() or None)
    elif cold_endpoint_url is not None:
        raise InvalidArgument("--cold-endpoint-url goes with --cold-objects s3://...")
    report = move_cold(objects, older_than_days=days, dry_run=dry_run, progress=None)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would move" if dry_run else "moved"
    count, size = ((report.candidates, report.candidate_bytes) if dry_run
                   else (report.moved, report.moved_bytes))
    click.echo(f"{verb} {count:,} object(s), {size_text(size)}, unread for "
               f"{report.older_than_days:g} day(s), from {report.hot} to {report.cold} "
               f"({report.examined:,} object(s) in the hot store)")
