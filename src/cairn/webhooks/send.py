"""One attempt at one delivery: the request's body and headers, and a POST bounded by a
timeout that never raises.

The body is JSON: ``{"id", "type", "seq", "at", "data"}`` (``format="json"``) or
``{"text": ...}`` for a Slack-compatible incoming webhook (``format="slack"``); either is
signed (:mod:`.signing`).  Only the standard library (``urllib``): a dispatcher needs no
server extra.
"""

from __future__ import annotations

import functools

import base64
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from .entities import iso
from .signing import sign

MAX_ERROR = 500  # characters of a failure kept in last_error


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


def summary(kind: str, data: Mapping[str, Any]) -> str:
    """One line a person reads in a chat channel."""
    model, version = data.get("model"), data.get("version")
    mv = f"{model}/{version}" if version else f"{model}"
    by = f" by {data['by']}" if data.get("by") else ""
    if kind.startswith("run."):
        name = data.get("run_name") or data.get("run_id")
        return (f"Run {name} ({data.get('run_id')}) in experiment "
                f"{data.get('experiment') or data.get('experiment_id')} ended "
                f"{data.get('status')}")
    if kind == "model_version.created":
        return f"Model version {mv} registered{by}"
    if kind == "transition.requested":
        need, who = data.get("approvals_needed"), data.get("approvers")
        text = f"Transition of {mv} to {data.get('to_stage')} requested{by}"
        if need:
            text += f"; it waits for {need} approval(s)"
            if who:
                text += f" by {', '.join(map(str, who))}"
            text += f" (request {data.get('request')})"
        return text
    if kind in ("transition.approved", "transition.rejected"):
        return f"Transition request {data.get('request')} for {mv} {kind[11:]}{by}"
    if kind == "stage.changed":
        what = "rolled back to" if data.get("rollback") else "moved to"
        return f"{mv} {what} {data.get('to_stage')} (from {data.get('from_stage')}){by}"
    if kind == "alias.moved":
        return f"Alias {model}@{data.get('alias')} now points to {data.get('version')}{by}"
    if kind == "alias.deleted":
        return f"Alias {model}@{data.get('alias')} removed{by}"
    if kind.startswith("alert."):
        state = "FIRING" if kind == "alert.firing" else "resolved"
        rule = data.get("rule", "?")
        text = f"[{state}] alert {rule} on {model}"
        if data.get("condition"):
            text += f": {data['condition']}"
        values = data.get("values")
        if isinstance(values, dict) and values:
            text += " (" + ", ".join(f"{k}={v}" for k, v in list(values.items())[:5]) + ")"
        return text
    if kind == "deployment.changed":
        return (f"Deployment {data.get('deployment')} ({data.get('arm')}): "
                f"{data.get('event')} {mv}{by}")
    return f"{kind}: {mv}{by}"


def body(delivery_id: str, kind: str, seq: int, at_ms: int, data: Mapping[str, Any],
         fmt: str) -> bytes:
    if fmt == "slack":
        # Slack reads <!channel>, <@user> and <url|label> in a text: a run's or a rule's
        # name must not ping a channel or dress a link, so &, < and > go as Slack asks.
        text = summary(kind, data).replace("&", "&amp;").replace("<", "&lt;")
        doc: dict[str, Any] = {"text": text.replace(">", "&gt;")}
    else:
        doc = {"id": delivery_id, "type": kind, "seq": seq, "at": iso(at_ms), "data": data}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cairn")
    except PackageNotFoundError:  # a source checkout without metadata
        return "unknown"


def headers(delivery_id: str, kind: str, secret: str, payload: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "Cairn-Event": kind,
            "Cairn-Delivery": delivery_id, "Cairn-Signature": sign(secret, payload),
            "User-Agent": f"cairn/{_version()}"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: a webhook's URL says where it goes."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Connections:
    """The sockets one send opens, so that the send can be cut off from outside: a
    receiver that trickles its answer never ends a read within urllib's timeout (which is
    per socket operation), and would hold the send's thread and socket for as long as it
    likes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.closed = False

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.socks.append(sock)
            closed = self.closed
        if closed:  # cut off while it connected
            self._shut(sock)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            socks = list(self.socks)
        for sock in socks:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in the send's thread
        except OSError:
            pass


def _opener(conns: _Connections) -> urllib.request.OpenerDirector:
    class Plain(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            conns.add(self.sock)

    class Secure(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            conns.add(self.sock)

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(Plain, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(Secure, req,
                                context=self._context)  # type: ignore[attr-defined]

    return urllib.request.build_opener(_NoRedirect, HTTP, HTTPS)


def _credentials(url: str) -> tuple[str, dict[str, str], list[str]]:
    """``url`` without its ``user:password@`` (urllib would take it for the host and port),
    the Basic ``Authorization`` header it stands for, and the texts an error must not show
    (the URL's path and query are themselves a credential for a chat webhook)."""
    p = urlsplit(url)
    secret = [url] + [t for t in (p.path, p.query) if len(t) >= 8]
    if "@" not in p.netloc:
        return url, {}, secret
    userinfo, _, host = p.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode("utf-8"))
    secret += [t for t in (userinfo, user, password, unquote(user), unquote(password))
               if len(t) > 1]
    return (urlunsplit((p.scheme, host, p.path, p.query, p.fragment)),
            {"Authorization": "Basic " + token.decode("ascii")}, secret)


def _scrub(text: str, secret: list[str]) -> str:
    for t in sorted(secret, key=len, reverse=True):
        text = text.replace(t, "***")
    return text


def _post(url: str, payload: bytes, hdrs: Mapping[str, str], timeout: float,
          conns: _Connections) -> Outcome:
    url, auth, secret = _credentials(url)
    outcome = _post_plain(url, payload, {**hdrs, **auth}, timeout, conns)
    if outcome.error is None:
        return outcome
    return Outcome(outcome.ok, outcome.status, _scrub(outcome.error, secret)[:MAX_ERROR])


def _post_plain(url: str, payload: bytes, hdrs: Mapping[str, str], timeout: float,
                conns: _Connections) -> Outcome:
    req = urllib.request.Request(url, data=payload, headers=dict(hdrs), method="POST")
    try:
        with _opener(conns).open(req, timeout=timeout) as resp:
            resp.read(65536)
            status = int(resp.status)
    except urllib.error.HTTPError as e:
        try:
            text = e.read(MAX_ERROR).decode("utf-8", "replace")
        except Exception:
            text = ""
        return Outcome(False, int(e.code), f"HTTP {e.code} {e.reason}: {text}"[:MAX_ERROR])
    except Exception as e:  # refused, reset, DNS, TLS, socket timeout: all a failed attempt
        reason = getattr(e, "reason", None) or e
        return Outcome(False, None, f"{type(e).__name__}: {reason}"[:MAX_ERROR])
    if 200 <= status < 300:
        return Outcome(True, status, None)
    return Outcome(False, status, f"HTTP {status}")


def post(url: str, payload: bytes, hdrs: Mapping[str, str], timeout: float) -> Outcome:
    """POST ``payload``; the outcome within ``timeout`` seconds in all (urllib's own timeout
    is per socket operation, so a receiver that trickles its answer is cut off here)."""
    result: list[Outcome] = []
    conns = _Connections()
    worker = threading.Thread(
        target=lambda: result.append(_post(url, payload, hdrs, timeout, conns)),
        name="cairn-webhook-send", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        conns.close()  # the thread's read fails now, and it ends
        return Outcome(False, None, f"timed out after {timeout:g}s")
    return result[0]
