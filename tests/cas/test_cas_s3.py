"""The object-store suites again, on the S3 backend against a real S3-compatible server (moto).

The generic tests of test_cas_backends and test_cas_odb are imported here, so they run
with this module's ``backend`` fixture: every backend passes the same checks.
"""

from __future__ import annotations

import pytest
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from test_cas_backends import (  # noqa: F401  (collected again, on S3)
    test_backends_satisfy_protocol, test_concurrent_puts_of_one_oid, test_empty_object,
    test_iter_oids_and_delete, test_malformed_oid_is_rejected, test_missing_object_is_not_found,
    test_put_accepts_bytearray_and_memoryview_without_aliasing, test_put_existing_oid_replaces_harmlessly,
    test_put_get_round_trip,
)
from test_cas_odb import (  # noqa: F401
    test_checkout_replaces_existing_file, test_compressible_object_is_stored_smaller,
    test_file_round_trip, test_flipped_byte_in_compressed_object_detected,
    test_flipped_byte_in_small_file_detected, test_get_missing_and_malformed_oid,
    test_has_and_missing, test_object_whose_content_does_not_match_its_id_is_corrupt,
    test_put_bytes_is_idempotent, test_put_dir, test_read_missing_object_names_the_file,
    test_same_file_twice_is_one_object,
)

from cairn.cas import ObjectStore
from cairn.cas.backends.s3 import S3Backend, parse_s3_url
from cairn.errors import NotFound, StoreUnavailable


@pytest.fixture
def backend(s3_bucket, s3_client, s3_endpoint):  # noqa: F811
    return S3Backend(s3_bucket, "cairn/objects", endpoint_url=s3_endpoint, client=s3_client)


def test_layout_is_sharded_under_the_prefix(backend):
    store = ObjectStore(backend)
    oid = store.put_bytes(b"hello")
    keys = [o["Key"] for o in backend.client.list_objects_v2(Bucket=backend.bucket)["Contents"]]
    assert keys == [f"cairn/objects/{oid[:2]}/{oid[2:]}"]
    assert list(backend.iter_oids()) == [oid]
    assert backend.size(oid) == len(backend.get(oid))
    with pytest.raises(NotFound):
        backend.size("ab" * 32)


def test_many_objects_page_through_listing(s3_bucket, s3_client):  # noqa: F811
    backend = S3Backend(s3_bucket, "p", client=s3_client, page_size=7)
    store = ObjectStore(backend)
    oids = {store.put_bytes(str(i).encode()) for i in range(30)}  # several pages
    assert set(backend.iter_oids()) == oids


def test_url_parsing_and_unreachable_endpoint():
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError):
        parse_s3_url("http://x")
    from botocore.config import Config
    import boto3

    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x",
                                   region_name="us-east-1").client(
        "s3", endpoint_url="http://127.0.0.1:9", config=Config(retries={"max_attempts": 1},
                                                               connect_timeout=1))
    with pytest.raises(StoreUnavailable):
        S3Backend("b", client=client).exists("ab" * 32)
