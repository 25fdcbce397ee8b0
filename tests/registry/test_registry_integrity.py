"""Digests on every load, a verified cache, tampering in the object store and the database,
and Ed25519 signatures."""

import os

import pytest

import cairn
from cairn import CorruptObject, InvalidSignature
from cairn.registry import loading

from .conftest import fit_logreg


def _object_path(store_dir, oid):
    return store_dir / "objects" / oid[:2] / oid[2:]


def _flip_byte(path, offset=-1):
    os.chmod(path, 0o644)  # objects are stored read-only
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _model_file(client, mv, name="model/model.pkl"):
    return next(e for e in client.store.objects.get_tree(mv.tree_oid) if e.path == name)


def test_one_flipped_byte_in_the_object_store_fails_the_load_naming_the_file(tracking, data):
    c = cairn.Client()
    mv = c.register_model("m", fit_logreg(data))
    _flip_byte(_object_path(tracking, _model_file(c, mv).digest))
    with pytest.raises(CorruptObject, match=r"m/1.0.0: file model/model.pkl is corrupt") as info:
        cairn.models.load("m/1.0.0")
    assert info.value.details["path"] == "model/model.pkl"
    # Nothing half-written is left in the cache, and `verify` names the file too.
    assert not list((tracking / "cache" / "models").glob(mv.tree_oid))
    (report,) = c.verify_model("m")
    assert not report.ok and report.problems[0].startswith("model/model.pkl: object ")


def test_torch_weights_tampered(tracking):
    torch = pytest.importorskip("torch")
    from .nets import TinyNet

    c = cairn.Client()
    mv = c.register_model("net", TinyNet(), init_kwargs={})
    entry = _model_file(c, mv, "model/state_dict.pt")
    _flip_byte(_object_path(tracking, entry.digest), offset=len(b"r") + 200)
    with pytest.raises(CorruptObject, match="file model/state_dict.pt is corrupt"):
        cairn.models.load("net/1.0.0")
    assert torch is not None


def test_cached_loads_cost_a_digest_check_only(tracking, data, monkeypatch):
    c = cairn.Client()
    mv = c.register_model("m", fit_logreg(data))
    cairn.models.load("m/1.0.0")
    cached = tracking / "cache" / "models" / mv.tree_oid
    assert (cached / "model" / "model.pkl").is_file()
    from cairn.cas.backends.local import LocalBackend

    reads = []
    # Counted where the bytes are read, beneath the layers (tiering, encryption) every
    # store's backend is wrapped in.
    real_get = LocalBackend.get
    monkeypatch.setattr(LocalBackend, "get", lambda self, oid: reads.append(oid) or real_get(self, oid))
    cairn.models.load("m/1.0.0")
    assert reads == [mv.tree_oid]  # the manifest; every cached file is re-hashed against it
    # A cached file edited by someone is noticed, thrown away and checked out again.
    path = cached / "model" / "model.pkl"
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    reads.clear()
    model = cairn.models.load("m/1.0.0")
    assert hasattr(model, "predict") and len(reads) > 1


def test_an_edited_registry_record_is_refused(tracking, data, db):
    c = cairn.Client()
    c.register_model("m", fit_logreg(data))
    other = c.register_model("m", fit_logreg(data, C=0.1))
    # Point 1.0.0 at 1.1.0's files behind the registry's back.
    db().execute("UPDATE model_versions SET tree_oid = ? WHERE version = '1.0.0'", (other.tree_oid,))
    with pytest.raises(CorruptObject, match="record of m/1.0.0 was changed after it was registered"):
        cairn.models.load("m/1.0.0")
    reports = {r.version: r for r in c.verify_model("m")}
    assert not reports["1.0.0"].ok and reports["1.1.0"].ok


def test_signed_versions_verify_with_trusted_keys(tracking, data, db, tmp_path):
    pytest.importorskip("cryptography")
    c = cairn.Client()
    unsigned = c.register_model("m", fit_logreg(data))
    assert not unsigned.signed
    key = c.create_signing_key()
    assert [k.key_id for k in c.list_signing_keys()] == [key.key_id]
    assert (tmp_path / "keys" / "default.key").stat().st_mode & 0o777 == 0o600
    mv = c.register_model("m", fit_logreg(data, C=0.2))
    assert mv.signed and mv.signing_key == key.key_id and len(mv.signature_bytes) == 64
    assert loading.check_signature(c._registry, mv, None, None) == "verified"
    cairn.models.load("m/1.1.0", verify_signature=True)
    with pytest.raises(InvalidSignature, match="m/1.0.0 is not signed"):
        cairn.models.load("m/1.0.0", verify_signature=True)
    cairn.models.load("m/1.0.0")  # unsigned versions still load unless a signature is demanded

    # A forged signature (and a consistent-looking record) is caught.
    forged = bytes(64)
    db().execute("UPDATE model_versions SET signature_bytes = ? WHERE version = '1.1.0'", (forged,))
    with pytest.raises(InvalidSignature, match="signature of m/1.1.0 does not verify"):
        cairn.models.load("m/1.1.0")
    (report,) = c.verify_model("m", "1.1.0")
    assert report.signature == "invalid" and not report.ok


def test_untrusted_and_explicitly_trusted_keys(tracking, data, tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    from cairn.registry import signing

    # Someone else's key, not trusted in this store.
    _path, pem = signing.create_key_files("default", tmp_path / "theirs")
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "theirs"))
    c = cairn.Client()
    mv = c.register_model("m", fit_logreg(data))
    assert mv.signed
    assert loading.check_signature(c._registry, mv, None, None) == "untrusted"
    with pytest.raises(InvalidSignature, match="not trusted here"):
        cairn.models.load("m/1.0.0", verify_signature=True)
    pub = tmp_path / "theirs" / "default.pub"
    cairn.models.load("m/1.0.0", verify_signature=True, trusted_keys=[pub])
    c.trust_signing_key(pem, "ann")
    cairn.models.load("m/1.0.0", verify_signature=True)
    c.revoke_signing_key(mv.signing_key)
    with pytest.raises(InvalidSignature, match="not trusted"):
        cairn.models.load("m/1.0.0", verify_signature=True)
