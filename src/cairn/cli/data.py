"""``cairn data``, ``cairn remote`` and ``cairn lineage``: thin shells over cairn.data and cairn.lineage."""

from __future__ import annotations

from typing import Any

import click

from ..progress import size_text
from ..store.base import Directory
from .format import report_verify, ts
from .main import console, emit_json, handle_errors, hidden_alias, json_option, resolve_run


def _ds(obj: Any):
    return obj.client.data


def _version_json(v: Any, stats: bool = False) -> dict[str, Any]:
    d = {"ref": v.ref, "name": v.name, "version": v.version, "tree": v.tree, "files": v.files,
         "size": v.size, "message": v.message, "source": v.source, "kind": v.kind,
         "aliases": list(v.aliases), "packs": list(v.packs), "run_id": v.run_id,
         "commit": v.commit, "parents": list(v.parents), "transform": dict(v.transform),
         "created_at": v.created_at, "created_by": v.created_by, "created": v.created}
    if stats:
        d["stats"] = dict(v.stats)
        d["quality"] = list(v.quality)
    return d


@click.group()
def data() -> None:
    """Version data sets: add, get, diff, split, push and pull.

    \b
    Examples:
      cairn data add data/transactions.csv --name transactions -m "March dump"
      cairn data get transactions@3 restored/
      cairn data diff transactions@2 transactions@3
    """


@data.command("add")
@click.argument("path", type=click.Path())
@click.option("--name", "-n", required=True, help="Data set name.")
@click.option("--message", "-m", default="", help="What this version is.")
@click.option("--alias", "-a", "aliases", multiple=True, help="Alias to point here (repeatable).")
@click.option("--expect", "-e", "expect", multiple=True,
              help="Quality expectation that must hold, e.g. 'label not null' (repeatable).")
