from __future__ import annotations

import click

from .format import report_verify
from .main import console, emit_json, handle_errors, json_option, resolve_run


@click.group()
def artifacts() -> None:
    """List, download and verify run artifacts.

    RUN_ID may be a unique prefix of a run id.
    """


@artifacts.command("ls")
@click.argument("run_id")
@click.argument("path", default="")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, run_id: str, path: str, as_json: bool) -> None:
    """List a run's artifacts, optionally only those under PATH.

    \b
    Example:
      cairn artifacts ls RUN_ID model/
    """
    entries = obj.client.list_artifacts(resolve_run(obj.client, run_id), path)
    if as_json:
        emit_json([{"path": e.path, "size": e.size, "digest": e.digest, "chunks": len(e.chunks)}
                   for e in entries])
        return
    from rich.table import Table

    table = Table("path", "size", "sha256")
    for e in entries:
        table.add_row(e.path, f"{e.size:,}", e.digest[:16])
    console().print(table)


@artifacts.command("get")
@click.argument("run_id")
@click.argument("path", default="")
@click.option("--dst", "-d", default=".", show_default=True, help="Destination directory.")
@json_option
@click.pass_obj
@handle_errors
def get(obj, run_id: str, path: str, dst: str, as_json: bool) -> None:
    """Download artifacts (all, or those under PATH), verified byte for byte.

    Files land at DST/<artifact path>.

    \b
    Example:
      cairn artifacts get RUN_ID model -d out/
    """
    rid = resolve_run(obj.client, run_id)
    out = obj.client.download_artifacts(rid, path, dst, progress=None)
    if as_json:  # the files written, by artifact path: each is at DST/<path>
        emit_json({"run_id": rid, "path": path, "destination": str(out),
                   "files": [e.path for e in obj.client.list_artifacts(rid, path)]})
    else:
        click.echo(f"Downloaded to {out}")


@artifacts.command("verify")
@click.argument("run_id", required=False)
@json_option
@click.pass_obj
@handle_errors
def verify(obj, run_id: str | None, as_json: bool) -> None:
    """Re-hash stored objects (all, or one run's) and report corruption; exit 1 if any.

    \b
    Examples:
      cairn artifacts verify            # every object in the store
      cairn artifacts verify RUN_ID     # only this run's artifacts
    """
    res = obj.client.verify_artifacts(None if run_id is None else resolve_run(obj.client, run_id),
                                      progress=None)
    report_verify(res, as_json)
