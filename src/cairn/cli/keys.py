"""`cairn keys`: Ed25519 keys that sign model versions (needs `pip install 'cairn[signing]'`)."""

from __future__ import annotations

from pathlib import Path

import click

from .format import ts
from .main import emit_json, handle_errors, hidden_alias, json_option


@click.group()
def keys() -> None:
    """Create, trust, list and revoke signing keys.

    \b
    Examples:
      cairn keys create                 # signs every new version from now on
      cairn keys trust colleague.pub --name ann
      cairn keys ls
    """


@keys.command("create")
@click.option("--name", default="default", show_default=True,
              help="Key name; versions are signed with 'default'.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Keys directory (default: $CAIRN_KEYS_DIR or ~/.config/cairn/keys).")
@json_option
@click.pass_obj
@handle_errors
def create(obj, name: str, directory: str | None, as_json: bool) -> None:
    """Make a key pair and trust its public key in this store.

    The private key stays in the keys directory (mode 0600); never share it.

    \b
    Example:
      cairn keys create --name ci
    """
    from ..registry import signing

    key = obj.client.create_signing_key(name, directory)
    path = (Path(directory) if directory else signing.keys_dir()) / f"{name}.key"
    if as_json:
        emit_json({"key_id": key.key_id, "name": name, "private_key": str(path),
                   "public_key": str(path.with_suffix(".pub"))})
    else:
        click.echo(f"created key {key.key_id} ({name}): private {path}, public "
                   f"{path.with_suffix('.pub')}; trusted in this store")


@keys.command("trust")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Whose key this is.")
@json_option
@click.pass_obj
@handle_errors
def trust(obj, public_key: str, name: str, as_json: bool) -> None:
    """Trust someone's public key (PEM) for verifying versions.

    \b
    Example:
      cairn keys trust ann.pub --name ann
    """
    key = obj.client.trust_signing_key(Path(public_key).read_text(), name)
    if as_json:
        emit_json({"key_id": key.key_id, "name": key.name})
    else:
        click.echo(f"trusted key {key.key_id} ({key.name})")


@keys.command("ls")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@json_option
@click.pass_obj
@handle_errors
def ls(obj, include_revoked: bool, as_json: bool) -> None:
    """List the keys trusted in this store.

    \b
    Example:
      cairn keys ls --all
    """
    found = obj.client.list_signing_keys(include_revoked)
    if as_json:
        emit_json([_key_json(k) for k in found])
        return
    for k in found:
        state = f" revoked {ts(k.revoked_at)}" if k.revoked_at else ""
        click.echo(f"{k.key_id}  {k.name}  added {ts(k.created_at)} by {k.created_by}{state}")
    if not found:
        click.echo("no trusted keys; `cairn keys create` makes one")


def _key_json(k) -> dict:
    return {"key_id": k.key_id, "name": k.name, "created_by": k.created_by,
            "created_at": k.created_at, "revoked_at": k.revoked_at}


@keys.command("delete")
@click.argument("key_id")
@json_option
@click.pass_obj
@handle_errors
def revoke(obj, key_id: str, as_json: bool) -> None:
    """Stop trusting a key: its versions are no longer verified (verify_signature=True refuses them).

    \b
    Example:
      cairn keys delete 0123456789abcdef
    """
    obj.client.revoke_signing_key(key_id)
    if as_json:  # the key's record as `keys ls --all` shows it, now with revoked_at
        key = next((k for k in obj.client.list_signing_keys(True) if k.key_id == key_id), None)
        emit_json(_key_json(key) if key is not None else {"key_id": key_id, "revoked_at": None})
    else:
        click.echo(f"revoked key {key_id}")


hidden_alias(keys, "delete", "revoke")  # the old spelling, out of the help, for a release
