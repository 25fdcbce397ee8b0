"""`cairn webhooks` and `cairn events`: subscriptions, deliveries and the dispatcher, and
Cairn's events (a thin shell over :mod:`cairn.webhooks`)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from .format import ts
from .main import console, emit_json, handle_errors, json_option

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _seconds(text: str) -> float:
    m = _DURATION.fullmatch(text.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else 0.0


def _interval(text: str) -> float:
    seconds = _seconds(text)
    if not 0 < seconds <= 86400:
        raise click.BadParameter(f"{text!r}: give a duration such as 5s, 500ms, 2m (at most "
                                 "24h)", param_hint="--interval")
    return seconds


def _shown(url: str) -> str:
    """``url`` for a terminal: a ``user:password@``'s password as ``***`` (the terminal's
    scrollback and a pasted listing are no place for it; --json has the URL as it is)."""
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    userinfo, at, host = p.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return urlunsplit((p.scheme, f"{user}:***@{host}", p.path, p.query, p.fragment))


def _webhooks(obj: Any) -> Any:
    from ..webhooks.service import Webhooks

    return Webhooks(obj.client)


def _table(rows: list[list[str]], head: list[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(*head)
    for r in rows:  # as text, never markup: a receiver's answer or a filter may hold "[/]"
        t.add_row(*(Text(c) for c in r))
    console().print(t)


@click.group()
def webhooks() -> None:
    """Webhooks: Cairn's events POSTed, signed, to the URLs that subscribe to them.

    Deliveries are sent by `cairn webhooks dispatch` (run it beside the store, as a
    service); docs/webhooks.md lists the events and how a receiver checks a signature.

    \b
    Examples:
      cairn webhooks add https://ci.example.com/hook --event model_version.created
      cairn webhooks add https://hooks.slack.com/services/T/B/X --format slack --model fraud
      cairn webhooks deliveries --state dead
      cairn webhooks dispatch --interval 5s
    """


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, metavar="TYPE",
              help="An event type to send (repeat; default: every type).")
@click.option("--experiment", default=None, metavar="ID",
              help="Only events of this experiment (id or name).")
@click.option("--model", default=None, metavar="NAME", help="Only events of this model.")
@click.option("--format", "fmt", type=click.Choice(["json", "slack"]), default="json",
              show_default=True, help="The body: Cairn's JSON, or a Slack-compatible text.")
@click.option("--secret", default=None,
              help="The signing secret (default: a new one, printed once).")
@json_option
@click.pass_obj
@handle_errors
def add(obj, url: str, event_types: tuple[str, ...], experiment: str | None,
        model: str | None, fmt: str, secret: str | None, as_json: bool) -> None:
    """Subscribe URL to Cairn's events; prints the signing secret once.

    \b
    Examples:
      cairn webhooks add https://ci.example.com/hook --event run.failed --experiment fraud
      cairn webhooks add https://example.com/approvals --event transition.requested
    """
    sub = _webhooks(obj).subscribe(url, events=event_types, experiment_id=experiment,
                                   model=model, format=fmt, secret=secret)
    if as_json:
        emit_json(sub.to_dict())
        return
    click.echo(f"Subscribed {_shown(sub.url)}: {', '.join(sub.events) or 'every event'} "
               f"(subscription {sub.id})")
    click.echo(f"Signing secret (shown only now): {sub.secret}")


@webhooks.command("ls")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, as_json: bool) -> None:
    """List the subscriptions (secrets are never shown).

    \b
    Example:
      cairn webhooks ls --json
    """
    subs = _webhooks(obj).subscriptions()
    if as_json:
        emit_json([s.to_dict() for s in subs])
    elif not subs:
        click.echo("No webhook subscriptions; add one with `cairn webhooks add URL`.")
    else:
        _table([[s.id, _shown(s.url), ", ".join(s.events) or "*",
                 ", ".join(f"{k}={v}" for k, v in (("experiment", s.experiment_id),
                                                     ("model", s.model)) if v) or "-",
                 s.format, s.created_by, ts(s.created_at)] for s in subs],
               ["id", "url", "events", "filter", "format", "by", "created"])


@webhooks.command("delete")
@click.argument("subscription_id")
@json_option
@click.pass_obj
@handle_errors
def delete(obj, subscription_id: str, as_json: bool) -> None:
    """Delete a subscription; its pending deliveries are not sent.

    \b
    Example:
      cairn webhooks delete 5d1c0e0b9a0f4f7e8b2a6c3d4e5f6a7b
    """
    sub = _webhooks(obj).unsubscribe(subscription_id)
    if as_json:
        emit_json(sub.to_dict())
    else:
        click.echo(f"Deleted subscription {sub.id} ({_shown(sub.url)})")


def _delivery_rows(found: list[Any]) -> list[list[str]]:
    return [[d.id, d.event_type, str(d.event_seq), _shown(d.url), d.state, str(d.attempts),
             "-" if d.last_status is None else str(d.last_status),
             ts(d.delivered_at) if d.state == "delivered" else
             (ts(d.next_at) if d.state == "pending" else "-"),
             (d.last_error or "")[:60]] for d in found]


@webhooks.command("deliveries")
@click.option("--state", type=click.Choice(["pending", "delivered", "dead"]), default=None,
              help="Only deliveries in this state (dead: the dead letters).")
@click.option("--subscription", default=None, metavar="ID", help="Only this subscription's.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@click.pass_obj
@handle_errors
def deliveries(obj, state: str | None, subscription: str | None, limit: int,
               as_json: bool) -> None:
    """List deliveries, newest first, with their attempts and last error.

    \b
    Examples:
      cairn webhooks deliveries --state dead
      cairn webhooks deliveries --subscription 5d1c0e0b9a0f4f7e8b2a6c3d4e5f6a7b --json
    """
    found = _webhooks(obj).deliveries(state, limit, subscription)
    if as_json:
        emit_json([d.to_dict() for d in found])
    elif not found:
        click.echo("No deliveries.")
    else:
        _table(_delivery_rows(found), ["id", "event", "seq", "url", "state", "attempts",
                                       "status", "at / next", "last error"])


@webhooks.command("redeliver")
@click.argument("delivery_id")
@json_option
@click.pass_obj
@handle_errors
def redeliver(obj, delivery_id: str, as_json: bool) -> None:
    """Send a dead (or delivered) delivery again at the next dispatch.

    \b
    Example:
      cairn webhooks redeliver 9b8a7c6d5e4f40312a1b0c9d8e7f6a5b
    """
    d = _webhooks(obj).redeliver(delivery_id)
    if as_json:
        emit_json(d.to_dict())
    else:
        click.echo(f"Delivery {d.id} of event #{d.event_seq} ({d.event_type}) is pending again")


@webhooks.command("dispatch")
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--interval", default="5s", show_default=True,
              help="Time between rounds (5s, 500ms, 1m).")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=5.0, show_default=True,
              help="Seconds a receiver has to answer.")
@click.option("--max-attempts", type=click.IntRange(1, 100), default=6, show_default=True,
              help="Attempts before a delivery is dead.")
@click.option("--backoff", type=click.FloatRange(0.001, 3600), default=1.0, show_default=True,
              help="Seconds before the first retry; doubled after each failed attempt.")
@json_option
@click.pass_obj
@handle_errors
def dispatch(obj, once: bool, interval: str, timeout: float, max_attempts: int,
             backoff: float, as_json: bool) -> None:
    """Produce events, queue their deliveries and send what is due, every --interval.

    Several dispatchers may run at once; each delivery is sent by one of them at a time.

    \b
    Examples:
      cairn webhooks dispatch --once --json
      cairn webhooks dispatch --interval 10s --timeout 3
    """
    from ..webhooks.dispatch import Dispatcher

    pause = _interval(interval)
    d = Dispatcher(obj.client, timeout=timeout, max_attempts=max_attempts, backoff=backoff)

    def report(stats: Any) -> None:
        if as_json and once:
            emit_json(stats.to_dict())
        elif as_json:  # one line a round, for a log
            click.echo(json.dumps(stats.to_dict()), nl=True)
        elif once or stats.events or stats.sent:
            click.echo(f"{stats.events} new event(s), {stats.queued} delivery(ies) queued, "
                       f"{stats.sent} sent: {stats.delivered} delivered, {stats.failed} to "
                       f"retry, {stats.dead} dead")
        if not as_json and not once:
            for e in stats.errors:
                click.echo(f"Error: {e}", err=True)

    if once:
        stats = d.dispatch_once()
        report(stats)
        if stats.errors:
            for e in stats.errors:
                click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        return
    import signal

    def stop(signum: int, frame: Any) -> None:
        d.stop()  # the round in progress ends (its sends are bounded by --timeout)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread: the caller stops it
            pass
    try:
        d.run(pause, on_round=report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group()
def events() -> None:
    """Cairn's events: runs that ended, model versions, transitions, aliases, alerts.

    \b
    Examples:
      cairn events ls --type alias.moved
      cairn events ls --after 120 --json
    """


@events.command("ls")
@click.option("--type", "kind", default=None, metavar="TYPE", help="Only events of this type.")
@click.option("--after", type=click.IntRange(0), default=0, show_default=True, metavar="SEQ",
              help="Only events after this seq (page on with the last one shown).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@click.pass_obj
@handle_errors
def events_ls(obj, kind: str | None, after: int, limit: int, as_json: bool) -> None:
    """List events, oldest first (they are produced by `cairn webhooks dispatch`).

    \b
    Examples:
      cairn events ls --type run.failed
      cairn events ls --after 120 --limit 50 --json
    """
    found = _webhooks(obj).events(after, kind, limit)
    if as_json:
        emit_json([e.to_dict() for e in found])
    elif not found:
        click.echo("No events.")
    else:
        _table([[str(e.seq), ts(e.at), e.type, e.model or "-", e.experiment_id or "-",
                 _brief(e.payload)] for e in found],
               ["seq", "at", "type", "model", "experiment", "data"])


@events.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Forget what is older than this (30d, 12h; at least 1d).")
@json_option
@click.pass_obj
@handle_errors
def events_prune(obj, older_than: str, as_json: bool) -> None:
    """Forget old events and finished deliveries (pending ones always stay).

    \b
    Example:
      cairn events prune --older-than 30d
    """
    seconds = _seconds(older_than)
    if seconds <= 0:
        raise click.BadParameter(f"{older_than!r}: give an age such as 30d or 12h",
                                 param_hint="--older-than")
    gone = _webhooks(obj).prune(int(seconds * 1000))
    if as_json:
        emit_json(gone)
    else:
        click.echo(f"Pruned {gone['events']} event(s) and {gone['deliveries']} delivery(ies) "
                   f"older than {older_than}")


def _brief(payload: Any) -> str:
    keys = ("version", "alias", "to_stage", "run_id", "status", "rule", "by")
    return ", ".join(f"{k}={payload[k]}" for k in keys if payload.get(k) is not None)[:80]


def register(group: click.Group) -> None:
    """Add ``cairn webhooks`` and ``cairn events`` to ``group``."""
    group.add_command(webhooks)
    group.add_command(events)
