"""`cairn retention`: what to keep of an experiment's runs and a data set's versions, and
how long a run's artifacts live (:mod:`cairn.lifecycle.retention`)."""

from __future__ import annotations

from typing import Any

import click

from .format import ts
from .main import emit_json, handle_errors, json_option, resolve_run


@click.group()
def retention() -> None:
    """Retention policies and artifact TTL, applied by `cairn gc`.

    Nothing is removed at once: what a policy does not keep goes to the trash, which is
    emptied after CAIRN_TRASH_DAYS.  A policy that would trash what a Production or
    aliased model version needs is refused.

    \b
    Examples:
      cairn retention set --experiment demo --keep-last 20 --keep-days 90
      cairn retention set --dataset transactions --keep-last 5
      cairn retention plan
      cairn retention ttl RUN_ID 7
    """


def _target(experiment: str | None, dataset: str | None) -> tuple[str, str]:
    from ..errors import InvalidArgument

    if (experiment is None) == (dataset is None):
        raise InvalidArgument("give one of --experiment NAME_OR_ID or --dataset NAME")
    return ("experiment", experiment) if experiment is not None else ("dataset", dataset or "")


def _which(fn: Any) -> Any:
    fn = click.option("--dataset", default=None, metavar="NAME", help="A data set's name.")(fn)
    return click.option("--experiment", default=None, metavar="NAME_OR_ID",
                        help="An experiment's name or id.")(fn)


def _print_record(rec: Any) -> None:
    click.echo(f"{rec.kind} {rec.label or rec.target}: {rec.policy.describe()} "
               f"(set by {rec.updated_by}, {ts(rec.updated_at)})")


@retention.command("set")
@_which
@click.option("--keep-days", type=int, default=None, metavar="N",
              help="Trash runs (versions) older than N days.")
@click.option("--keep-last", type=int, default=None, metavar="N",
              help="Keep the newest N runs (versions) whatever their age.")
@click.option("--artifacts-ttl-days", type=int, default=None, metavar="N",
              help="A run's artifacts expire N days after it ended (experiments).")
@click.option("--keep-registered/--no-keep-registered", default=True, show_default=True,
              help="Keep what a live registered model version was made from.")
@click.option("--keep-tagged", default="keep", show_default=True, metavar="TAG",
              help="The run tag that keeps a run.")
@click.option("--no-keep-tagged", is_flag=True, help="No tag keeps a run.")
@json_option
@click.pass_obj
@handle_errors
def set_(obj, experiment: str | None, dataset: str | None, keep_days: int | None,
         keep_last: int | None, artifacts_ttl_days: int | None, keep_registered: bool,
         keep_tagged: str, no_keep_tagged: bool, as_json: bool) -> None:
    """Set (replace) the retention policy of an experiment or a data set.

    \b
    Example:
      cairn retention set --experiment demo --keep-last 20 --artifacts-ttl-days 30
    """
    from ..lifecycle import retention as R

    kind, target = _target(experiment, dataset)
    policy = R.Policy(keep_days=keep_days, keep_last=keep_last, keep_registered=keep_registered,
                      keep_tagged=None if no_keep_tagged else keep_tagged,
                      artifacts_ttl_days=artifacts_ttl_days)
    rec = R.set_policy(obj.client.store, kind, target, policy, actor=obj.client.user)
    if as_json:
        emit_json(rec.to_dict())
    else:
        _print_record(rec)


@retention.command("show")
@_which
@json_option
@click.pass_obj
@handle_errors
def show(obj, experiment: str | None, dataset: str | None, as_json: bool) -> None:
    """Show the retention policy of an experiment or a data set.

    \b
    Example:
      cairn retention show --experiment demo --json
    """
    from ..lifecycle import retention as R

    kind, target = _target(experiment, dataset)
    rec = R.get_policy(obj.client.store, kind, target)
    if as_json:
        emit_json(None if rec is None else rec.to_dict())
    elif rec is None:
        click.echo(f"{kind} {target} has no retention policy: everything is kept")
    else:
        _print_record(rec)


@retention.command("ls")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, as_json: bool) -> None:
    """List every retention policy.

    \b
    Example:
      cairn retention ls --json
    """
    from ..lifecycle import retention as R

    found = R.list_policies(obj.client.store)
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    for rec in found:
        _print_record(rec)
    if not found:
        click.echo("no retention policies: everything is kept until deleted by hand")


@retention.command("unset")
@_which
@json_option
@click.pass_obj
@handle_errors
def unset(obj, experiment: str | None, dataset: str | None, as_json: bool) -> None:
    """Remove the retention policy of an experiment or a data set.

    \b
    Example:
      cairn retention unset --experiment demo
    """
    from ..lifecycle import retention as R

    kind, target = _target(experiment, dataset)
    rec = R.unset_policy(obj.client.store, kind, target, actor=obj.client.user)
    if as_json:
        emit_json(rec.to_dict())
    else:
        click.echo(f"removed the retention policy of {kind} {rec.label or rec.target}")


@retention.command("plan")
@json_option
@click.pass_obj
@handle_errors
def plan(obj, as_json: bool) -> None:
    """Show what applying the policies now would do, and why (changes nothing).

    \b
    Example:
      cairn retention plan --json
    """
    from ..lifecycle import retention as R

    actions = R.plan(obj.client.store)
    if as_json:
        emit_json([a.to_dict() for a in actions])
        return
    for a in actions:
        when = f" (expires {R.iso(a.expires_at)})" if a.expires_at is not None else ""
        click.echo(f"{a.kind}  {a.target}{when}  [{a.policy}] {a.reason}")
    if not actions:
        click.echo("nothing to do")


@retention.command("ttl")
@click.argument("run_id")
@click.argument("days")
@json_option
@click.pass_obj
@handle_errors
def ttl(obj, run_id: str, days: str, as_json: bool) -> None:
    """Make a run's artifacts expire DAYS after it ended ("none" removes the run's TTL).

    \b
    Examples:
      cairn retention ttl 3f2a 7
      cairn retention ttl 3f2a none
    """
    from ..errors import InvalidArgument
    from ..lifecycle import retention as R

    if days.strip().lower() == "none":
        n = None
    else:
        try:
            n = int(days)
        except ValueError:
            raise InvalidArgument(f"DAYS must be a whole number of days or 'none', got {days!r}") \
                from None
    client = obj.client
    rid = resolve_run(client, run_id)
    when = R.set_artifacts_ttl(client.store, rid, n, actor=client.user)
    if as_json:
        emit_json({"run_id": rid, "ttl_days": n, "expires": when})
    elif when is None:
        click.echo(f"run {rid}: its own artifact TTL removed")
    else:
        click.echo(f"run {rid}: artifacts expire {R.iso(when)}")
