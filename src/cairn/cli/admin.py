from __future__ import annotations

import sys

import click

from ..doctor import SKIPPABLE
from .main import emit_json, handle_errors, json_option


def _local(obj):
    from ..errors import InvalidArgument
    from ..store.local import LocalStore

    store = obj.client.store
    if not isinstance(store, LocalStore):
        raise InvalidArgument(f"this command works on a local store directory, not {store.uri}")
    return store


@click.command()
@click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="The object store of a database store (what `cairn server --objects` "
                   "names); a local store's own by default.")
@click.option("--endpoint-url", default=None,
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Re-hash N objects chosen at random instead of every object.")
@click.option("--skip", type=click.Choice(SKIPPABLE), multiple=True,
              help="Leave a check out (repeatable): index, objects or audit.")
@json_option
@click.pass_obj
@handle_errors
def doctor(obj, objects_at: str | None, endpoint_url: str | None, sample: int | None,
           skip: tuple[str, ...], as_json: bool) -> None:
    """Check the store: schema, journals, quarantine, index, objects and audit log.

    Each check prints ok or DAMAGED; exit status 1 when any found damage: a damaged
    journal record, a record in quarantine, an index that differs from the journals
    (`cairn reindex` rebuilds it), a corrupt or missing object, a broken audit chain.
    Runs presumed dead (KILLED) are listed, and are not damage.  Nothing is repaired.

    A server's database (--store postgresql://...) has no journals: give its object
    store with --objects.

    \b
    Examples:
      cairn doctor
      cairn --store /data/.cairn doctor --sample 1000 --json
      cairn --store postgresql://cairn@db/cairn doctor --objects s3://ml/cairn
    """
    from ..doctor import diagnose

    store = obj.client.store
    objects = None
    if endpoint_url is not None and objects_at is None:
        from ..errors import InvalidArgument

        raise InvalidArgument("--endpoint-url is the S3 endpoint of --objects s3://...: give both")
    if objects_at is not None:
        from ..server.serve import open_objects

        objects = open_objects(objects_at, endpoint_url)
    report = diagnose(store, objects=objects, sample=sample, skip=skip, progress=None)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise SystemExit(1)


def _print_report(report) -> None:
    click.echo(f"store {report.store}")
    for c in report.checks:
        click.echo(f"{c.name + ':':<12} {'DAMAGED' if c.status == 'damaged' else c.status}: "
                   f"{c.summary}")
        for line in _problems(c):
            click.echo(f"  {line}")
    click.echo(f"{len(report.killed_runs)} run(s) KILLED or presumed dead (no heartbeat)")


def _problems(c) -> list[str]:
    """The lines that name what a damaged check found."""
    d = c.details
    if c.name == "journals":
        return [f"{r['path']} at byte {r['offset']} ({r['length']} bytes): {r['reason']}"
                for r in d.get("damaged_records", [])]
    if c.name == "quarantine":
        return [f"run {q['run_id']}: {q['journal']} at byte {q['offset']} "
                f"({q['length']} bytes): {q['reason']}" for q in d.get("quarantined_records", [])]
    if c.name == "objects":
        out = []
        for kind in ("corrupt", "missing"):
            for o in d.get(kind, []):
                where = f" (in pack {o['pack']})" if o.get("pack") else ""
                refs = "; ".join(o["referrers"]) or "nothing refers to it"
                more = f" and {o['more_referrers']} more" if o.get("more_referrers") else ""
                out.append(f"{kind} {o['oid']}{where}: {refs}{more}")
        return out + list(d.get("notes", []))
    if c.name == "index":
        out = []
        for x in d.get("differences", []):
            who = f"run {x['run_id']}" if "run_id" in x else f"experiment {x['experiment_id']}"
            key = f" {x['key']}" if x.get("key") else ""
            change = (f": journals {x['journals']}, index {x['index']}"
                      if x["problem"] in ("differs", "search document differs") else "")
            out.append(f"{who} {x['table']}{key}: {x['problem']}{change}")
        if d.get("differences_found", 0) > len(d.get("differences", [])):
            out.append(f"... {d['differences_found'] - len(d['differences'])} more")
        return out
    if c.name == "audit":
        return [p["message"] for p in d.get("problems", [])]
    return []


@click.command()
@json_option
@click.pass_obj
@handle_errors
def reindex(obj, as_json: bool) -> None:
    """Rebuild the index from the journals (registry and audit tables are not touched).

    \b
    Example:
      cairn --store ./copied-from-cluster/.cairn reindex
    """
    result = _local(obj).reindex(progress=None)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"reindexed {result['runs']} run(s) from {result['records']} journal record(s); "
                   f"{result['damaged']} damaged record(s) skipped; "
                   f"{result['quarantined']} record(s) in quarantine")


