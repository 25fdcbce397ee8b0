"""Opening an MLflow store for reading, through the ``mlflow`` package's own client.

Before MLflow sees a source it is checked here, because MLflow's stores create what
they do not find: a database URI naming a missing file or an empty database gets
MLflow's tables, and a missing ``mlruns`` directory gets made.  An import only
reads, so a source that does not already hold an MLflow store is refused.
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

from ..errors import CairnError, InvalidArgument, MissingDependency, NotFound, StoreUnavailable

# Tables every MLflow tracking database has (MLflow's own schema; only their presence is checked).
_MLFLOW_TABLES = {"experiments", "runs", "metrics", "params", "tags"}
_DB_SCHEMES = ("sqlite:", "postgresql", "postgres:", "mysql", "mssql")


@dataclass(frozen=True, slots=True)
class Source:
    client: Any  # mlflow.tracking.MlflowClient
    uri: str  # what MLflow is given
    label: str  # what Cairn records and prints (no password)
    kind: str  # sqlite | database | directory | server


@contextmanager
def open_source(source: str) -> Iterator[Source]:
    """An MlflowClient on ``source`` (a database URI, an ``mlruns`` directory or a server URL)."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidArgument(f"the MLflow source must be a database URI, an mlruns directory or "
                              f"a server URL, got {source!r}")
    uri, kind = _resolve(source.strip())
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependency("importing from MLflow needs the mlflow package: "
                                "pip install mlflow") from None
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if kind == "directory":
        # MLflow 3 refuses to open an mlruns directory unless told to; reading one is
        # exactly what migrating away from it needs.
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    with scoped_env(env), warnings.catch_warnings():
        # MLflow's SQL store trips a SQLAlchemy deprecation of its own on every open.
        warnings.filterwarnings("ignore", message=r".*``noload`` loader strategy is deprecated")
        with translate_errors(uri):
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            if kind == "server":
                # A wrong URL should fail now, not after the client's minutes of retries.
                with scoped_env({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}):
                    _probe(client, uri)
        # Recorded as given (a directory as its absolute file:// URI), minus any password.
        yield Source(client, uri, _redact(source.strip() if kind in ("sqlite", "database") else uri),
                     kind)


def _probe(client: Any, url: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.search_experiments(max_results=1)
    except MlflowException as exc:
        if "ConnectionError" in exc.message or "Max retries" in exc.message:
            raise  # translate_errors names the unreachable server
        reason = exc.message.split(" Response body:", 1)[0]
        raise InvalidArgument(f"{_redact(url)} does not answer as an MLflow server: "
                              f"{reason[:300]}") from None


def _resolve(source: str) -> tuple[str, str]:
    lowered = source.lower()
    if lowered.startswith(("http://", "https://")):
        return source.rstrip("/"), "server"
    if lowered.startswith("sqlite:"):
        _check_sqlite(source)
        return source, "sqlite"
    if lowered.startswith(_DB_SCHEMES):
        uri = _driver(source)
        _check_database(uri)
        return uri, "database"
    if lowered.startswith("file:"):
        path = Path(unquote(urlsplit(source).path))
    elif "://" in source:
        raise InvalidArgument(f"unsupported MLflow source {source!r}: give sqlite:///PATH, "
                              "postgresql://..., an mlruns directory or http(s)://SERVER")
    else:
        path = Path(os.path.expanduser(source))
    return _check_directory(path), "directory"


def _check_sqlite(uri: str) -> None:
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        raise InvalidArgument(f"{uri!r} does not name a database file; use sqlite:///PATH")
    if not Path(path).is_file():
        raise NotFound(f"there is no MLflow database at {path} (from {uri})")
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidArgument(f"{path} is not an SQLite database ({exc})") from None
    _check_tables(names, path)


def _driver(uri: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 when that is what is installed."""
    scheme, sep, rest = uri.partition("://")
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg://{rest}"
    return uri


def _check_database(uri: str) -> None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(uri)
    except Exception as exc:  # an unknown dialect or a driver that is not installed
        raise InvalidArgument(f"cannot open {_redact(uri)}: {exc}") from None
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
    except sa.exc.DBAPIError as exc:
        raise StoreUnavailable(f"cannot reach the MLflow database {_redact(uri)}: "
                               f"{str(exc.orig).strip()}") from None
    finally:
        engine.dispose()
    _check_tables(names, _redact(uri))


def _check_tables(names: set[str], where: str) -> None:
    missing = _MLFLOW_TABLES - names
    if missing:
        raise InvalidArgument(f"{where} is not an MLflow tracking database (it has no "
                              f"{', '.join(sorted(missing))} table)")


def _check_directory(path: Path) -> str:
    if not path.exists():
        raise NotFound(f"there is no MLflow store at {path}")
    if path.is_file():
        raise InvalidArgument(f"{path} is a file; an MLflow database is given as "
                              f"sqlite:///{path.resolve()}")
    experiments = [p for p in path.iterdir() if (p / "meta.yaml").is_file()]
    if not experiments:
        hint = f"; did you mean {path / 'mlruns'}?" if (path / "mlruns").is_dir() else ""
        raise InvalidArgument(f"{path} is not an MLflow mlruns directory (no experiment folder "
                              f"with a meta.yaml in it){hint}")
    return path.resolve().as_uri()


def _redact(uri: str) -> str:
    from ..store.sql.store import redact_url

    return redact_url(uri)


@contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Environment variables that MLflow reads, set for the import only."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """MLflow's exceptions as Cairn errors that say which source failed."""
    try:
        yield
    except CairnError:
        raise
    except ImportError as exc:
        raise MissingDependency(f"reading {_redact(where)} needs a package that is not "
                                f"installed: {exc}") from None
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if not isinstance(exc, MlflowException):
            raise
        code = getattr(exc, "error_code", "")
        text = f"MLflow source {_redact(where)}: {exc.message}"
        if code in ("RESOURCE_DOES_NOT_EXIST",):
            raise NotFound(text) from None
        if code in ("ENDPOINT_NOT_FOUND",):
            raise InvalidArgument(f"{_redact(where)} does not answer MLflow's REST API "
                                  f"({exc.message})") from None
        if "ConnectionError" in exc.message or "Max retries" in exc.message:
            reason = re.search(r"\[Errno [^\]]+\][^\"')]*", exc.message)
            raise StoreUnavailable(f"cannot reach the MLflow server at {_redact(where)}"
                                   + (f" ({reason.group(0).strip()})" if reason else "")) from None
        if code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"):
            raise StoreUnavailable(text) from None
        raise InvalidArgument(text) from None
