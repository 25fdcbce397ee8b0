"""Review of gc on S3: the repack's age check reads one object's time (``ages``)."""

from __future__ import annotations

import time

import pytest
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)

from cairn.lifecycle.gc import _young
from cairn.server.serve import open_objects


@pytest.mark.slow  # the moto S3 server
def test_an_s3_objects_age_is_read_for_the_repack_check(s3_endpoint, s3_bucket):  # noqa: F811
    objects = open_objects(f"s3://{s3_bucket}/review", s3_endpoint)
    oid = objects.put_bytes(b"a pack, say" * 50)
    absent = "0" * 64
    now_ns = time.time_ns()
    from cairn.cas.backends.base import capability

    rows = list(capability(objects.backend, "ages")([oid, absent]))
    assert [r[0] for r in rows] == [oid] and rows[0][1] > 0
    assert abs(rows[0][2] - now_ns) < 120 * 10**9
    assert _young(objects.backend, oid, now_ns - 3600 * 10**9)  # modified after the cut-off
    assert not _young(objects.backend, oid, now_ns + 3600 * 10**9)
    assert _young(objects.backend, absent, now_ns)  # unknown: left alone