@click.group()
def db() -> None:
    """Database schema management (explicit migrations; opening a store never migrates)."""


@db.command("upgrade")
@click.option("--url", default=None, help="Database URL (default: the local store's index).")
@json_option
@click.pass_obj
@handle_errors
def upgrade(obj, url: str | None, as_json: bool) -> None:
    """Migrate the index database to this version's schema (alembic).

    Back up the store (or database) first.

    \b
    Examples:
      cairn db upgrade
      cairn db upgrade --url postgresql+psycopg://cairn@db/cairn
    """
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from ..errors import SchemaOutOfDate, StoreUnavailable
    from ..store.sql.migrate import upgrade as do_upgrade

    if url is None:
        store = _local(obj)
        store.root.mkdir(parents=True, exist_ok=True)
        url = store.index.url
    try:
        rev = do_upgrade(url)
    except CommandError as exc:  # e.g. a revision written by a newer Cairn
        raise SchemaOutOfDate(f"cannot upgrade the index: {exc}; was it written by a newer "
                              "version of Cairn?") from None
    except SQLAlchemyError as exc:  # unreachable server, bad URL, missing driver
        raise StoreUnavailable(f"cannot upgrade {_safe_url(url)}: "
                               f"{getattr(exc, 'orig', None) or exc}") from None
    if as_json:
        emit_json({"url": _safe_url(url), "revision": rev})
    else:
        click.echo(f"database at revision {rev}")


def _safe_url(url: str) -> str:
    """The URL for messages, without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say nothing that might be a secret
        return "the database"


@click.group()
def admin() -> None:
    """Store administration that changes recorded history (erasure on request)."""


@admin.command("erase-user")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_obj
@handle_errors
def erase_user(obj, name: str, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Erase one person's data: NAME becomes [erased] everywhere it is recorded.

    Runs (their user, mlflow.user, params, tags and environment naming them, in the
    journals too, so `cairn reindex` cannot bring it back), the registry, data sets,
    comments, reports, monitoring, and the audit log, whose events naming them become
    tombstones that `cairn audit verify` still accepts.  One `user.erase` audit event
    records the erasure.  Runs that are still RUNNING are refused.  Works on a local
    store, a database (--store postgresql://...) or a team server, where it needs a
    global admin's token.

    \b
    Examples:
      cairn admin erase-user alice --dry-run
      cairn --store https://cairn.example.com admin erase-user alice --yes --json
    """
    from ..lifecycle.erase import check_name
    from ..lifecycle.erase import erase_user as erase
    from ..errors import InvalidArgument

    check_name(name)
    client = obj.client
    store = client.store
    if not dry_run and not yes:
        if as_json or not sys.stdin.isatty():
            raise InvalidArgument(f"erasing {name!r} cannot be undone: confirm with --yes (or "
                                  "look first with --dry-run)")
        click.confirm(f"Erase every record of {name!r} for good?", abort=True, err=True)
    report = erase(store, name, actor=client.user, dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would change" if dry_run else "changed"
    click.echo(f"{'dry run: ' if dry_run else ''}{len(report.runs)} run(s), "
               f"{len(report.journals)} journal file(s), {sum(report.rows.values())} row(s) and "
               f"{len(report.audit_events)} audit event(s) {verb}")
    for run_id in report.runs:
        click.echo(f"  run {run_id}")
    for where, n in sorted(report.rows.items()):
        click.echo(f"  {where}: {n}")
    if report.audit_events:
        click.echo(f"  audit events: {', '.join(f'#{s}' for s in report.audit_events)}")
    if report.erase_event is not None:
        click.echo(f"recorded as audit event #{report.erase_event} (user.erase)")
