"""`cairn server`, `cairn sync`, and the team server's `cairn users`, `tokens`, `roles`."""

from __future__ import annotations

import click

from .main import emit_json, handle_errors, hidden_alias, json_option, require_server_packages


def tls_options(fn):
    """``--tls-cert``, ``--tls-key`` and ``--tls-key-password-file`` (server and ui)."""
    for opt in reversed([
        click.option("--tls-cert", default=None, metavar="FILE",
                     help="Serve https: the server's certificate (PEM; its chain after it). "
                          "Needs --tls-key."),
        click.option("--tls-key", default=None, metavar="FILE",
                     help="The certificate's private key (PEM). Needs --tls-cert."),
        click.option("--tls-key-password-file", default=None, metavar="FILE",
                     help="File holding the password of an encrypted --tls-key."),
    ]):
        fn = opt(fn)
    return fn


def checked_tls(cert: str | None, key: str | None, password_file: str | None) -> dict | None:
    """uvicorn's TLS arguments for ``--tls-cert``/``--tls-key`` (None: plain http), once
    they load together: a missing or unreadable file, one that is not PEM, a key that does
    not match the certificate or a wrong password is an error naming the file before
    anything starts (uvicorn would fail in each worker, after the socket is bound)."""
    import ssl

    from ..errors import InvalidArgument

    if cert is None and key is None:
        if password_file is not None:
            raise InvalidArgument("--tls-key-password-file goes with --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        given, missing = ("--tls-cert", "--tls-key") if key is None else ("--tls-key", "--tls-cert")
        raise InvalidArgument(f"{given} needs {missing}: give the certificate (--tls-cert) and "
                              "its private key (--tls-key), or neither")
    _read_pem("--tls-cert", cert, b"-----BEGIN CERTIFICATE-----", "a PEM certificate")
    key_pem = _read_pem("--tls-key", key, b"PRIVATE KEY-----", "a PEM private key")
    password = None
    if password_file is not None:
        password = _read_file("--tls-key-password-file", password_file).decode().rstrip("\r\n")
    encrypted = b"ENCRYPTED" in key_pem
    if encrypted and password is None:
        raise InvalidArgument(f"the private key --tls-key {key} is encrypted: give its password "
                              "in a file with --tls-key-password-file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A callable, never None: with None, OpenSSL would prompt on the terminal.
        ctx.load_cert_chain(cert, key, password=lambda: (password or "").encode())
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            raise InvalidArgument(f"the private key --tls-key {key} does not match the "
                                  f"certificate --tls-cert {cert}") from None
        if encrypted or reason in ("BAD_DECRYPT", "BAD_PASSWORD_READ"):
            raise InvalidArgument(f"the private key --tls-key {key} does not decrypt with the "
                                  f"password in {password_file}") from None
        raise InvalidArgument(f"the certificate --tls-cert {cert} and key --tls-key {key} do "
                              f"not load: {reason}") from None
    return {"ssl_certfile": cert, "ssl_keyfile": key, "ssl_keyfile_password": password}


def _read_file(option: str, path: str) -> bytes:
    from ..errors import InvalidArgument

    try:
        with open(path, "rb") as f:
            return f.read(16 << 20)
    except FileNotFoundError:
        raise InvalidArgument(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{option} {path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidArgument(f"{option} {path} cannot be read: {exc.strerror or exc}") from None


def _read_pem(option: str, path: str, marker: bytes, what: str) -> bytes:
    from ..errors import InvalidArgument

    data = _read_file(option, path)
    if marker not in data:
        raise InvalidArgument(f"{option} {path} is not {what} (no {marker.decode().strip('-')} "
                              "block; DER files convert with openssl x509/pkey -outform PEM)")
    return data


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--db", default=None, metavar="URL",
              help="Database for a team server (postgresql://user@host/db). Default: the local "
                   "store (--store / CAIRN_TRACKING_URI).")
@click.option("--objects", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="Object store for artifacts (needed with --db).")
@click.option("--endpoint-url", default=None, metavar="URL",
              help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
@click.option("--cold-objects", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="A cold tier for the objects, where `cairn tier` moves those unread for "
                   "a while; reads find them there. Recorded with the objects.")
@click.option("--cold-endpoint-url", default=None, metavar="URL",
              help="S3-compatible endpoint of an s3:// --cold-objects.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Server processes (stateless replicas of the app).")
@click.option("--auth/--no-auth", default=None,
              help="Require API tokens. Default: on with --db, off for a local store.")
@click.option("--bootstrap-token-file", default=None, metavar="PATH",
              type=click.Path(dir_okay=False, exists=True),
              help="File holding the admin token to create if missing (or set "
                   "CAIRN_BOOTSTRAP_TOKEN); else a first start prints a new one.")
@click.option("--bootstrap-token", default=None, hidden=True,
              help="Deprecated: the token on the command line is readable with ps; use "
                   "--bootstrap-token-file or CAIRN_BOOTSTRAP_TOKEN.")
@click.option("--audit/--no-audit", default=True, show_default=True,
              help="Record every mutating request in the audit log.")
@click.option("--max-request-mb", default=64, show_default=True, type=int,
              help="Larger request bodies are refused with 413.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--telemetry", is_flag=True,
              help="FastAPI's OpenTelemetry spans and request metrics (configure an "
                   "OpenTelemetry SDK in the environment).")
@click.option("--default-artifact-root", default=None, metavar="URI",
              help="As on mlflow server: new experiments made through the MLflow API (and "
                   "Default) get URI/<id> as artifact location, and MLflow's client writes their "
                   "files there itself, outside Cairn's object store. Default: "
                   "mlflow-artifacts:/<id>, proxied into Cairn's object store.")
@click.option("--serve-artifacts/--no-serve-artifacts", default=True, show_default=True,
              help="As on mlflow server: without --default-artifact-root, new experiments' "
                   "files go through this server's artifact proxy into Cairn's object store; "
                   "with --no-serve-artifacts, to <absolute working directory>/mlruns/<id> "
                   "(written by the client). Unlike mlflow server, the proxy itself stays on: "
                   "experiments made by Cairn's own clients use it.")
@click.option("--artifacts-destination", default=None, metavar="DIR|s3://BUCKET/PREFIX",
              help="As on mlflow server: where proxied artifacts are stored. Another name for "
                   "--objects (Cairn's content-addressed object store).")
@tls_options
@click.pass_obj
@handle_errors
def server(obj, host: str, port: int, db: str | None, objects: str | None,
           endpoint_url: str | None, cold_objects: str | None,
           cold_endpoint_url: str | None, workers: int, auth: bool | None,
           bootstrap_token_file: str | None, bootstrap_token: str | None, audit: bool,
           max_request_mb: int, log_level: str, telemetry: bool,
           default_artifact_root: str | None, serve_artifacts: bool,
           artifacts_destination: str | None, tls_cert: str | None, tls_key: str | None,
           tls_key_password_file: str | None) -> None:
    """Serve a store over the REST API (docs at /docs) for remote clients and teams.

    With no options it serves the local store (./.cairn or --store) with zero set-up.
    For a team: PostgreSQL plus a shared object store, auth on, N workers. Any number of
    such servers can run side by side on the same database and objects.

    \b
    Examples:
      cairn server
      cairn server --db postgresql://cairn@db/cairn --objects s3://ml/cairn --workers 4
      cairn server --db postgresql://cairn@db/cairn --objects s3://ml/cairn \\
                   --endpoint-url http://minio:9000
      cairn server --host 0.0.0.0 --tls-cert server.pem --tls-key server.key
    Then, in training code: cairn.set_tracking_uri("http://HOST:5000") (https:// with TLS)
    """
    from ..errors import InvalidArgument
    require_server_packages("cairn server")  # before cairn.server, which imports FastAPI
    from ..server.config import artifact_root
    from ..server.serve import ServeConfig, prepare, run

    uri = obj.uri or ".cairn"
    if db is None and "://" in uri and not uri.startswith("file://"):
        raise InvalidArgument(f"cairn server serves a local store directory or --db URL, not {uri}")
    if workers < 1:
        raise InvalidArgument("--workers must be at least 1")
    tls = checked_tls(tls_cert, tls_key, tls_key_password_file)
    bootstrap_token = _bootstrap_token(bootstrap_token_file, bootstrap_token)
    objects = _objects(objects, artifacts_destination)
    root = artifact_root(default_artifact_root, serve_artifacts)
    if root is not None:
        root = _checked_root(root)
    settings = {"auth": bool(db) if auth is None else auth, "audit": audit,
                "max_request_bytes": max_request_mb << 20, "bootstrap_token": bootstrap_token,
                "telemetry": telemetry, "default_artifact_root": root}
    cfg = ServeConfig(store=uri.removeprefix("file://"), db=db, objects=objects,
                      endpoint_url=endpoint_url, cold_objects=cold_objects,
                      cold_endpoint_url=cold_endpoint_url, settings=settings)
    token = prepare(cfg)
    where = db_label(db) if db else uri
    click.echo(f"cairn server: {where}, objects {objects or 'in the store'}, auth "
               f"{'on' if settings['auth'] else 'off'}, {workers} worker(s), "
               f"{'https' if tls else 'http'}://{host}:{port} (API docs at /docs)", err=True)
    if token:
        click.echo("A first admin was created. Its API token is shown this once; keep it "
                   f"secret:\n\n  {token}\n\nUse it as CAIRN_TRACKING_TOKEN.", err=True)
    run(cfg, host=host, port=port, workers=workers, log_level=log_level, tls=tls)


def _objects(objects: str | None, destination: str | None) -> str | None:
    """``--objects``, or MLflow's name for it, ``--artifacts-destination``."""
    from ..errors import InvalidArgument

    if objects and destination and objects != destination:
        raise InvalidArgument("--artifacts-destination is another name for --objects: give one "
                              "of them, or the same value to both")
    return objects or destination


def _checked_root(root: str) -> str:
    """``--default-artifact-root`` under the rules of an experiment's artifact_location
    (every new experiment's location is made from it), refused before the server starts."""
    from ..errors import CairnError, InvalidArgument
    from ..server.mlflow.tracking import check_location

    try:
        return check_location(root)
    except CairnError as exc:
        raise InvalidArgument(f"--default-artifact-root {root[:200]!r}: {exc.message}") from None


def _bootstrap_token(path: str | None, flag: str | None) -> str | None:
    """The operator's admin token: from ``--bootstrap-token-file``, the deprecated
    ``--bootstrap-token`` (which every user of the machine sees in ``ps``), or else
    ``CAIRN_BOOTSTRAP_TOKEN``."""
    import os

    from ..errors import InvalidArgument

    if path is not None and flag is not None:
        raise InvalidArgument("give --bootstrap-token-file or --bootstrap-token, not both")
    if flag is not None:
        click.echo("warning: --bootstrap-token is deprecated: a token on the command line is "
                   "readable by every user of this machine (ps); use --bootstrap-token-file PATH "
                   "or the CAIRN_BOOTSTRAP_TOKEN environment variable", err=True)
        return flag
    if path is not None:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise InvalidArgument(f"the bootstrap token file {path} is empty")
        return token
    return os.environ.get("CAIRN_BOOTSTRAP_TOKEN") or None


def db_label(url: str) -> str:
    from ..store.sql.store import redact_url

    return redact_url(url)


@click.command()
@click.option("--from", "source", default=None, metavar="DIR",
              help="A local store whose runs to upload (runs made offline).")
@click.option("--to", "target", default=None, metavar="URL",
              help="The server (default: the tracking URI).")
@click.option("--workers", default=8, show_default=True, type=int, help="Runs sent at once.")
@click.option("--clear-rejected", is_flag=True,
              help="After listing them, forget the records the server refused (the spool's "
                   "rejected area).")
@json_option
@click.pass_obj
@handle_errors
def sync(obj, source: str | None, target: str | None, workers: int, clear_rejected: bool,
         as_json: bool) -> None:
    """Send records to a Cairn server: the spool of runs logged while it was away, or
    (with --from) every run of a local store recorded offline. Safe to repeat: the
    server keeps each record once.

    Records the server refused for good are kept in the spool's rejected area and
    listed; the exit status is 1 while any are there (or records still wait), until
    --clear-rejected.

    \b
    Examples:
      cairn --store http://cairn:5000 sync
      cairn --store http://cairn:5000 sync --json
      cairn sync --from ./.cairn --to http://cairn:5000
    """
    from ..errors import InvalidArgument
    from ..store import open_store

    url = target or obj.uri or ""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument("cairn sync needs a server: --to http://HOST:PORT or a tracking URI "
                              "that is one")
    store = open_store(url)
    if source is None:
        result = store.sync(progress=None)
        left = store.pending_writers()
        rejected = [_rejected_summary(r) for r in store.spool.rejected()]
        if clear_rejected:
            store.spool.clear_rejected()
        if as_json:
            emit_json({**result, "pending_writers": left, "rejected_records": len(rejected),
                       "rejected": rejected, "rejected_dir": str(store.spool.rejected_dir),
                       "rejected_cleared": clear_rejected})
        else:
            click.echo(f"sent {result['writers_sent']} spooled journal(s) to {store.uri}; "
                       f"{left} still waiting")
            if rejected:
                where = ("forgotten now" if clear_rejected else
                         f"kept in {store.spool.rejected_dir}; --clear-rejected forgets them")
                click.echo(f"{len(rejected)} record(s) refused by the server ({where}):", err=True)
                for r in rejected:
                    what = f"run {r['run_id']} record {r['seq']}"
                    if r["items"]:
                        what += " (" + ", ".join(f"{i['field']} {i['key']}" for i in r["items"]) + ")"
                    click.echo(f"  {what}: {r['reason']}", err=True)
        if left or (rejected and not clear_rejected):
            raise SystemExit(1)
        return
    from ..store.sync import sync_local_store

    res = sync_local_store(source, store, workers=workers, progress=None)
    if as_json:
        emit_json({"runs": res.runs, "records": res.records, "applied": res.applied,
                   "duplicates": res.duplicates, "objects_uploaded": res.objects_uploaded,
                   "errors": list(res.errors)})
    else:
        click.echo(f"{res.runs} run(s), {res.records} record(s): {res.applied} new, "
                   f"{res.duplicates} already on the server; {res.objects_uploaded} object(s) "
                   f"uploaded")
        for e in res.errors:
            click.echo(f"  {e}", err=True)
    if not res.ok:
        raise SystemExit(1)


def _rejected_summary(rec: dict) -> dict:
    """One line of the spool's rejected log, for `cairn sync` to report."""
    err = rec.get("error") if isinstance(rec.get("error"), dict) else {}
    items = [{"field": i.get("field"), "key": i.get("key"),
              "reason": (i.get("error") or {}).get("message", "")}
             for i in rec.get("items") or () if isinstance(i, dict)]
    return {"run_id": rec.get("run_id"), "writer_id": rec.get("writer_id"),
            "seq": rec.get("seq"), "time": rec.get("time"),
            "error_code": err.get("error_code"), "reason": err.get("message", ""),
            "items": items, "file": rec.get("file"), "offset": rec.get("offset")}


# -- users, tokens, roles: administration straight on the server's database ---------------
def _auth_db(obj, db: str | None):
    from ..errors import InvalidArgument
    from ..store import open_store
    from ..store.base import Indexed
    from ..store.sql.auth import AuthDB

    if db is not None:
        from ..store.sql.store import SqlStore

        store = SqlStore(db)
    else:
        store = open_store(obj.uri or ".cairn")
    if not isinstance(store, Indexed):
        raise InvalidArgument(f"users and tokens live in the server's database: pass --db URL "
                              f"(or --store DIR for a local server), not {store.uri}")
    store.open()
    return AuthDB(store.index.engine)


db_option = click.option("--db", default=None, metavar="URL",
                         help="The server's database (default: the --store directory's index).")


@click.group()
def users() -> None:
    """Users of a team server (administration on its database).

    \b
    Examples:
      cairn users create alice --db postgresql://cairn@db/cairn
      cairn users ls --db postgresql://cairn@db/cairn
    """


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="A global admin (manages users, tokens and roles).")
@click.option("--token/--no-token", default=True, show_default=True,
              help="Also make an API token (shown once).")
@db_option
@json_option
@click.pass_obj
@handle_errors
def users_create(obj, name: str, admin: bool, token: bool, db: str | None, as_json: bool) -> None:
    """Create a user, with an API token shown this once.

    \b
    Example:
      cairn users create alice --db postgresql://cairn@db/cairn
    """
    adb = _auth_db(obj, db)
    user = adb.create_user(name, admin, created_by="cli")
    secret = adb.create_token(name, "cli")[1] if token else None
    if as_json:
        emit_json({"name": user.name, "is_admin": user.is_admin, "token": secret})
        return
    click.echo(f"created user {name}{' (admin)' if admin else ''}")
    if secret:
        click.echo(f"API token (shown once): {secret}")


@users.command("ls")
@db_option
@json_option
@click.pass_obj
@handle_errors
def users_ls(obj, db: str | None, as_json: bool) -> None:
    """List users.

    \b
    Example:
      cairn users ls --db postgresql://cairn@db/cairn
    """
    rows = _auth_db(obj, db).list_users()
    if as_json:
        emit_json([_user_json(u) for u in rows])
        return
    for u in rows:
        flags = ", ".join(f for f, on in (("admin", u.is_admin), ("disabled", u.disabled)) if on)
        click.echo(f"{u.name}{f'  ({flags})' if flags else ''}")


def _user_json(u) -> dict:
    return {"name": u.name, "is_admin": u.is_admin, "disabled": u.disabled}


@users.command("delete")
@click.argument("name")
@db_option
@json_option
@click.pass_obj
@handle_errors
def users_disable(obj, name: str, db: str | None, as_json: bool) -> None:
    """Delete a user: they are disabled and all their tokens revoked (the audit log keeps
    their name, so it is never given to someone else).

    \b
    Example:
      cairn users delete bob --db postgresql://cairn@db/cairn
    """
    user = _auth_db(obj, db).set_disabled(name, True)
    if as_json:
        emit_json(_user_json(user))
    else:
        click.echo(f"disabled {name}; their tokens are revoked")


@click.group()
def tokens() -> None:
    """API tokens of a team server (only their hashes are stored).

    \b
    Examples:
      cairn tokens create alice --name laptop --db postgresql://cairn@db/cairn
      cairn tokens delete 3f2a9c0b1d4e5f60 --db postgresql://cairn@db/cairn
    """


def _token_json(t) -> dict:
    return {"id": t.id, "user": t.user, "name": t.name, "revoked": t.revoked}


@tokens.command("create")
@click.argument("user")
@click.option("--name", default="", help="What the token is for.")
@db_option
@json_option
@click.pass_obj
@handle_errors
def tokens_create(obj, user: str, name: str, db: str | None, as_json: bool) -> None:
    """Make a token for USER; the secret is printed this once.

    \b
    Example:
      cairn tokens create alice --name ci --db postgresql://cairn@db/cairn
    """
    tok, secret = _auth_db(obj, db).create_token(user, name)
    if as_json:  # the secret under "token", as `users create --json` has it
        emit_json({**_token_json(tok), "token": secret})
    else:
        click.echo(f"token {tok.id} for {user} (shown once): {secret}")


@tokens.command("ls")
@click.option("--user", default=None)
@db_option
@json_option
@click.pass_obj
@handle_errors
def tokens_ls(obj, user: str | None, db: str | None, as_json: bool) -> None:
    """List tokens (ids and names, never secrets).

    \b
    Example:
      cairn tokens ls --user alice --db postgresql://cairn@db/cairn
    """
    rows = _auth_db(obj, db).list_tokens(user)
    if as_json:
        emit_json([_token_json(t) for t in rows])
        return
    for t in rows:
        click.echo(f"{t.id}  {t.user}  {t.name or '-'}{'  (revoked)' if t.revoked else ''}")


@tokens.command("delete")
@click.argument("token_id")
@db_option
@json_option
@click.pass_obj
@handle_errors
def tokens_revoke(obj, token_id: str, db: str | None, as_json: bool) -> None:
    """Delete (revoke) a token by its id: it is refused from then on.

    \b
    Example:
      cairn tokens delete 3f2a9c0b1d4e5f60 --db postgresql://cairn@db/cairn
    """
    tok = _auth_db(obj, db).revoke_token(token_id)
    if as_json:
        emit_json(_token_json(tok))
    else:
        click.echo(f"revoked token {token_id}")


@click.group()
def roles() -> None:
    """Roles per experiment and per registered model: viewer, editor, approver, admin.

    \b
    Examples:
      cairn roles put alice editor --experiment 123456 --db postgresql://cairn@db/cairn
      cairn roles put bob approver --model fraud --db postgresql://cairn@db/cairn
      cairn roles put carol viewer --global --db postgresql://cairn@db/cairn
    """


def _resource(experiment: str | None, model: str | None, everything: bool) -> tuple[str, str]:
    from ..errors import InvalidArgument

    given = [x for x in (experiment, model, everything or None) if x]
    if len(given) != 1:
        raise InvalidArgument("name exactly one of --experiment ID, --model NAME or --global")
    if experiment:
        return "experiment", experiment
    if model:
        return "model", model
    return "global", "*"


_res = [click.option("--experiment", default=None, metavar="ID", help="An experiment id, or *."),
        click.option("--model", default=None, metavar="NAME", help="A registered model, or *."),
        click.option("--global", "everything", is_flag=True, help="Every resource.")]


def _binding_json(b) -> dict:
    return {"user": b.user, "resource_type": b.resource_type, "resource_id": b.resource_id,
            "role": b.role}


def _res_options(fn):
    for opt in reversed(_res):
        fn = opt(fn)
    return fn


@roles.command("put")
@click.argument("user")
@click.argument("role", type=click.Choice(["viewer", "editor", "approver", "admin"]))
@_res_options
@db_option
@json_option
@click.pass_obj
@handle_errors
def roles_grant(obj, user: str, role: str, experiment: str | None, model: str | None,
                everything: bool, db: str | None, as_json: bool) -> None:
    """Give USER a ROLE on one resource (replacing their role there).

    \b
    Example:
      cairn roles put alice editor --experiment 123456 --db postgresql://cairn@db/cairn
    """
    rtype, rid = _resource(experiment, model, everything)
    _before, binding = _auth_db(obj, db).grant(user, rtype, rid, role, granted_by="cli")
    if as_json:
        emit_json(_binding_json(binding))
    else:
        click.echo(f"{user} is {role} on {rtype} {rid}")


@roles.command("delete")
@click.argument("user")
@_res_options
@db_option
@json_option
@click.pass_obj
@handle_errors
def roles_revoke(obj, user: str, experiment: str | None, model: str | None, everything: bool,
                 db: str | None, as_json: bool) -> None:
    """Remove USER's role on one resource.

    \b
    Example:
      cairn roles delete alice --experiment 123456 --db postgresql://cairn@db/cairn
    """
    rtype, rid = _resource(experiment, model, everything)
    removed = _auth_db(obj, db).revoke(user, rtype, rid)
    if as_json:  # the binding that was removed
        emit_json({**_binding_json(removed), "revoked": True})
    else:
        click.echo(f"{user} has no role on {rtype} {rid} any more")


@roles.command("ls")
@click.option("--user", default=None)
@db_option
@json_option
@click.pass_obj
@handle_errors
def roles_ls(obj, user: str | None, db: str | None, as_json: bool) -> None:
    """List role bindings.

    \b
    Example:
      cairn roles ls --user alice --db postgresql://cairn@db/cairn
    """
    rows = _auth_db(obj, db).bindings(user)
    if as_json:
        emit_json([_binding_json(b) for b in rows])
        return
    for b in rows:
        click.echo(f"{b.user}  {b.role}  {b.resource_type} {b.resource_id}")


# The CLI's verbs are one set (ls show get put delete restore tag untag rename); the old
# spellings still run, out of the help, for a release.
hidden_alias(users, "delete", "disable")
hidden_alias(tokens, "delete", "revoke")
hidden_alias(roles, "put", "grant")
hidden_alias(roles, "delete", "revoke")