@click.option("--no-stats", is_flag=True, help="Skip statistics of tabular files.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@json_option
@click.pass_obj
@handle_errors
def add(obj, path: str, name: str, message: str, aliases: tuple[str, ...], expect: tuple[str, ...],
        no_stats: bool, progress: bool | None, as_json: bool) -> None:
    """Record a file or directory as the next version of a data set.

    Files are only read.  Example: cairn data add images/ --name pets -m "relabelled" -a gold
    """
    v = _ds(obj).add(path, name, message, aliases=aliases, expect=list(expect),
                     stats=not no_stats, progress=progress)
    if as_json:
        emit_json(_version_json(v))
    elif v.created:
        click.echo(f"{v.ref}: {v.files:,} file(s), {size_text(v.size)} (tree {v.tree[:12]})")
    else:
        click.echo(f"unchanged: {v.ref} already has these files")


@data.command("ls")
@click.argument("name", required=False)
@json_option
@click.pass_obj
@handle_errors
def ls(obj, name: str | None, as_json: bool) -> None:
    """List data sets, or the versions of one.  Example: cairn data ls transactions"""
    from rich.table import Table

    ds = _ds(obj)
    if name is None:
        sets = ds.list()
        if as_json:
            emit_json([{"name": d.name, "versions": d.versions, "latest": d.latest,
                        "files": d.files, "size": d.size, "aliases": dict(d.aliases),
                        "updated_at": d.updated_at} for d in sets])
            return
        table = Table("name", "versions", "latest", "files", "size", "aliases", "updated")
        for d in sets:
            table.add_row(d.name, str(d.versions), f"v{d.latest}", f"{d.files:,}", size_text(d.size),
                          ", ".join(f"{a}→v{n}" for a, n in sorted(d.aliases.items())),
                          ts(d.updated_at))
        console().print(table)
        return
    versions = ds.versions(name)
    if as_json:
        emit_json([_version_json(v) for v in versions])
        return
    table = Table("version", "files", "size", "kind", "aliases", "created", "message")
    for v in versions:
        table.add_row(v.ref, f"{v.files:,}", size_text(v.size), v.kind, ", ".join(v.aliases),
                      ts(v.created_at), v.message)
    console().print(table)


@data.command("show")
@click.argument("ref")
@json_option
@click.pass_obj
@handle_errors
def show(obj, ref: str, as_json: bool) -> None:
    """Show a version: files, lineage fields, statistics.  Example: cairn data show transactions@gold"""
    v = _ds(obj).version(ref)
    if as_json:
        emit_json(_version_json(v, stats=True))
        return
    out = console()
    out.print(f"[bold]{v.ref}[/]  {v.files:,} file(s), {size_text(v.size)}, {v.kind}, "
              f"created {ts(v.created_at)} by {v.created_by}")
    for label, value in (("message", v.message), ("aliases", ", ".join(v.aliases)),
                         ("source", v.source), ("parents", ", ".join(v.parents)),
                         ("run", v.run_id), ("commit", v.commit), ("tree", v.tree),
                         ("transform", dict(v.transform) or None)):
        if value:
            out.print(f"  {label}: {value}", highlight=False)
    from rich.table import Table

    for path, st in sorted(v.stats.items()):
        if "columns_stats" not in st:
            out.print(f"  {path}: {st.get('error', 'no statistics')}")
            continue
        out.print(f"  {path}: {st['rows']:,} rows, {st['columns']} columns, "
                  f"{st['duplicate_rows']} duplicate row(s)")
        table = Table("column", "type", "nulls", "distinct", "min", "max", "mean")
        for col, c in st["columns_stats"].items():
            table.add_row(col, c["type"], f"{c['nulls']} ({100 * c['null_fraction']:.1f}%)",
                          str(c.get("distinct")), _cell(c.get("min")), _cell(c.get("max")),
                          _cell(c.get("mean")))
        out.print(table)
    for r in v.quality:
        out.print(f"  {'PASS' if r['passed'] else 'FAIL'} {r['expectation']}: {r['detail']}")


def _cell(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


@data.command("get")
@click.argument("ref")
@click.argument("dest", type=click.Path())
@click.option("--path", "-p", "sub", default=None, help="Only this file or directory of the version.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@json_option
@click.pass_obj
@handle_errors
def get(obj, ref: str, dest: str, sub: str | None, progress: bool | None, as_json: bool) -> None:
    """Restore a version's exact bytes into DEST, verified.

    Example: cairn data get transactions@3 restored/ --path 2024/03
    """
    ds = _ds(obj)
    v = ds.version(ref)
    out = ds.checkout(v, dest, sub, progress=progress)
    files = ds.files(v, sub)
    if as_json:
        emit_json({"ref": v.ref, "path": sub, "destination": str(out), "files": len(files),
                   "size": sum(f.size for f in files)})
    else:
        click.echo(f"{v.ref}: {len(files):,} file(s) written to {out}")


@data.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
@click.pass_obj
@handle_errors
def diff(obj, a: str, b: str, as_json: bool) -> None:
    """Files added, removed, changed; schema and statistics drift of tables.

    Example: cairn data diff transactions@2 transactions@3
    """
    d = _ds(obj).diff(a, b)
    if as_json:
        def fc(c):
            return {"path": c.path, "old_size": c.old_size, "new_size": c.new_size,
                    "old_digest": c.old_digest, "new_digest": c.new_digest}

        emit_json({"a": d.a, "b": d.b, "added": [fc(c) for c in d.added],
                   "removed": [fc(c) for c in d.removed], "changed": [fc(c) for c in d.changed],
                   "moved": [list(m) for m in d.moved], "unchanged": d.unchanged,
                   "tables": d.tables})
        return
    click.echo(f"{d.a} → {d.b}: {len(d.added)} added, {len(d.removed)} removed, "
               f"{len(d.changed)} changed, {len(d.moved)} moved, {d.unchanged} unchanged")
    for c in d.added:
        click.echo(f"  + {c.path} ({size_text(c.new_size or 0)})")
    for c in d.removed:
        click.echo(f"  - {c.path} ({size_text(c.old_size or 0)})")
    for c in d.changed:
        click.echo(f"  ~ {c.path} ({size_text(c.old_size or 0)} → {size_text(c.new_size or 0)})")
    for old, new in d.moved:
        click.echo(f"  > {old} → {new}")
    for path, t in d.tables.items():
        click.echo(f"  table {path}: rows {t['rows'][0]} → {t['rows'][1]}")
        sch = t["schema"]
        for col, typ in sch["added"].items():
            click.echo(f"    column added: {col} ({typ})")
        for col, typ in sch["removed"].items():
            click.echo(f"    column removed: {col} ({typ})")
        for col, (old, new) in sch["type_changed"].items():
            click.echo(f"    column type changed: {col} {old} → {new}")
        for col, c in t["columns"].items():
            parts = [f"{k} {_cell(v[0])} → {_cell(v[1])}" for k, v in c.items()
                     if isinstance(v, list)]
            flag = " DRIFT" if c.get("drifted") else ""
            click.echo(f"    {col}{flag}: " + "; ".join(parts))


@data.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--delete", is_flag=True, help="Remove ALIAS from the data set instead.")
@json_option
@click.pass_obj
@handle_errors
def alias(obj, ref: str, alias: str, delete: bool, as_json: bool) -> None:
    """Point an alias at a version.  Example: cairn data alias transactions@3 gold"""
    ds = _ds(obj)
    if delete:
        from ..data.entities import DataRef

        name = DataRef.parse(ref).name
        ds.remove_alias(name, alias)
        if as_json:  # as `cairn models alias --delete --json`
            emit_json({"name": name, "alias": alias, "deleted": True})
        else:
            click.echo(f"removed alias {alias}")
        return
    v = ds.alias(ref, alias)
    if as_json:
        emit_json(_version_json(v))
    else:
        click.echo(f"{v.name}@{alias} → {v.ref}")


@data.command("delete")
@click.argument("ref")
@click.option("--force", is_flag=True,
              help="Also a version that is an input of a live registered model version "
                   "(a server admin's, on a server).")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, ref: str, force: bool, as_json: bool) -> None:
    """Move a data set version (NAME@VERSION) to the trash (audited).

    It is hidden from every read until `cairn data restore` brings it back or the trash
    is emptied; its files are kept meanwhile and its number is never given again.

    \b
    Examples:
      cairn data delete transactions@3
      cairn data restore transactions@3
    """
    v = _ds(obj).delete_version(ref, force=force)
    if as_json:
        emit_json({**_version_json(v), "trashed": True})
    else:
        click.echo(f"moved {v.ref} to the trash (`cairn data restore {v.ref}` brings it back)")


@data.command("restore")
@click.argument("ref")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, ref: str, as_json: bool) -> None:
    """Bring a data set version (NAME@VERSION) back from the trash, with its aliases.

    \b
    Example:
      cairn data restore transactions@3
    """
    v = _ds(obj).restore_version(ref)
    if as_json:
        emit_json(_version_json(v))
    else:
        click.echo(f"restored {v.ref}")


@data.command("split")
@click.argument("ref")
@click.option("--fraction", "-f", "fractions", multiple=True, required=True,
              help="NAME=FRACTION, e.g. -f train=0.8 -f val=0.1 -f test=0.1")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--stratify", default=None, help="Column to stratify by ('dir' for folders).")
@click.option("--by", type=click.Choice(["auto", "rows", "files"]), default="auto",
              show_default=True)
@json_option
@click.pass_obj
@handle_errors
def split(obj, ref: str, fractions: tuple[str, ...], seed: int, stratify: str | None, by: str,
          as_json: bool) -> None:
    """Deterministic splits into derived versions NAME.<split>.

    Example: cairn data split transactions@3 -f train=0.8 -f val=0.1 -f test=0.1 --seed 42
    """
    from ..errors import InvalidArgument

    fr = {}
    for item in fractions:
        key, sep, value = item.partition("=")
        try:
            fr[key] = float(value)
        except ValueError:
            raise InvalidArgument(f"--fraction must be NAME=FRACTION, got {item!r}") from None
        if not sep:
            raise InvalidArgument(f"--fraction must be NAME=FRACTION, got {item!r}")
    parts = _ds(obj).split(ref, fr, seed=seed, stratify=stratify, by=by)
    if as_json:
        emit_json({k: _version_json(v) for k, v in parts.items()})
        return
    for k, v in parts.items():
        click.echo(f"{k}: {v.ref} ({v.files:,} file(s), {size_text(v.size)}, tree {v.tree[:12]})")


@data.command("verify")
@click.argument("ref")
@json_option
@click.pass_obj
@handle_errors
def verify(obj, ref: str, as_json: bool) -> None:
    """Re-hash every object of a version; exit 1 on damage.  Example: cairn data verify transactions@3"""
    ds = _ds(obj)
    if not as_json:
        report_verify(ds.verify(ref, progress=None), False)
        return
    v = ds.version(ref)  # read once: the JSON names the version it checked (name@N)
    # The keys of `cairn artifacts verify --json`, with the version and ok.
    report_verify(ds.verify(v, progress=None), True, ref=v.ref)


def _transfer_options(fn):
    """--remote, --jobs, --progress and --json: what push and pull both take."""
    for option in reversed([
            click.option("--remote", "-r", default=None,
                         help="Remote name (default: the default remote)."),
            click.option("--jobs", "-j", default=8, show_default=True,
                         help="Parallel transfers."),
            click.option("--progress/--no-progress", default=None,
                         help="Progress bar (default: on a terminal)."),
            json_option]):
        fn = option(fn)
    return fn


def _transfer_json(r: Any) -> dict[str, Any]:
    return {"remote": r.remote, "versions": list(r.versions), "objects": r.objects,
            "bytes": r.bytes, "skipped": r.skipped}


@data.command("push")
@click.argument("names", nargs=-1)
@_transfer_options
@click.pass_obj
@handle_errors
def push(obj, names: tuple[str, ...], remote: str | None, jobs: int, progress: bool | None,
         as_json: bool) -> None:
    """Send versions and the objects the remote lacks.  Example: cairn data push transactions"""
    r = _ds(obj).push(list(names) or None, remote, progress=progress, workers=jobs)
    if as_json:
        emit_json(_transfer_json(r))
        return
    click.echo(f"pushed {len(r.versions)} version(s) to {r.remote}: {r.objects} object(s), "
               f"{size_text(r.bytes)} sent, {r.skipped} already there")


@data.command("pull")
@click.argument("names", nargs=-1)
@_transfer_options
@click.pass_obj
@handle_errors
def pull(obj, names: tuple[str, ...], remote: str | None, jobs: int, progress: bool | None,
         as_json: bool) -> None:
    """Fetch versions and the objects this store lacks.  Example: cairn data pull transactions@3"""
    r = _ds(obj).pull(list(names) or None, remote, progress=progress, workers=jobs)
    if as_json:
        emit_json(_transfer_json(r))
        return
    click.echo(f"pulled {len(r.versions)} version(s) from {r.remote}: {r.objects} object(s), "
               f"{size_text(r.bytes)} received")


# -- cairn remote -----------------------------------------------------------------------

def _root(obj: Any):
    store = _ds(obj).store
    if not isinstance(store, Directory):  # a Cairn server: it is the shared copy itself
        from ..errors import InvalidArgument

        raise InvalidArgument(f"remotes belong to a local store directory, not to the server "
                              f"{store.uri}; its data sets are shared through the server")
    return store.root


@click.group()
def remote() -> None:
    """Configure where data sets are pushed.

    \b
    Examples:
      cairn remote add origin s3://bucket/cairn --endpoint-url http://127.0.0.1:9000
      cairn remote add nas /mnt/nas/cairn
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint (MinIO, Ceph, ...).")
@click.option("--default", "make_default", is_flag=True, help="Make it the default remote.")
@click.option("--replace", is_flag=True, help="Replace a remote of the same name.")
@json_option
@click.pass_obj
@handle_errors
def remote_add(obj, name: str, url: str, endpoint_url: str | None, make_default: bool,
               replace: bool, as_json: bool) -> None:
    """Add a remote.  Example: cairn remote add origin s3://bucket/prefix"""
    from ..data.remotes import add_remote

    cfg = add_remote(_root(obj), name, url, endpoint_url=endpoint_url, default=make_default,
                     replace=replace)
    if as_json:
        emit_json(_remote_json(cfg))
    else:
        click.echo(f"remote {cfg.name} → {cfg.url}{' (default)' if cfg.default else ''}")


@remote.command("ls")
@json_option
@click.pass_obj
@handle_errors
def remote_ls(obj, as_json: bool) -> None:
    """List remotes; the default one is starred.  Example: cairn remote ls"""
    from ..data.remotes import list_remotes

    items = list_remotes(_root(obj))
    if as_json:
        emit_json([_remote_json(r) for r in items])
        return
    for r in items:
        where = f" ({r.endpoint_url})" if r.endpoint_url else ""
        click.echo(f"{'*' if r.default else ' '} {r.name}  {r.url}{where}")


def _remote_json(r: Any) -> dict[str, Any]:
    return {"name": r.name, "url": r.url, "endpoint_url": r.endpoint_url, "default": r.default}


@remote.command("delete")
@click.argument("name")
@json_option
@click.pass_obj
@handle_errors
def remote_rm(obj, name: str, as_json: bool) -> None:
    """Remove a remote (nothing on it is deleted).  Example: cairn remote delete origin"""
    from ..data.remotes import remove_remote

    remove_remote(_root(obj), name)
    if as_json:
        emit_json({"name": name, "removed": True})
    else:
        click.echo(f"removed remote {name}")


# -- cairn lineage ----------------------------------------------------------------------

@click.command()
@click.argument("ref")
@click.option("--downstream", "-d", is_flag=True, help="What was made from REF (default: "
                                                       "what REF was made from).")
@click.option("--depth", type=int, default=None, help="At most this many steps.")
@json_option
@click.pass_obj
@handle_errors
def lineage(obj, ref: str, downstream: bool, depth: int | None, as_json: bool) -> None:
    """Print the lineage of a data set version, run or model version as a tree.

    \b
    Examples:
      cairn lineage model:fraud@1.2.0
      cairn lineage transactions@3 --downstream
      cairn lineage run:RUN_ID        (a unique prefix of the id will do, as tables print it)
    """
    from ..lineage import render

    if ref.startswith("run:"):
        ref = "run:" + resolve_run(obj.client, ref[len("run:"):])
    graph = obj.client.lineage(ref, "downstream" if downstream else "upstream", depth)
    if as_json:
        emit_json(graph.to_dict())
        return
    console().print(render(graph))


hidden_alias(remote, "delete", "rm")  # the old spelling, out of the help, for a release
