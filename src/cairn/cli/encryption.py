"""`cairn encryption`: encryption at rest of a store's objects (see docs/security.md)."""

from __future__ import annotations

import os

import click

from .main import emit_json, handle_errors, json_option

_OBJECTS = click.option("--objects", "objects_at", default=None, metavar="DIR|s3://BUCKET/PREFIX",
                        help="The object store of a database store (what `cairn server "
                             "--objects` names); a local store's own by default.")
_ENDPOINT = click.option("--endpoint-url", default=None,
                         help="S3-compatible endpoint (MinIO, Ceph, ...) for s3:// objects.")
_WORKERS = click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
                        help="Objects rewritten in parallel (S3 wants more than a disk).")


@click.group()
def encryption() -> None:
    """Encrypt a store's objects at rest, show how they are encrypted, rotate the master key.

    The master key comes from CAIRN_MASTER_KEY (base64) or CAIRN_MASTER_KEY_FILE; the first
    object stored with a key makes the store encrypted for good.

    \b
    Examples:
      cairn encryption new-key ~/.cairn-master.key
      CAIRN_MASTER_KEY_FILE=~/.cairn-master.key cairn encryption status
      cairn encryption rotate --new-key-file ~/.cairn-master-2027.key
    """


def _raw_backend(obj, objects_at: str | None, endpoint_url: str | None):
    """The unwrapped backend of the store's objects (no key needed to look at the marker)."""
    from ..cas.backends.local import LocalBackend
    from ..errors import InvalidArgument

    if endpoint_url is not None and objects_at is None:
        raise InvalidArgument("--endpoint-url is the S3 endpoint of --objects s3://...: give both")
    if objects_at is None:
        from ..store.local import LocalStore

        store = obj.client.store
        if not isinstance(store, LocalStore):
            raise InvalidArgument(f"give the object store of {store.uri} with --objects")
        return LocalBackend(store.root / "objects")
    if objects_at.startswith("s3://"):
        from ..cas.backends.s3 import S3Backend

        return S3Backend.from_url(objects_at, endpoint_url=endpoint_url)
    if "://" in objects_at and not objects_at.startswith("file://"):
        raise InvalidArgument(f"--objects must be a directory or s3://bucket/prefix, got "
                              f"{objects_at!r}")
    path = objects_at[len("file://"):] if objects_at.startswith("file://") else objects_at
    return LocalBackend(os.path.abspath(os.path.expanduser(path)))


def _open(raw):
    from ..cas.layers import layered
    from ..cas.odb import ObjectStore

    return ObjectStore(layered(raw))


@encryption.command("new-key")
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def new_key(path: str, as_json: bool) -> None:
    """Write a new random 256-bit master key (base64) to PATH, readable by you only.

    The key is never printed; PATH must not exist.  Give it to Cairn with
    CAIRN_MASTER_KEY_FILE=PATH, and keep a copy somewhere safe: without it the objects
    cannot be read.

    \b
    Examples:
      cairn encryption new-key ~/.config/cairn/master.key
    """
    from ..cas.keyprovider import new_key as make, parse_key
    from ..errors import AlreadyExists

    text = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(f"{path} exists: a key file is never overwritten; choose another "
                            "path") from None
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    key_id = parse_key(text, path).key_id
    if as_json:
        emit_json({"path": path, "key_id": key_id})
    else:
        click.echo(f"wrote master key {key_id} to {path} (mode 600)")


