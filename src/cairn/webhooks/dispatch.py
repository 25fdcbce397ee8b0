"""The dispatcher: produce events, fan them out to subscriptions, send what is due.

:meth:`Dispatcher.dispatch_once` does one round of each; ``cairn webhooks dispatch`` runs
rounds forever.  Any number of dispatchers may run at once: events are keyed by their
fact, deliveries by (source, event), and a delivery is sent only by the dispatcher whose
conditional UPDATE claimed it (``claimed_until``), so none is sent twice at the same time.
A claim lapses after the send's timeout (and a margin), so a dispatcher that died holding
one delays that delivery, never loses it.

A failed attempt (no answer within ``timeout``, a refused connection, any status but 2xx)
is retried after ``backoff * 2**(attempts-1)`` seconds (at most :data:`MAX_BACKOFF_S`);
after ``max_attempts`` the delivery is dead: kept, listed by ``cairn webhooks deliveries
--state dead`` and sent again by ``cairn webhooks redeliver``.  Nothing a receiver does
makes :meth:`dispatch_once` raise, and nothing in Cairn waits on a receiver: serving and
the registry only insert rows.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import sqlalchemy as sa

from .. import clock
from ..errors import InvalidArgument
from ..store.sql.tables_monitoring import events as E
from ..store.sql.tables_monitoring import webhook_subscriptions as S
from . import produce, repo, rules, send
from .base import IndexedService
from .entities import DispatchStats, Subscription
from .events import insert_delivery, lock_events

log = logging.getLogger(__name__)

FANOUT = "events.fanout"
# Events are looked at again this many seqs back: on PostgreSQL a seq is taken at insert
# and may become visible after a later one; the events lock (events.lock_events) makes the
# fan-out wait for those, and this look back is a second guard.
FANOUT_LOOKBACK = 200
FANOUT_PAGE = 1000
FANOUT_PAGES = 10  # pages one round fans out at most
AUDIT_PAGES = 10  # pages of the audit log one round reads at most (a backlog takes rounds)
SEND_BATCH = 100
SEND_WORKERS = 4
MAX_BACKOFF_S = 3600.0
CLAIM_MARGIN_MS = 30_000


def _positive(value: Any, field: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 < value <= high:
        raise InvalidArgument(f"{field} must be a number above 0 and at most {high:g}, got "
                              f"{value!r}")
    return float(value)


class Dispatcher(IndexedService):
    """Produces, fans out and sends webhook deliveries on ``store`` as ``user``."""

    def __init__(self, store: Any = None, user: str | None = "cairn-monitor", *,
                 timeout: float = 5.0, max_attempts: int = 6, backoff: float = 1.0) -> None:
        IndexedService.__init__(self, store, user)
        self._stop = threading.Event()
        self.timeout = _positive(timeout, "timeout", 600)
        self.max_attempts = rules.check_int(max_attempts, "max_attempts", 1, 100)
        self.backoff = _positive(backoff, "backoff", MAX_BACKOFF_S)

    def retry_delay_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th failed attempt."""
        return int(min(self.backoff * 2 ** min(attempts - 1, 40), MAX_BACKOFF_S) * 1000)

    # -- one round -----------------------------------------------------------------------
    def dispatch_once(self, now_ms: int | None = None) -> DispatchStats:
        """Produce new events, make their deliveries, send the due ones; what it did.

        Raises only for a store that cannot hold events (InvalidArgument) or a bad
        ``now_ms``; what else goes wrong is logged and listed in the stats' ``errors``."""
        now = clock.now_ms() if now_ms is None else rules.check_int(now_ms, "now_ms", 0, 2**62)
        self.store  # noqa: B018 - a store that cannot hold events is refused here, clearly
        errors: list[str] = []

        def step(name: str, fn: Callable[[int], Any], empty: Any) -> Any:
            # One step's failure (the database away, a run that will not read) is
            # reported, and the other steps still run: sending never waits on producing.
            try:
                return fn(now)
            except Exception as e:  # noqa: BLE001
                message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                log.error("webhooks: %s failed: %s", name, message)
                errors.append(f"{name}: {message}")
                return empty

        produced = step("producing events", self.produce, 0)
        queued = step("queueing deliveries", self.fan_out, 0)
        sent = step("sending deliveries", self.send_due, [])
        return DispatchStats(events=produced, queued=queued, sent=len(sent),
                             delivered=sent.count("delivered"), failed=sent.count("failed"),
                             dead=sent.count("dead"), errors=tuple(errors))

    def run(self, interval: float = 5.0, *, rounds: int | None = None,
            on_round: Callable[[DispatchStats], None] | None = None) -> None:
        """Dispatch every ``interval`` seconds (``rounds`` times, or until :meth:`stop`); a
        round that fails (the database away) is logged and the next one tries again."""
        interval = _positive(interval, "interval", 86400)
        # No clear() here: a stop() that came before the loop started (a signal while it
        # was being set up) must still end it.
        done = 0
        while (rounds is None or done < rounds) and not self._stop.is_set():
            started = time.monotonic()
            try:
                stats = self.dispatch_once()
                if on_round is not None:
                    on_round(stats)
            except Exception as e:  # noqa: BLE001 - the loop outlives a failed round
                log.warning("webhook dispatch round failed: %s", e)
            done += 1
            if rounds is not None and done >= rounds:
                return
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def stop(self) -> None:
        """End :meth:`run` after the round in progress (from a signal handler or a thread)."""
        self._stop.set()

    # -- (a) produce ---------------------------------------------------------------------
    def produce(self, now: int) -> int:
        """Events from the audit log and from runs that ended; how many were new."""
        with self.session(write=True) as conn:
            produce.start(conn, now)
        n = 0
        # Reads come first, outside the write transaction (a run lookup may touch the
        # index), then one transaction stores a page's events and moves the cursor.
        for _ in range(AUDIT_PAGES):
            with self.session() as conn:
                after = repo.cursor(conn, produce.AUDIT) or 0
                found, nxt = produce.audit_page(conn, after)
            if nxt == after:
                break
            found = produce.enrich(self.client, found)
            with self.session(write=True) as conn:
                repo.lock_cursor(conn, produce.AUDIT, after)
                n += produce.store(conn, found)
                repo.set_cursor(conn, produce.AUDIT, nxt)
        with self.session() as conn:
            since = repo.cursor(conn, produce.RUNS) or now
        # The look back (runs whose end reached the index late) and what ended since are
        # read apart: many runs in the look back must never keep the cursor from moving.
        again = [e for e in map(produce.run_event, produce.ended_runs(
            self.client, since - produce.RUN_LOOKBACK_MS, before_ms=since)) if e is not None]
        ahead = [e for e in map(produce.run_event, produce.ended_runs(self.client, since))
                 if e is not None]
        runs = again + ahead
        with self.session(write=True) as conn:
            repo.lock_cursor(conn, produce.RUNS, since)
            known = repo.existing_keys(conn, [e[0] for e in runs])
            n += produce.store(conn, [e for e in runs if e[0] not in known])
            newest = max((e[3] for e in ahead), default=since)
            repo.set_cursor(conn, produce.RUNS, min(max(newest, since), now))
        return n

    # -- (b) fan out ---------------------------------------------------------------------
    def fan_out(self, now: int | None = None) -> int:
        """Deliveries (due at ``now``) for the events past the fan-out cursor that a
        subscription wants; how many it made."""
        now = clock.now_ms() if now is None else now
        n = 0
        for _ in range(FANOUT_PAGES):
            made, moved = self._fan_out_page(now)
            n += made
            if not moved:
                break
        return n

    def _fan_out_page(self, now: int) -> tuple[int, bool]:
        """One page of the fan-out: deliveries made, and whether the cursor moved."""
        with self.session(write=True) as conn:
            # Every transaction that took a seq before this has committed once this lock
            # is held (see events.lock_events), so no event appears later below the cursor.
            lock_events(conn, exclusive=True)
            cur = repo.lock_cursor(conn, FANOUT, 0)
            subs = repo.live_subscriptions(conn)
            first = max(cur - FANOUT_LOOKBACK, 0)
            q = (sa.select(E.c.seq, E.c.type, E.c.at, E.c.experiment_id, E.c.model)
                 .where(E.c.seq > first).order_by(E.c.seq).limit(FANOUT_PAGE + FANOUT_LOOKBACK))
            rows = conn.execute(q).all()
            if not rows:
                return 0, False
            sources = [f"subscription:{sub.id}" for sub, _ in subs]
            have = repo.delivered_pairs(conn, sources, int(rows[0].seq)) if subs else set()
            n = 0
            for r in rows:
                for sub, secret in subs:
                    if not self._wants(sub, r):
                        continue
                    source = f"subscription:{sub.id}"
                    if (source, int(r.seq)) in have:
                        continue
                    made = insert_delivery(conn, source=source, event_seq=int(r.seq),
                                           event_type=r.type, url=sub.url, secret=secret,
                                           format=sub.format, now_ms=now,
                                           subscription_id=sub.id)
                    n += made is not None
            last = int(rows[-1].seq)
            repo.set_cursor(conn, FANOUT, last)
            return n, last > cur

    @staticmethod
    def _wants(sub: Subscription, event: Any) -> bool:
        # A subscription hears what happens after it is made, not the history before it.
        return int(event.at) >= sub.created_at and sub.matches(event.type, event.experiment_id,
                                                               event.model)

    # -- (c) send ------------------------------------------------------------------------
    def send_due(self, now: int) -> list[str]:
        """Send the deliveries due by ``now``; the outcome of each sent (delivered, failed,
        dead)."""
        with self.session() as conn:
            ids = repo.due(conn, now, SEND_BATCH)
        if not ids:
            return []
        with ThreadPoolExecutor(min(SEND_WORKERS, len(ids)),
                                thread_name_prefix="cairn-webhooks") as pool:
            results = list(pool.map(lambda i: self._send_one(i, now), ids))
        return [r for r in results if r is not None]

    def _send_one(self, delivery_id: str, now: int) -> str | None:
        try:
            return self._attempt(delivery_id, now)
        except Exception as e:  # noqa: BLE001 - one delivery's trouble never ends the round
            log.warning("webhook delivery %s: %s", delivery_id, e)
            return None

    def _attempt(self, delivery_id: str, now: int) -> str | None:
        # The claim runs from when it is taken (a batch's last send may start well after
        # the round's ``now``), so it outlasts this send whatever the batch before it did.
        until = max(now, clock.now_ms()) + int(self.timeout * 1000) + CLAIM_MARGIN_MS
        with self.session(write=True) as conn:
            row = repo.claim(conn, delivery_id, now, until)
            if row is None:
                return None  # another dispatcher has it
            ev = conn.execute(sa.select(E).where(E.c.seq == row.event_seq)).first()
            # A fan-out that read the subscriptions before an unsubscribe committed may
            # have queued this after it (PostgreSQL): never sent to a deleted subscription.
            gone = row.subscription_id is not None and conn.execute(
                sa.select(S.c.deleted_at).where(S.c.id == row.subscription_id)
            ).scalar_one_or_none() is not None
        attempts = int(row.attempts) + 1
        if gone:
            outcome = send.Outcome(False, None, "the subscription was deleted")
            attempts = self.max_attempts
        elif ev is None:
            outcome = send.Outcome(False, None, f"event #{row.event_seq} no longer exists")
            attempts = self.max_attempts  # nothing to retry
        else:
            try:
                payload = send.body(row.id, ev.type, int(ev.seq), int(ev.at),
                                    json.loads(ev.payload), row.format)
                hdrs = send.headers(row.id, ev.type, row.secret, payload)
            except (ValueError, TypeError) as e:  # raised here, it would hold the claim
                # and come back each time the claim lapsed, never dead
                outcome = send.Outcome(False, None, f"event #{row.event_seq} could not be "
                                       f"encoded: {type(e).__name__}: {str(e)[:200]}")
                attempts = self.max_attempts
            else:
                try:
                    rules.check_url(row.url)
                except InvalidArgument:
                    outcome = send.Outcome(False, None, "the URL is no longer a valid webhook "
                                           "url")
                    attempts = self.max_attempts
                else:
                    outcome = send.post(row.url, payload, hdrs, self.timeout)
        if outcome.ok:
            values: dict[str, Any] = {"state": "delivered", "delivered_at": now, "last_error": None}
            result = "delivered"
        elif attempts >= self.max_attempts:
            values, result = {"state": "dead"}, "dead"
        else:
            values = {"next_at": now + self.retry_delay_ms(attempts)}
            result = "failed"
        values.update(attempts=attempts, last_status=outcome.status)
        if not outcome.ok:
            values["last_error"] = outcome.error
        with self.session(write=True) as conn:
            if not repo.finish(conn, delivery_id, until, values):
                return None  # its claim lapsed and another dispatcher took it over
        return result
