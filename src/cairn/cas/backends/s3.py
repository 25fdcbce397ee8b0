"""S3-compatible backend: one object per oid at ``<prefix>/ab/cdef…`` in a bucket.

Each method is one S3 call (``put_object``, ``get_object``, ``head_object``,
``list_objects_v2``, ``delete_object``).  A PUT is atomic in S3, so readers see a
whole object or none, and two writers of one oid store identical bytes.  Works with
AWS, MinIO, Ceph, moto and the like (``endpoint_url``).  Needs ``boto3``
(``pip install 'cairn[server]'``), imported when the backend is made.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ...errors import MissingDependency, NotFound, StoreUnavailable
from .base import check_oid, is_oid


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


class S3Backend:
    """Objects in ``bucket`` under ``prefix``; ``client`` may be passed in (tests, custom auth)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region_name: str | None = None, client: Any = None,
                 max_connections: int = 32, page_size: int = 1000) -> None:
        self.bucket = bucket
        self.page_size = page_size
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:  # pragma: no cover - depends on the environment
                raise MissingDependency("the S3 backend needs boto3: pip install 'cairn[server]'") \
                    from None
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region_name,
                config=Config(max_pool_connections=max_connections,
                              retries={"max_attempts": 5, "mode": "standard"}))
        self.client = client

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "S3Backend":
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, **kw)

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Backend('s3://{self.bucket}/{self.prefix}'{where})"

    def key(self, oid: str) -> str:
        check_oid(oid)
        rel = f"{oid[:2]}/{oid[2:]}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _call(self, fn: Callable[..., Any], oid: str | None = None, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kw)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchKey", "NotFound") or status == 404:
                raise NotFound(f"object {oid} not found in s3://{self.bucket}/{self.prefix}",
                               oid=oid) from None
            raise StoreUnavailable(f"S3 request failed for s3://{self.bucket}: {code} "
                                   f"{exc.response.get('Error', {}).get('Message', '')}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"S3 at {self.endpoint_url or 'AWS'} is unreachable: {exc}") \
                from None

    def put(self, oid: str, data: bytes) -> None:
        self._call(self.client.put_object, oid, Key=self.key(oid), Body=bytes(data))

    def get(self, oid: str) -> bytes:
        resp = self._call(self.client.get_object, oid, Key=self.key(oid))
        return resp["Body"].read()

    def exists(self, oid: str) -> bool:
        try:
            self._call(self.client.head_object, oid, Key=self.key(oid))
        except NotFound:
            return False
        return True

    def iter_oids(self) -> Iterator[str]:
        return (oid for oid, _size, _ns in self.scan())

    def delete(self, oid: str) -> None:
        if not self.exists(oid):  # S3 deletes of absent keys succeed silently
            raise NotFound(f"object {oid} not found in s3://{self.bucket}/{self.prefix}", oid=oid)
        self._call(self.client.delete_object, oid, Key=self.key(oid))

    def size(self, oid: str) -> int:
        resp = self._call(self.client.head_object, oid, Key=self.key(oid))
        return int(resp["ContentLength"])

    # -- garbage collection (cairn.cas.backends.base.Sweepable) ------------------

    def freshen(self, oid: str) -> bool:
        """Make ``oid`` young again: a copy onto itself sets its LastModified to now
        (one request, no bytes through the client).  ``False`` when it is absent."""
        from botocore.exceptions import ClientError

        key = self.key(oid)
        try:
            self._call(self.client.copy_object, oid, Key=key,
                       CopySource={"Bucket": self.bucket, "Key": key},
                       MetadataDirective="REPLACE")
        except NotFound:
            return False
        except StoreUnavailable as exc:
            # Refused (read-only credentials, say): answer as ``exists`` did; the grace
            # period still protects the object.  Unreachable S3 is an error as before.
            if not isinstance(exc.__context__, ClientError):
                raise
            return self.exists(oid)
        return True

    def clock_ns(self) -> int:
        """Now, by the S3 server's clock (a marker object's LastModified, whole seconds):
        what the objects' times are compared with, whatever this machine's clock says."""
        key = f"{self.prefix}/.cairn-gc-clock" if self.prefix else ".cairn-gc-clock"
        self._call(self.client.put_object, None, Key=key, Body=b"")
        return _ns(self._call(self.client.head_object, None, Key=key)["LastModified"])

    def scan(self) -> Iterator[tuple[str, int, int]]:
        """``(oid, size, LastModified ns)`` of every object, 1,000 per listing request."""
        start = f"{self.prefix}/" if self.prefix else ""
        token = None
        while True:
            kw: dict[str, Any] = {"Prefix": start, "MaxKeys": self.page_size}
            if token:
                kw["ContinuationToken"] = token
            page = self._call(self.client.list_objects_v2, **kw)
            for item in page.get("Contents", ()):
                rel = item["Key"][len(start):]
                oid = rel.replace("/", "", 1)
                if len(rel) == 65 and rel[2] == "/" and is_oid(oid):
                    yield oid, int(item["Size"]), _ns(item["LastModified"])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def ages(self, oids: list[str]) -> Iterator[tuple[str, int, int]]:
        """``(oid, size, LastModified ns)`` of those ``oids`` still stored (a HEAD each)."""
        for oid in oids:
            try:
                head = self._call(self.client.head_object, oid, Key=self.key(oid))
            except NotFound:
                continue
            yield oid, int(head["ContentLength"]), _ns(head["LastModified"])

    def remove_old(self, oids: list[str], before_ns: int) -> list[tuple[str, int]]:
        """Delete those of ``oids`` still last modified before ``before_ns``: each is
        re-checked (HEAD, in parallel) right before a batch ``delete_objects`` of up to
        1,000 keys.  LastModified has whole seconds, so a second's doubt keeps an object."""
        from concurrent.futures import ThreadPoolExecutor

        def old_size(oid: str) -> int | None:
            try:
                head = self._call(self.client.head_object, oid, Key=self.key(oid))
            except NotFound:
                return None
            if _ns(head["LastModified"]) + 1_000_000_000 > before_ns:
                return None
            return int(head["ContentLength"])

        removed: list[tuple[str, int]] = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for i in range(0, len(oids), 1000):
                batch = oids[i:i + 1000]
                sizes = dict(zip(batch, pool.map(old_size, batch)))
                doomed = [o for o in batch if sizes[o] is not None]
                if not doomed:
                    continue
                resp = self._call(self.client.delete_objects,
                                  Delete={"Objects": [{"Key": self.key(o)} for o in doomed],
                                          "Quiet": True})
                failed = {e.get("Key") for e in resp.get("Errors", ())}
                removed += [(o, sizes[o] or 0) for o in doomed if self.key(o) not in failed]
        return removed

    def clean_temp(self, before_ns: int) -> tuple[int, int]:
        return 0, 0  # an S3 PUT is atomic: a killed writer leaves nothing behind


def _ns(when: Any) -> int:
    """A boto3 datetime as integer nanoseconds since the epoch."""
    return int(when.timestamp() * 1_000_000) * 1000