@encryption.command("status")
@_OBJECTS
@_ENDPOINT
@json_option
@click.pass_obj
@handle_errors
def status(obj, objects_at: str | None, endpoint_url: str | None, as_json: bool) -> None:
    """Whether the objects are encrypted, with which master key, and whether the key given
    (if any) is that key.  Needs no key; changes nothing.

    \b
    Examples:
      cairn encryption status
      cairn encryption status --objects s3://ml/cairn --json
    """
    from ..cas.crypto import MarkerFile
    from ..cas.keyprovider import from_settings

    raw = _raw_backend(obj, objects_at, endpoint_url)
    marker = MarkerFile(raw).read()
    keyring = from_settings()
    given = list(keyring.key_ids) if keyring is not None else []
    out = {
        "objects": repr(raw),
        "encrypted": marker is not None,
        "algorithm": marker["algorithm"] if marker else None,
        "key_id": marker["key_id"] if marker else None,
        "rotating_from": marker.get("previous_key_ids", []) if marker else [],
        "unencrypted_objects_allowed": bool(marker and marker.get("plaintext_objects")),
        "keys_given": given,
        "key_matches": bool(marker and marker["key_id"] in given),
    }
    if as_json:
        emit_json(out)
        return
    if marker is None:
        click.echo(f"{out['objects']}: not encrypted"
                   + ("; the next object stored is encrypted with key " + given[0] if given
                      else ""))
        return
    click.echo(f"{out['objects']}: encrypted ({out['algorithm']}) with master key "
               f"{out['key_id']}")
    if out["rotating_from"]:
        click.echo(f"  rotation from {', '.join(out['rotating_from'])} not finished: run "
                   "`cairn encryption rotate` again")
    if out["unencrypted_objects_allowed"]:
        click.echo("  objects stored before the key are read unencrypted: `cairn encryption "
                   "encrypt-existing` seals them")
    click.echo("  the key given is the store's" if out["key_matches"] else
               f"  the key given is not the store's ({', '.join(given) or 'none given'})")


def _print_report(report, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"{report.rewritten} object(s) {verb}, {report.already} already done, "
                   f"{report.total} in all (master key {report.key_id})")
        for key_id, oids in report.need_key.items():
            click.echo(f"  {len(oids)} object(s) under key {key_id}, which was not given: set "
                       "CAIRN_MASTER_KEY_OLD to it and run this again")
        for oid in report.corrupt:
            click.echo(f"  corrupt: {oid}")
    if not report.complete:
        raise SystemExit(1)


@encryption.command("rotate")
@click.option("--new-key-file", required=True, type=click.Path(dir_okay=False),
              help="The new master key (base64, mode 600), e.g. from `cairn encryption "
                   "new-key`.")
@_OBJECTS
@_ENDPOINT
@_WORKERS
@json_option
@click.pass_obj
@handle_errors
def rotate(obj, new_key_file: str, objects_at: str | None, endpoint_url: str | None,
           workers: int, as_json: bool) -> None:
    """Re-wrap every object's data key with a new master key; the data is not re-encrypted.

    The current key comes from CAIRN_MASTER_KEY or CAIRN_MASTER_KEY_FILE.  If the rotation
    stops half-way, every object stays readable with the new key plus the old one in
    CAIRN_MASTER_KEY_OLD, and running the same command again finishes it.  Exit status 1
    while objects are left.  Processes that opened the store before should be restarted with
    the new key.

    \b
    Examples:
      CAIRN_MASTER_KEY_FILE=old.key cairn encryption rotate --new-key-file new.key
    """
    from ..cas.keyprovider import Keyring, from_settings, read_key_file, using
    from ..cas.rekey import rotate as run
    from ..errors import EncryptionError

    new = read_key_file(new_key_file, "--new-key-file")
    current = from_settings()
    if current is None:
        raise EncryptionError("give the current master key in CAIRN_MASTER_KEY or "
                              "CAIRN_MASTER_KEY_FILE (the new one with --new-key-file)")
    raw = _raw_backend(obj, objects_at, endpoint_url)
    # Both keys open the store, whichever the marker names now (a resumed rotation).
    with using(Keyring([*current.providers, new])):
        objects = _open(raw)
    report = run(objects, new, workers=workers, progress=None if not as_json else False)
    _print_report(report, "re-wrapped", as_json)


@encryption.command("encrypt-existing")
@_OBJECTS
@_ENDPOINT
@_WORKERS
@json_option
@click.pass_obj
@handle_errors
def encrypt_existing(obj, objects_at: str | None, endpoint_url: str | None, workers: int,
                     as_json: bool) -> None:
    """Encrypt, in place, the objects stored before the store got its master key.

    Each object is checked against its id first; a corrupt one is listed and left as it
    is (exit status 1).  Resumable: run it again after an interruption.

    \b
    Examples:
      CAIRN_MASTER_KEY_FILE=master.key cairn encryption encrypt-existing
    """
    from ..cas.rekey import encrypt_existing as run

    raw = _raw_backend(obj, objects_at, endpoint_url)
    report = run(_open(raw), workers=workers, progress=None if not as_json else False)
    _print_report(report, "encrypted", as_json)
