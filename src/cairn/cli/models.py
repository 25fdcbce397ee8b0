"""`cairn models`: the model registry from the terminal (a thin shell over Client)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import click

from .format import ts
from .main import console, emit_json, handle_errors, hidden_alias, json_option


def mv_json(mv: Any) -> dict[str, Any]:
    d = dataclasses.asdict(mv)
    d["signature_bytes"] = None if mv.signature_bytes is None else mv.signature_bytes.hex()
    d["uri"] = mv.uri
    return d


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _when(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date-time such as 2026-05-01T12:00") from None


@click.group()
def models() -> None:
    """The model registry: versions, stages, approvals, aliases, rollback, integrity.

    \b
    Examples:
      cairn models versions fraud-detector
      cairn models request fraud-detector 1.3.0 production -m "beats 1.2.0 on AUC"
      CAIRN_USER=bob cairn models approve REQUEST_ID
      cairn models rollback fraud-detector --reason "latency regression"
    """


@models.command("ls")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, as_json: bool) -> None:
    """List registered models with their latest version, production version and aliases.

    \b
    Example:
      cairn models ls --json
    """
    found = obj.client.list_registered_models()
    if as_json:
        emit_json([_json(m) for m in found])
        return
    from rich.table import Table

    table = Table("name", "latest", "production", "staging", "aliases", "updated")
    for m in found:
        table.add_row(m.name, m.latest_version or "-", ", ".join(m.stages.get("Production", ())) or "-",
                      ", ".join(m.stages.get("Staging", ())) or "-",
                      ", ".join(f"@{a}={v}" for a, v in m.aliases.items()) or "-", ts(m.updated_at))
    console().print(table)


@models.command("show")
@click.argument("ref")
@json_option
@click.pass_obj
@handle_errors
def show(obj, ref: str, as_json: bool) -> None:
    """Show a model (NAME) or one version (NAME/1.3.0, NAME@production, NAME@champion).

    \b
    Example:
      cairn models show fraud-detector@production
    """
    if "/" not in ref and "@" not in ref:
        m = obj.client.get_registered_model(ref)
        policies = obj.client.get_stage_policies(ref)
        if as_json:
            emit_json({**_json(m), "policies": [_json(p) for p in policies]})
            return
        click.echo(f"{m.name}  latest {m.latest_version or '-'}  created {ts(m.created_at)} "
                   f"by {m.created_by}")
        for stage, versions in m.stages.items():
            click.echo(f"  {stage}: {', '.join(versions)}")
        for alias, version in m.aliases.items():
            click.echo(f"  @{alias} -> {version}")
        for p in policies:
            if p.approvals or p.approvers or p.exclusive:
                who = f" by {', '.join(p.approvers)}" if p.approvers else ""
                click.echo(f"  policy {p.stage}: {p.approvals} approval(s){who}"
                           + (", one version at a time" if p.exclusive else ""))
        return
    mv = obj.client.resolve_model(ref)
    if as_json:
        emit_json(mv_json(mv))
        return
    from ..registry.signature import describe

    code = (mv.lineage.get("code") or {}).get("commit")
    lines = [
        f"{mv.uri}  [{mv.stage}]" + (f"  aliases: {', '.join('@' + a for a in mv.aliases)}"
                                     if mv.aliases else ""),
        f"  flavor      {mv.flavor}",
        f"  created     {ts(mv.created_at)} by {mv.created_by}",
        f"  bump        {mv.bump}: {'; '.join(mv.bump_reasons)}",
        f"  parent      {mv.parent or '-'}",
        f"  source run  {mv.source_run_id or '-'}"
        + ("  (external: not a run of this store)" if (mv.lineage.get("run") or {}).get("external")
           else ""),
        f"  code        {code or '-'}",
        "  data sets   " + (", ".join(f"{d['name']}@{d.get('version')}" for d in mv.datasets) or "-"),
        f"  inputs      {describe((mv.signature or {}).get('inputs'))}",
        f"  outputs     {describe((mv.signature or {}).get('outputs'))}",
        "  metrics     " + (", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in sorted(mv.metrics.items())) or "-"),
        f"  digest      {mv.digest}",
        f"  tree        {mv.tree_oid}",
        f"  signed      {'key ' + mv.signing_key if mv.signing_key else 'no'}",
    ]
    source = mv.lineage.get("source") or {}
    if source.get("files") is False:
        lines.append(f"  files       none: registered from {source.get('uri')}, not copied")
    click.echo("\n".join(lines))


@models.command("versions")
@click.argument("name")
@click.option("--stage", default=None, help="Only versions in this stage.")
@json_option
@click.pass_obj
@handle_errors
def versions(obj, name: str, stage: str | None, as_json: bool) -> None:
    """List the versions of a model, newest first.

    \b
    Example:
      cairn models versions fraud-detector --stage archived
    """
    found = list(reversed(obj.client.list_model_versions(name, stage)))
    if as_json:
        emit_json([mv_json(mv) for mv in found])
        return
    from rich.table import Table

    table = Table("version", "stage", "aliases", "bump", "reasons", "run", "created", "by")
    for mv in found:
        table.add_row(mv.version, mv.stage, " ".join("@" + a for a in mv.aliases) or "-", mv.bump,
                      "; ".join(mv.bump_reasons), (mv.source_run_id or "-")[:8],
                      ts(mv.created_at), mv.created_by)
    console().print(table)


@models.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
@click.pass_obj
@handle_errors
def diff(obj, a: str, b: str, as_json: bool) -> None:
    """Compare two versions: signature, architecture, params, metrics, data, code, files.

    B may be a bare version of A's model.

    \b
    Example:
      cairn models diff fraud-detector/1.2.0 1.3.0
    """
    va = obj.client.resolve_model(a)
    vb = obj.client.resolve_model(b if ("/" in b or "@" in b) else f"{va.name}/{b}")
    if va.name != vb.name:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"diff compares versions of one model, not {va.name} and {vb.name}")
    d = obj.client.diff_model_versions(va.name, va.version, vb.version)
    if as_json:
        emit_json(d)
        return
    click.echo(f"{va.name}: {d['a']} -> {d['b']}  (would be a {d['suggested_bump']} bump)")
    for reason in d["reasons"]:
        click.echo(f"  - {reason}")
    for key, (x, y) in d["params"].items():
        click.echo(f"  param  {key}: {x} -> {y}")
    for key, (x, y) in d["metrics"].items():
        click.echo(f"  metric {key}: {x} -> {y}")
    for kind in ("added", "removed", "changed"):
        for path in d["files"][kind]:
            click.echo(f"  file   {kind:8} {path}")


def _show_request(req: Any, as_json: bool) -> None:
    if as_json:
        emit_json(_json(req))
        return
    got = sum(1 for a in req.approvals if a.decision == "approve")
    # Who asked and who decided are different people: "applied by alice" named the
    # requester though bob's approval applied it.
    resolved = f", {req.status} by {req.resolved_by}" if req.resolved_by else ""
    click.echo(f"request {req.id}: {req.name}/{req.version} {req.from_stage} -> {req.to_stage} "
               f"[{req.status}] requested by {req.requested_by}, approvals "
               f"{got}/{req.required}{resolved}")


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.argument("stage")
@click.option("-m", "--comment", default="", help="Why.")
@json_option
@click.pass_obj
@handle_errors
def promote(obj, name: str, version: str, stage: str, comment: str, as_json: bool) -> None:
    """Move a version to a stage directly (stages with an approval policy need `request`).

    \b
    Example:
      cairn models promote fraud-detector 1.3.0 staging -m "ready for shadow traffic"
    """
    mv = obj.client.transition_model_version_stage(name, version, stage, comment)
    if as_json:
        emit_json(mv_json(mv))
    else:
        click.echo(f"{mv.uri} is now in {mv.stage}")


@models.command("request")
@click.argument("name")
@click.argument("version")
@click.argument("stage")
@click.option("-m", "--comment", default="", help="Why this version should move.")
@json_option
@click.pass_obj
@handle_errors
def request(obj, name: str, version: str, stage: str, comment: str, as_json: bool) -> None:
    """Request a stage transition; it is applied once the stage's policy is met.

    \b
    Example:
      cairn models request fraud-detector 1.3.0 production -m "beats 1.2.0 on AUC"
    """
    _show_request(obj.client.request_transition(name, version, stage, comment), as_json)


@models.command("approve")
@click.argument("request_id")
@click.option("-m", "--comment", default="")
@json_option
@click.pass_obj
@handle_errors
def approve(obj, request_id: str, comment: str, as_json: bool) -> None:
    """Approve a pending transition request (as $CAIRN_USER; not your own).

    \b
    Example:
      CAIRN_USER=bob cairn models approve 3f2a9c1d7e4b -m ok
    """
    _show_request(obj.client.approve(request_id, comment), as_json)


@models.command("reject")
@click.argument("request_id")
@click.option("-m", "--comment", default="")
@json_option
@click.pass_obj
@handle_errors
def reject(obj, request_id: str, comment: str, as_json: bool) -> None:
    """Reject a pending transition request (its requester may withdraw it this way).

    \b
    Example:
      cairn models reject 3f2a9c1d7e4b -m "AUC drop on the holdout"
    """
    _show_request(obj.client.reject(request_id, comment), as_json)


@models.command("requests")
@click.argument("name", required=False)
@click.option("--status", type=click.Choice(["pending", "applied", "rejected", "all"]),
              default="pending", show_default=True)
@json_option
@click.pass_obj
@handle_errors
def requests(obj, name: str | None, status: str, as_json: bool) -> None:
    """List transition requests (pending by default).

    \b
    Example:
      cairn models requests fraud-detector --status all
    """
    found = obj.client.list_transition_requests(name, None if status == "all" else status)
    if as_json:
        emit_json([_json(r) for r in found])
        return
    for r in found:
        _show_request(r, False)
    if not found:
        click.echo("no requests")


@models.command("rollback")
@click.argument("name")
@click.option("--stage", default="production", show_default=True)
@click.option("--to", "to", default=None, help="Version to restore (default: the previous one).")
@click.option("--reason", default="", help="Why; recorded in the history and the audit log.")
@json_option
@click.pass_obj
@handle_errors
def rollback(obj, name: str, stage: str, to: str | None, reason: str, as_json: bool) -> None:
    """Restore the previous version of a stage in one audited step.

    \b
    Example:
      cairn models rollback fraud-detector --reason "latency regression"
    """
    mv = obj.client.rollback(name, stage, to, reason)
    if as_json:
        emit_json(mv_json(mv))
    else:
        click.echo(f"rolled back: {mv.uri} is in {mv.stage} again")


@models.command("history")
@click.argument("name")
@click.option("--version", default=None, help="Only this version's events.")
@click.option("--at", "at", default=None, help="Instead, show what was in --stage at this time.")
@click.option("--stage", default="production", show_default=True,
              help="With --at: a stage or @alias.")
@json_option
@click.pass_obj
@handle_errors
def history(obj, name: str, version: str | None, at: str | None, stage: str, as_json: bool) -> None:
    """Stage and alias changes, requests and approvals: who, when, why.

    \b
    Examples:
      cairn models history fraud-detector
      cairn models history fraud-detector --at 2026-05-01T12:00 --stage production
    """
    if at is not None:
        mv = obj.client.model_version_at(name, stage, _when(at))
        if as_json:
            emit_json(None if mv is None else mv_json(mv))
        else:
            click.echo(f"{stage} at {at}: {mv.uri if mv else 'nothing'}")
        return
    events = obj.client.model_history(name, version)
    if as_json:
        emit_json([_json(e) for e in events])
        return
    from rich.table import Table

    table = Table("time", "who", "event", "version", "change", "why")
    for e in events:
        if e.kind in ("alias", "alias_deleted"):
            change = f"@{e.alias}: {e.from_value or '-'} -> {e.to_value or '-'}"
        elif e.deployment:
            change = f"{_where(e)}: {e.from_value or '-'} -> {e.to_value or '-'}"
        elif e.from_value or e.to_value:
            change = f"{e.from_value or '-'} -> {e.to_value or '-'}"
        else:
            change = ""
        table.add_row(ts(e.time), e.actor, e.kind, e.version or "", change, e.reason)
    console().print(table)


def _where(e: Any) -> str:
    """A deployment event's deployment and arm, as `host:8080 (canary)`, escaped: rich would
    take a `[...]` in an id for markup and drop it."""
    from rich.markup import escape

    return escape(f"{e.deployment} ({e.arm or 'primary'})")


@models.command("deployments")
@click.argument("name")
@click.option("--deployment", default=None, help="Only this deployment's events (its id).")
@json_option
@click.pass_obj
@handle_errors
def deployments(obj, name: str, deployment: str | None, as_json: bool) -> None:
    """Starts, switches, rollbacks and stops of `cairn serve` deployments: who, when, why.

    \b
    Examples:
      cairn models deployments fraud-detector
      cairn models deployments fraud-detector --deployment host-1:8080 --json
    """
    events = obj.client.deployments(name, deployment)
    if as_json:
        emit_json([_json(e) for e in events])
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("time", "who", "event", "deployment", "arm", "version", "previous", "why")
    for e in events:
        table.add_row(ts(e.time), escape(e.actor), e.kind.removeprefix("deploy_"),
                      escape(e.deployment or ""), e.arm or "", e.version or "",
                      e.from_value or "-", escape(e.reason))
    console().print(table)


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", required=False)
@click.option("--delete", is_flag=True, help="Remove the alias.")
@json_option
@click.pass_obj
@handle_errors
def alias(obj, name: str, alias: str, version: str | None, delete: bool, as_json: bool) -> None:
    """Point an alias (e.g. champion) at a version, or remove it with --delete.

    \b
    Examples:
      cairn models alias fraud-detector champion 1.3.0
      cairn models alias fraud-detector champion --delete
    """
    from ..errors import InvalidArgument

    alias = alias.removeprefix("@")
    if delete:
        obj.client.delete_alias(name, alias)
        if as_json:
            emit_json({"name": name, "alias": alias, "deleted": True})
        else:
            click.echo(f"removed @{alias} from {name}")
        return
    if version is None:
        raise InvalidArgument("give the VERSION the alias should point at, or --delete")
    mv = obj.client.set_alias(name, alias, version)
    if as_json:
        emit_json(mv_json(mv))
    else:
        click.echo(f"{name}@{alias} -> {mv.version}")


@models.command("rename")
@click.argument("name")
@click.argument("new_name")
@json_option
@click.pass_obj
@handle_errors
def rename(obj, name: str, new_name: str, as_json: bool) -> None:
    """Rename a model with its versions, aliases, stages and history (audited).

    \b
    Example:
      cairn models rename fraud fraud-detector
    """
    m = obj.client.rename_registered_model(name, new_name)
    if as_json:
        emit_json(_json(m))
    else:
        click.echo(f"renamed {name} to {m.name}")


@models.command("delete")
@click.argument("name")
@click.argument("version", required=False)
@click.option("--force", is_flag=True,
              help="Also a version in Production (or a gated Staging) or with an alias; its "
                   "aliases go too. Model admins only on a server.")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, name: str, version: str | None, force: bool, as_json: bool) -> None:
    """Move one version of a model to the trash, or delete the model with all its versions
    for good (audited).

    A version in Production or with an alias is kept unless --force. A version in the
    trash is hidden, keeps its files, and comes back with `cairn models restore` until the
    trash is emptied; its number is never given again. Deleting a whole model is permanent
    (as in MLflow), its versions in the trash included.

    \b
    Examples:
      cairn models delete fraud-detector 1.2.0
      cairn models restore fraud-detector 1.2.0
      cairn models delete fraud-detector --force
    """
    if version is None:
        m = obj.client.delete_registered_model(name, force=force)
        if as_json:
            emit_json(_json(m))
        else:
            click.echo(f"deleted model {name} and its versions")
        return
    mv = obj.client.delete_model_version(name, version, force=force)
    if as_json:
        emit_json(mv_json(mv))
    else:
        click.echo(f"moved {mv.uri} to the trash (`cairn models restore {name} {mv.version}` "
                   "brings it back)")


@models.command("restore")
@click.argument("name")
@click.argument("version")
@json_option
@click.pass_obj
@handle_errors
def restore(obj, name: str, version: str, as_json: bool) -> None:
    """Bring a model version back from the trash (audited).

    It comes back in the stage it had, except that one deleted from Staging or Production
    comes back Archived; aliases a forced delete removed are not given back.

    \b
    Example:
      cairn models restore fraud-detector 1.2.0
    """
    mv = obj.client.restore_model_version(name, version)
    if as_json:
        emit_json(mv_json(mv))
    else:
        click.echo(f"restored {mv.uri} ({mv.stage})")


@models.command("verify")
@click.argument("ref")
@click.option("--trusted-key", "trusted", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A public key file to trust for this check (repeatable).")
@json_option
@click.pass_obj
@handle_errors
def verify(obj, ref: str, trusted: tuple[str, ...], as_json: bool) -> None:
    """Re-hash every file of a model's versions (NAME) or one version; check records and signatures.

    Exit status 1 when anything is damaged.

    \b
    Example:
      cairn models verify fraud-detector
    """
    if "/" in ref or "@" in ref:
        mv = obj.client.resolve_model(ref)
        reports = obj.client.verify_model(mv.name, mv.version, list(trusted) or None, progress=None)
    else:
        reports = obj.client.verify_model(ref, None, list(trusted) or None, progress=None)
    if as_json:
        emit_json([{**_json(r), "ok": r.ok} for r in reports])
    else:
        for r in reports:
            state = "ok" if r.ok else "DAMAGED"
            click.echo(f"{r.name}/{r.version}: {state} ({r.files} files, signature {r.signature})")
            for p in r.problems:
                click.echo(f"  {p}")
    if not all(r.ok for r in reports):
        raise SystemExit(1)


@models.command("policy")
@click.argument("name")
@click.argument("stage", required=False)
@click.option("--approvals", type=int, default=None, help="Approvals needed to enter STAGE.")
@click.option("--approver", "approvers", multiple=True,
              help="Who may approve (repeatable); default: anyone but the requester.")
@click.option("--exclusive/--no-exclusive", default=None,
              help="One version at a time in STAGE (the previous one is archived).")
@json_option
@click.pass_obj
@handle_errors
def policy(obj, name: str, stage: str | None, approvals: int | None, approvers: tuple[str, ...],
           exclusive: bool | None, as_json: bool) -> None:
    """Show a model's stage policies, or set one.

    \b
    Examples:
      cairn models policy fraud-detector
      cairn models policy fraud-detector production --approvals 2 --approver ann --approver bo
    """
    if stage is not None and (approvals is not None or approvers or exclusive is not None):
        current = {p.stage.lower(): p for p in obj.client.get_stage_policies(name)}
        old = current.get(stage.lower())
        obj.client.set_stage_policy(name, stage,
                                    approvals if approvals is not None else (old.approvals if old else 0),
                                    list(approvers) or (old.approvers if old else None), exclusive)
    found = obj.client.get_stage_policies(name)
    if as_json:
        emit_json([_json(p) for p in found])
        return
    for p in found:
        who = ", ".join(p.approvers) if p.approvers else "anyone but the requester"
        click.echo(f"{p.stage:12} approvals {p.approvals} ({who})"
                   + ("; one version at a time" if p.exclusive else ""))


@models.command("naming")
@click.option("--template", default=None, help="e.g. '{project}_{model_type}'.")
@click.option("--regex", default=None, help="A regular expression new names must match.")
@click.option("--clear", is_flag=True, help="Remove the naming policy.")
@json_option
@click.pass_obj
@handle_errors
def naming(obj, template: str | None, regex: str | None, clear: bool, as_json: bool) -> None:
    """Show or set the registry's naming policy for new models.

    \b
    Example:
      cairn models naming --template '{project}_{model_type}'
    """
    if clear or template is not None or regex is not None:
        pol = obj.client.set_naming_policy(template, regex)
    else:
        pol = obj.client.get_naming_policy()
    if as_json:
        emit_json(None if pol is None else pol.to_json())
    else:
        click.echo("no naming policy" if pol is None else f"naming policy: {pol.describe()}")


@models.command("get")
@click.argument("ref")
@click.argument("dst", type=click.Path(file_okay=False))
@json_option
@click.pass_obj
@handle_errors
def download(obj, ref: str, dst: str, as_json: bool) -> None:
    """Copy a version's files (verified) into DST (`get`, as `artifacts get` and `data get`).

    \b
    Example:
      cairn models get fraud-detector@production ./model
    """
    path = obj.client.download_model(ref, dst, progress=None)
    if as_json:
        emit_json({"ref": ref, "path": str(path)})
    else:
        click.echo(f"{ref} -> {path}")


hidden_alias(models, "get", "download")
