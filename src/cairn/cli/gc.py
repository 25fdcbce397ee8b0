"""``cairn gc``: retention, trash purge, then mark-and-sweep of the object store."""

from __future__ import annotations

from typing import Any

import click

from .main import emit_json, handle_errors, json_option

ACTOR = "cairn-gc"


@click.command()
@click.option("--dry-run", is_flag=True,
              help="Say what retention, the purge and the sweep would do; change nothing.")
@click.option("--grace", "grace", default=None, metavar="DURATION",
              help="Objects modified more recently than this are kept whatever refers to "
                   "them: seconds or 30m, 12h, 1d (default CAIRN_GC_GRACE, 1d). 0 only "
                   "where nothing writes to the store meanwhile.")
@click.option("--no-retention", is_flag=True, help="Do not apply the retention policies first.")
@click.option("--no-purge", is_flag=True,
              help="Do not empty the trash of what is older than CAIRN_TRASH_DAYS first.")
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="The object store of a database store (what `cairn server --objects` "
                   "names); a local store's own by default.")
@click.option("--endpoint-url", default=None,
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@json_option
@click.pass_obj
@handle_errors
def gc(obj: Any, dry_run: bool, grace: str | None, no_retention: bool, no_purge: bool,
       objects_at: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Reclaim the space of objects nothing refers to any more.

    In order: apply the retention policies (runs and data set versions they do not keep
    go to the trash, expired artifacts lose their claim), purge what has been in the
    trash longer than CAIRN_TRASH_DAYS, then delete every object that no run, model
    version, data set version or pipeline record outside the purged refers to and that
    is older than the grace period, and repack packs that are mostly garbage.  Safe
    while other processes write to the store; a killed gc loses nothing and the next
    one finishes its work.

    \b
    Examples:
      cairn gc --dry-run
      cairn gc --json
      cairn --store postgresql://cairn@db/cairn gc --objects s3://ml/cairn
    """
    from .. import clock
    from ..errors import InvalidArgument
    from ..lifecycle.gc import collect, parse_duration

    grace_s = None
    if grace is not None:
        try:
            grace_s = parse_duration(grace)
        except ValueError as exc:
            raise InvalidArgument(f"--grace: {exc}") from None
    if endpoint_url is not None and objects_at is None:
        raise InvalidArgument("--endpoint-url is the S3 endpoint of --objects s3://...: give both")
    store = obj.client.store
    objects = None
    if objects_at is not None:
        from ..server.serve import open_objects

        objects = open_objects(objects_at, endpoint_url)
    now = clock.now_ms()
    retention = None if no_retention else _retention(store, now, dry_run)
    purge = None if no_purge else _purge(store, now, dry_run)
    unrooted = None
    if dry_run and purge is not None and "purged" in purge:
        from ..lifecycle.roots import Unrooted

        unrooted = Unrooted.of(purge.pop("_items"))
    elif purge is not None:
        purge.pop("_items", None)
    report = collect(store, dry_run=dry_run, grace_s=grace_s, now_ms=now, progress=None,
                     objects=objects, unrooted=unrooted)
    report.retention, report.purge = retention, purge
    if as_json:
        emit_json(report.to_dict())
        return
    _print(report)


def _retention(store: Any, now: int, dry_run: bool) -> dict[str, Any]:
    try:
        from ..lifecycle import retention
    except ImportError:  # pragma: no cover - a build without retention policies
        return {"skipped": "retention policies are not available"}
    return dict(retention.apply(store, now_ms=now, dry_run=dry_run,
                                actor=retention.ACTOR).to_dict())


def _purge(store: Any, now: int, dry_run: bool) -> dict[str, Any]:
    try:
        from ..lifecycle import trash
    except ImportError:  # pragma: no cover - a build without the trash
        return {"skipped": "the trash is not available"}
    from ..settings import TRASH_DAYS

    older = int(TRASH_DAYS.get() * 86_400_000)
    report = trash.purge(store, older_than_ms=older, now_ms=now, dry_run=dry_run, actor=ACTOR)
    return {**report.to_json(), "_items": list(report.purged)}


def _print(r: Any) -> None:
    from ..progress import size_text

    would = "would be " if r.dry_run else ""
    if r.retention is not None and "actions" in r.retention:
        click.echo(f"retention: {len(r.retention['actions'])} action(s) "
                   f"{'planned' if r.dry_run else 'taken'}")
    if r.purge is not None and "purged" in r.purge:
        click.echo(f"trash: {len(r.purge['purged'])} item(s) {would}purged, "
                   f"{len(r.purge.get('kept', []))} kept")
    def sized(n: int | None) -> str:
        return "" if n is None else f" ({size_text(n)})"

    click.echo(f"scanned {r.scanned} objects{sized(r.scanned_bytes)}; "
               f"{r.referenced} referenced")
    click.echo(f"kept: {r.live} live{sized(r.live_bytes)}, {r.young} unreferenced but "
               f"younger than the grace ({size_text(r.young_bytes)}), {r.kept_meanwhile} "
               "referenced or rewritten meanwhile")
    click.echo(f"garbage: {r.garbage} objects ({size_text(r.garbage_bytes)})")
    if r.dry_run:
        click.echo(f"would free {size_text(r.garbage_bytes)} ({r.garbage} objects)")
    else:
        click.echo(f"freed {size_text(r.freed_bytes)} ({r.freed} objects)")
    if r.repacked_packs:
        click.echo(f"packs: {r.repacked_packs} {would}repacked ({r.repacked_members} live "
                   f"members, {size_text(r.repack_garbage_bytes)} of garbage dropped)")
    if r.temp_files:
        click.echo(f"temporary files of killed writers: {r.temp_files} {would}removed "
                   f"({size_text(r.temp_bytes)})")
    if r.restored:
        click.echo(f"{r.restored} object(s) a killed gc had set aside were put back")
