"""A server that answers the mlflow client instantly: what the client alone costs.

``mlflow_client.py`` runs its workload a third time against this server to measure
the client's own share of each workload (building requests, HTTP, parsing answers
into protobuf and entities).  No server can make the client faster than that, so
``MLflow's time / this time`` is the largest ratio any server could reach.

The first request for each (method, path, page token) is forwarded to the real
server (``REPLAY_TARGET``) and its answer kept; every later request with the same
key gets the kept answer without any work.  The workload's untimed warm-up pass
fills the cache, so the timed passes parse exactly the bytes Cairn sent.

    REPLAY_TARGET=http://127.0.0.1:5000 python -m uvicorn replay_server:app --app-dir benchmarks
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs

import httpx

_TARGET = os.environ.get("REPLAY_TARGET", "")
_kept: dict[tuple, tuple[int, bytes]] = {}
_http: httpx.AsyncClient | None = None


def _key(method: str, path: str, query: bytes, body: bytes) -> tuple:
    token = parse_qs(query.decode()).get("page_token", [""])[0]
    if not token and body[:1] == b"{":
        try:
            token = json.loads(body).get("page_token") or ""
        except ValueError:  # not JSON after all: a key without a token
            pass
    return method, path, token


async def app(scope, receive, send) -> None:
    global _http
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    key = _key(scope["method"], scope["path"], scope["query_string"], body)
    if key not in _kept:
        _http = _http or httpx.AsyncClient(base_url=_TARGET, timeout=120)
        answer = await _http.request(scope["method"], scope["path"],
                                     params=scope["query_string"].decode(), content=body,
                                     headers={"content-type": "application/json"})
        _kept[key] = (answer.status_code, answer.content)
    status, content = _kept[key]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})
