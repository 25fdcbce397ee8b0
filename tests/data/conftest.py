"""Fixtures for the data tests: a client on a fresh store, files to version, an S3 server."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

import cairn

PAST = 1_600_000_000  # an mtime well before any test runs: no file is "racily clean"


def make_tree(root: Path, files: dict[str, bytes], *, old: bool = True) -> Path:
    """Write ``files`` (relative path -> bytes) under ``root``; mtimes in the past by default."""
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if old:
            os.utime(p, (PAST, PAST))
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """(content, mtime_ns, mode) of every file under root: to prove user files are untouched."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def ds(client):
    """The data API (cairn.data.Datasets) on a fresh local store."""
    return client.data


@pytest.fixture
def small_tree(tmp_path):
    files = {f"part{i % 3}/f{i:03d}.txt": f"row {i}\n".encode() * (i % 7 + 1) for i in range(60)}
    files["table.csv"] = b"id,amount,label\n1,10.5,a\n2,20.0,b\n3,,a\n"
    return make_tree(tmp_path / "src", files)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server on a free loopback port, for the whole session."""
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    server.stop()


@pytest.fixture
def bucket(s3_server, request):
    """A new, empty bucket on the S3 server; returns (endpoint_url, bucket name)."""
    import boto3

    name = "b" + request.node.name.lower().replace("_", "-")[:40].strip("-") + \
        f"-{time.time_ns() % 10**6}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return s3_server, name


@pytest.fixture
def other(tmp_path):
    """A client on a second, independent store (a colleague who pulls)."""
    from cairn.store import close_store

    root = tmp_path / "other-store"
    yield cairn.Client(str(root))
    close_store(str(root))
