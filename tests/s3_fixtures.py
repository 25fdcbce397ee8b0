"""A real S3-compatible server for tests: moto in server mode on a free loopback port."""

from __future__ import annotations

import secrets

import pytest


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer
    from serving import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    """One boto3 client for the session (making one takes most of a second)."""
    import boto3

    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1").client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def s3_env(monkeypatch):
    """Dummy AWS credentials (moto accepts any) for code that makes its own clients."""
    for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                 ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(k, v)


@pytest.fixture
def s3_bucket(s3_client, s3_env):
    """A fresh, empty bucket."""
    name = f"cairn-{secrets.token_hex(6)}"
    s3_client.create_bucket(Bucket=name)
    return name
