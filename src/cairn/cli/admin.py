from __future__ import annotations

import click

from .main import emit_json, handle_errors, json_option


def _local(obj):
    from ..errors import InvalidArgument
    from ..store.local import LocalStore

    store = obj.client.store
    if not isinstance(store, LocalStore):
        raise InvalidArgument(f"this command works on a local store directory, not {store.uri}")
    return store


@click.command()
@json_option
@click.pass_obj
@handle_errors
def doctor(obj, as_json: bool) -> None:
    """Check the store: schema, damaged and quarantined records, runs presumed dead.

    Damaged records, and records the index cannot take, are skipped (the rest of each run
    is kept), copied to the store's quarantine/ folder and listed here. Exit status 1 when
    something needs attention.

    \b
    Example:
      cairn --store /data/.cairn doctor --json
    """
    from ..store import quarantine

    store = _local(obj)
    store.open()
    held = quarantine.list_all(store.root)
    # Damage that replay met is in quarantine already: list each span once.
    places = {(str(store.root / q.journal), q.offset) for q in held}
    damage = [d for d in store.scan_damage() if (d.path, d.offset) not in places]
    killed, token = [], None
    while True:
        page = obj.client.search_runs(None, "attributes.status = 'KILLED'", max_results=1000,
                                      page_token=token)
        killed += page
        token = page.token
        if token is None:
            break
    report = {
        "store": str(store.root),
        "schema": "ok",
        "damaged_records": [{"path": d.path, "offset": d.offset, "length": d.length,
                             "reason": d.reason} for d in damage],
        "quarantined_records": [q.to_dict() for q in held],
        "quarantined_runs": sorted({q.run_id for q in held}),
        "killed_runs": [r.id for r in killed],
    }
    if as_json:
        emit_json(report)
    else:
        click.echo(f"store {report['store']}: schema ok")
        if damage:
            click.echo(f"{len(damage)} damaged journal record(s), skipped (the rest of each run is kept):")
            for d in damage:
                click.echo(f"  {d.path} at byte {d.offset} ({d.length} bytes): {d.reason}")
        else:
            click.echo("journals: no damaged records")
        if held:
            click.echo(f"{len(held)} journal record(s) in quarantine, of "
                       f"{len(report['quarantined_runs'])} run(s) (the rest of each run is "
                       f"kept; copies under {store.root / quarantine.DIRECTORY}):")
            for q in held:
                click.echo(f"  run {q.run_id}: {q.journal} at byte {q.offset} "
                           f"({q.length} bytes): {q.reason}")
        else:
            click.echo("quarantine: empty")
        click.echo(f"{len(killed)} run(s) KILLED or presumed dead (no heartbeat)")
    if damage or held:
        raise SystemExit(1)


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
