"""Remotes: where ``cairn data push`` sends versions and ``pull`` fetches them.

A remote is an S3-compatible bucket prefix (``s3://bucket/prefix``, any endpoint
with ``--endpoint-url``) or a directory (``/mnt/nas/cairn``, ``file:///...``).  Its
layout::

    <prefix>/objects/ab/cdef…              objects, exactly as in a local store
    <prefix>/refs/datasets/<name>.json     the versions of data set <name>

Remotes are configured per store in ``STORE/remotes.json``; the first one added is
the default.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..cas.backends.base import Backend
from ..cas.backends.local import LocalBackend
from ..errors import AlreadyExists, InvalidArgument, NotFound
from .entities import check_alias

CONFIG_NAME = "remotes.json"


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    name: str
    url: str
    endpoint_url: str | None = None
    default: bool = False


class RefStore(Protocol):
    """Small named documents next to a remote's objects (the data set version lists)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...


class DirRefs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*.json")
                      if not p.name.startswith("."))


class S3Refs:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or \
                    exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def keys(self, prefix: str) -> list[str]:
        start = self._key(prefix).rstrip("/") + "/"
        out, token = [], None
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": start}
            if token:
                kw["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kw)
            for item in page.get("Contents", ()):
                key = item["Key"]
                if key.endswith(".json"):
                    out.append(key[len(self.prefix) + 1:] if self.prefix else key)
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page.get("NextContinuationToken")


@dataclass(frozen=True, slots=True)
class Remote:
    config: RemoteConfig
    objects: Backend
    refs: RefStore

    @property
    def name(self) -> str:
        return self.config.name


# -- configuration ---------------------------------------------------------------------

def _config_path(store_root: str | os.PathLike[str]) -> Path:
    return Path(store_root) / CONFIG_NAME


def _load(store_root: str | os.PathLike[str]) -> dict[str, Any]:
    path = _config_path(store_root)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {"default": None, "remotes": {}}
    except ValueError as exc:
        raise InvalidArgument(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    doc.setdefault("remotes", {})
    doc.setdefault("default", None)
    return doc


def _save(store_root: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    path = _config_path(store_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
    os.replace(tmp, path)


def check_url(url: str) -> str:
    if not isinstance(url, str) or not url:
        raise InvalidArgument("a remote URL is required: s3://bucket/prefix or a directory")
    if url.startswith("s3://"):
        bucket = url[len("s3://"):].partition("/")[0]
        if not bucket:
            raise InvalidArgument(f"no bucket in {url!r}; write s3://bucket/prefix")
        return url.rstrip("/")
    if "://" in url and not url.startswith("file://"):
        raise InvalidArgument(f"unsupported remote URL {url!r}: use s3://bucket/prefix, "
                              "file:///path or a directory path")
    return url


def add_remote(store_root: str | os.PathLike[str], name: str, url: str, *,
               endpoint_url: str | None = None, default: bool = False,
               replace: bool = False) -> RemoteConfig:
    check_alias(name)
    url = check_url(url)
    if not url.startswith("s3://") and endpoint_url:
        raise InvalidArgument("--endpoint-url applies to s3:// remotes only")
    if url.startswith("file://"):
        url = url[len("file://"):]
    if not url.startswith("s3://"):
        url = str(Path(url).expanduser().resolve())
    doc = _load(store_root)
    if name in doc["remotes"] and not replace:
        raise AlreadyExists(f"a remote named {name!r} already exists; remove it first or "
                            "pass replace=True (--replace)")
    doc["remotes"][name] = {"url": url, "endpoint_url": endpoint_url}
    if default or not doc.get("default"):
        doc["default"] = name
    _save(store_root, doc)
    return RemoteConfig(name, url, endpoint_url, doc["default"] == name)


def remove_remote(store_root: str | os.PathLike[str], name: str) -> None:
    doc = _load(store_root)
    if name not in doc["remotes"]:
        raise NotFound(f"no remote named {name!r}")
    del doc["remotes"][name]
    if doc.get("default") == name:
        doc["default"] = next(iter(sorted(doc["remotes"])), None)
    _save(store_root, doc)


def list_remotes(store_root: str | os.PathLike[str]) -> list[RemoteConfig]:
    doc = _load(store_root)
    return [RemoteConfig(n, r["url"], r.get("endpoint_url"), doc.get("default") == n)
            for n, r in sorted(doc["remotes"].items())]


def get_remote_config(store_root: str | os.PathLike[str], name: str | None) -> RemoteConfig:
    doc = _load(store_root)
    if name is None:
        name = doc.get("default")
        if not name:
            raise NotFound("no remote configured; add one with "
                           "`cairn remote add NAME s3://bucket/prefix`")
    r = doc["remotes"].get(name)
    if r is None:
        raise NotFound(f"no remote named {name!r}; `cairn remote ls` lists them")
    return RemoteConfig(name, r["url"], r.get("endpoint_url"), doc.get("default") == name)


def open_remote(cfg: RemoteConfig, *, max_connections: int = 32) -> Remote:
    if cfg.url.startswith("s3://"):
        from ..cas.backends.s3 import S3Backend, parse_s3_url

        bucket, prefix = parse_s3_url(cfg.url)
        objects = S3Backend(bucket, f"{prefix}/objects" if prefix else "objects",
                            endpoint_url=cfg.endpoint_url, max_connections=max_connections)
        return Remote(cfg, objects, S3Refs(objects.client, bucket, f"{prefix}/refs"
                                           if prefix else "refs"))
    root = Path(cfg.url)
    return Remote(cfg, LocalBackend(root / "objects"), DirRefs(root / "refs"))
