"""Encryption at rest on a local store: round trips, tampering, keys missing, wrong or bad."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cas import LocalBackend, MemoryBackend, ObjectStore
from cairn.cas.crypto import MAGIC, MARKER_NAME, EncryptedBackend, parse_header
from cairn.cas.keyprovider import MasterKey, new_key, parse_key
from cairn.cas.packs import PackWriter
from cairn.cas.rekey import encrypt_existing
from cairn.errors import CorruptObject, EncryptionError, InvalidArgument

SECRET = b"the secret payload 0123456789 " * 40  # compressible: stored zstd-then-sealed


def key_b64(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


KEY, OTHER = key_b64(1), key_b64(2)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    return KEY


@pytest.fixture
def enc(tmp_path, keyed) -> ObjectStore:
    store = ObjectStore.local(tmp_path / "objects")
    assert isinstance(store.backend, EncryptedBackend)
    return store


def raw_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def listing(root: Path) -> list[tuple[str, int, int]]:
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))] if root.exists() else []


# -- round trips ---------------------------------------------------------------------

def test_bytes_round_trip_and_stored_bytes_hold_no_plaintext(enc, tmp_path):
    oid = enc.put_bytes(SECRET)
    small = enc.put_bytes(b"tiny secret")
    empty = enc.put_bytes(b"")
    assert enc.get_bytes(oid) == SECRET
    assert enc.get_bytes(small) == b"tiny secret"
    assert enc.get_bytes(empty) == b""
    stored = LocalBackend(tmp_path / "objects").get(oid)
    assert stored.startswith(MAGIC)
    assert b"secret" not in stored and b"the secret payload" not in stored
    assert b"tiny secret" not in LocalBackend(tmp_path / "objects").get(small)
    marker = (tmp_path / "objects" / MARKER_NAME).read_text()
    assert '"AES-256-GCM"' in marker and MasterKey(base64.b64decode(KEY)).key_id in marker
    assert KEY not in marker
    assert enc.verify().ok and enc.verify().checked == 3


def test_chunked_file_tree_and_pack_round_trip(enc, tmp_path):
    big = tmp_path / "big.bin"
    rng_bytes = os.urandom(3 << 20)
    big.write_bytes(rng_bytes + SECRET * 2000)
    store = ObjectStore.local(tmp_path / "objects", chunk_threshold=1 << 20)
    entry = store.put_file(big, "model/big.bin")
    assert len(entry.chunks) > 5
    small = tmp_path / "d"
    small.mkdir()
    (small / "a.txt").write_bytes(SECRET)
    entries = [entry, *store.put_dir(small)]
    tree = store.put_tree(entries)
    assert store.get_tree(tree) == sorted(entries, key=lambda e: e.path)
    assert store.checkout(entry, tmp_path / "out.bin").read_bytes() == big.read_bytes()
    with PackWriter(store, target=1 << 16) as packs:
        members = {}
        for i in range(50):
            data = b"packed secret %d " % i * 20
            oid = hashlib.sha256(data).hexdigest()
            members[oid] = data
            packs.add(oid, data)
    assert packs.written
    fresh = ObjectStore.local(tmp_path / "objects")
    for oid, data in members.items():
        assert fresh.get_bytes(oid) == data
    # Nothing on disk is readable: no file holds the plaintext of any object.
    for name, stored in raw_files(tmp_path / "objects").items():
        if name == MARKER_NAME or name.startswith("pack-index.sqlite"):
            continue  # the index holds oids and offsets, no content
        assert stored.startswith(MAGIC), name
        assert b"secret" not in stored, name
    # The pack index is rebuilt from the (decrypted) packs' headers.
    from cairn.cas.packs import rebuild_index
    assert rebuild_index(fresh) == len(packs.written)
    assert fresh.verify().ok


def test_conformance_of_the_wrapped_backends(tmp_path, keyed):
    from cairn.cas.crypto import encryption_layer

    for raw in (LocalBackend(tmp_path / "o"), MemoryBackend()):
        b = encryption_layer(raw, raw)
        oid = "ab" * 32
        assert not b.exists(oid)
        b.put(oid, b"r" + b"x" * 100)
        b.put(oid, bytearray(b"r" + b"x" * 100))  # re-put of an oid is harmless
        assert b.get(oid) == b"r" + b"x" * 100 and b.exists(oid)
        assert list(b.iter_oids()) == [oid] and b.size(oid) > 101
        b.delete(oid)
        assert not b.exists(oid)


# -- tampering -----------------------------------------------------------------------

def flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["ciphertext", "tag", "magic", "key id", "wrapped key", "nonce",
                                   "key id length"])
def test_a_flipped_bit_anywhere_fails_authentication_naming_the_object(enc, tmp_path, where):
    oid = enc.put_bytes(SECRET)
    path = LocalBackend(tmp_path / "objects").path(oid)
    h = parse_header(oid, path.read_bytes())
    k = len(h.key_id)
    offset = {"ciphertext": h.body + 5, "tag": -1, "magic": 1, "key id": 5 + 3,
              "key id length": 4, "wrapped key": 5 + k + 2 + 20, "nonce": h.body - 3}[where]
    flip(path, offset)
    with pytest.raises(CorruptObject) as info:
        ObjectStore.local(tmp_path / "objects").get_bytes(oid)
    assert oid in str(info.value) and info.value.details["oid"] == oid
    result = ObjectStore.local(tmp_path / "objects").verify()
    assert result.corrupt == (oid,)


def test_swapped_objects_fail_authentication(enc, tmp_path):
    a, b = enc.put_bytes(b"object a " * 10), enc.put_bytes(b"object b " * 10)
    pa, pb = (LocalBackend(tmp_path / "objects").path(o) for o in (a, b))
    da, db = pa.read_bytes(), pb.read_bytes()
    for p, d in ((pa, db), (pb, da)):
        p.chmod(0o644)
        p.write_bytes(d)
    for oid in (a, b):
        with pytest.raises(CorruptObject, match=oid):
            enc.get_bytes(oid)
    # Only the header swapped (data key of b over ciphertext of a) fails as well.
    ha = parse_header(a, da)
    hb = parse_header(b, db)
    pa.write_bytes(db[:hb.body] + da[ha.body:])
    with pytest.raises(CorruptObject, match=a):
        enc.get_bytes(a)


def test_an_unencrypted_object_slipped_into_an_encrypted_store_is_corrupt(enc, tmp_path):
    oid = enc.put_bytes(SECRET)
    path = LocalBackend(tmp_path / "objects").path(oid)
    path.chmod(0o644)
    path.write_bytes(b"r" + SECRET)
    with pytest.raises(CorruptObject, match="unencrypted"):
        enc.get_bytes(oid)


def test_doctor_reports_a_tampered_object(tmp_path, keyed):
    from serving import CAIRN

    store = tmp_path / "store"
    env = {**os.environ, "CAIRN_TRACKING_URI": str(store)}
    code = ("import cairn, sys\n"
            "with cairn.start_run(experiment='e'):\n"
            "    cairn.log_text('secret artifact text', 'notes.txt')\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    ok = subprocess.run([*CAIRN, "doctor"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    objects = LocalBackend(store / "objects")
    victim = next(iter(objects.iter_oids()))
    flip(objects.path(victim), -3)
    bad = subprocess.run([*CAIRN, "doctor", "--json"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and victim in bad.stdout


# -- keys: missing, wrong, bad -------------------------------------------------------

def test_missing_key_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    store = ObjectStore.local(tmp_path / "objects")
    oid = store.put_bytes(SECRET)
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    before = listing(tmp_path)
    with pytest.raises(EncryptionError) as info:
        ObjectStore.local(tmp_path / "objects")
    msg = str(info.value)
    assert "CAIRN_MASTER_KEY" in msg and "CAIRN_MASTER_KEY_FILE" in msg and "encrypted" in msg
    assert listing(tmp_path) == before
    # A library user holding the old store object keeps working, the marker untouched.
    assert store.get_bytes(oid) == SECRET


def test_wrong_key_is_refused_before_any_decrypt(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    ObjectStore.local(tmp_path / "objects").put_bytes(SECRET)
    monkeypatch.setenv("CAIRN_MASTER_KEY", OTHER)
    before = listing(tmp_path)
    with pytest.raises(EncryptionError, match="wrong master key") as info:
        ObjectStore.local(tmp_path / "objects")
    assert MasterKey(base64.b64decode(KEY)).key_id in str(info.value)
    assert KEY not in str(info.value) and OTHER not in str(info.value)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("bad,why", [
    ("not base64 at all!", "not base64"),
    (base64.b64encode(b"x" * 16).decode(), "16 bytes"),
    (base64.b64encode(b"x" * 33).decode(), "33 bytes"),
    ("A" * 43, "not valid base64"),
    ("\udcff" + KEY[1:], "not base64"),
    ("é" * 44, "not base64"),
])
def test_bad_keys_are_refused_without_echoing_them(tmp_path, monkeypatch, bad, why):
    monkeypatch.setenv("CAIRN_MASTER_KEY", bad) if "\udcff" not in bad else None
    with pytest.raises(EncryptionError, match=why) as info:
        if "\udcff" in bad:  # a lone surrogate cannot be in the environment: the API gets it
            parse_key(bad, "CAIRN_MASTER_KEY")
        else:
            ObjectStore.local(tmp_path / "objects")
    assert bad not in str(info.value) and bad not in repr(info.value.details)
    assert "CAIRN_MASTER_KEY" in str(info.value)
    assert not (tmp_path / "objects").exists()


def test_key_file_missing_readable_by_others_or_both_settings(tmp_path, monkeypatch):
    f = tmp_path / "master.key"
    monkeypatch.setenv("CAIRN_MASTER_KEY_FILE", str(f))
    with pytest.raises(EncryptionError, match="does not exist"):
        ObjectStore.local(tmp_path / "objects")
    f.write_text(KEY + "\n")
    f.chmod(0o644)
    with pytest.raises(EncryptionError, match="chmod 600") as info:
        ObjectStore.local(tmp_path / "objects")
    assert KEY not in str(info.value)
    f.chmod(0o600)
    store = ObjectStore.local(tmp_path / "objects")
    assert store.get_bytes(store.put_bytes(SECRET)) == SECRET
    f.chmod(0o600)
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    with pytest.raises(EncryptionError, match="set one of them"):
        ObjectStore.local(tmp_path / "objects")
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    f.write_bytes(b"\xff\xfe" + b"k" * 40)
    with pytest.raises(EncryptionError, match="not base64"):
        ObjectStore.local(tmp_path / "objects")


def test_the_key_never_shows_in_repr_str_pickle_or_logs(enc, tmp_path, caplog):
    key = parse_key(KEY, "CAIRN_MASTER_KEY")
    raw = base64.b64decode(KEY)
    for text in (repr(key), str(key), repr(enc), repr(enc.backend), repr(enc.backend.keyring)):
        assert KEY not in text and raw.hex() not in text and str(raw) not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert not hasattr(key, "__dict__")
    with caplog.at_level("DEBUG"):
        enc.get_bytes(enc.put_bytes(SECRET))
    assert KEY not in caplog.text


def test_cli_never_prints_the_key(tmp_path):
    from serving import CAIRN

    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_MASTER")}
    out = subprocess.run([*CAIRN, "encryption", "new-key", str(tmp_path / "k"), "--json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key = (tmp_path / "k").read_text().strip()
    assert key not in out.stdout + out.stderr
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([*CAIRN, "encryption", "new-key", str(tmp_path / "k")], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "never overwritten" in again.stderr
    assert (tmp_path / "k").read_text().strip() == key
    bad = subprocess.run([*CAIRN, "encryption", "status", "--objects", str(tmp_path / "o")],
                         env={**env, "CAIRN_MASTER_KEY": "secretvalue-not-a-key"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "secretvalue" not in bad.stdout + bad.stderr
    assert "CAIRN_MASTER_KEY is not valid base64" in bad.stderr


def test_new_keys_are_random_and_valid():
    a, b = new_key(), new_key()
    assert a != b and len(a) == 44
    assert parse_key(a, "x").key_id != parse_key(b, "x").key_id


# -- a store that had objects before its key ------------------------------------------

def test_unencrypted_store_gets_a_key_then_is_encrypted_in_place(tmp_path, monkeypatch):
    plain = ObjectStore.local(tmp_path / "objects")
    old = [plain.put_bytes(b"old object %d " % i * 30) for i in range(20)]
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    store = ObjectStore.local(tmp_path / "objects")
    new = store.put_bytes(SECRET)
    assert LocalBackend(tmp_path / "objects").get(new).startswith(MAGIC)
    assert all(store.get_bytes(o) == b"old object %d " % i * 30 for i, o in enumerate(old))
    assert '"plaintext_objects": true' in (tmp_path / "objects" / MARKER_NAME).read_text()
    # One of the old objects has rotted: it is reported, not sealed; the rest are.
    victim = LocalBackend(tmp_path / "objects").path(old[0])
    flip(victim, -1)
    report = encrypt_existing(store)
    assert report.rewritten == 19 and report.already == 1 and report.corrupt == [old[0]]
    assert not report.complete
    assert '"plaintext_objects": true' in (tmp_path / "objects" / MARKER_NAME).read_text()
    LocalBackend(tmp_path / "objects").delete(old[0])
    report = encrypt_existing(ObjectStore.local(tmp_path / "objects"))
    assert report.complete and report.rewritten == 0 and report.already == 20
    assert '"plaintext_objects": false' in (tmp_path / "objects" / MARKER_NAME).read_text()
    fresh = ObjectStore.local(tmp_path / "objects")
    for stored in raw_files(tmp_path / "objects").values():
        assert b"old object" not in stored
    assert fresh.get_bytes(old[5]) == b"old object 5 " * 30


def test_encryption_layer_refuses_backends_it_cannot_mark(keyed):
    from cairn.cas.crypto import encryption_layer

    class Odd(MemoryBackend):
        pass

    class Bare:
        def __init__(self):
            self.m = MemoryBackend()

        def __getattr__(self, name):
            return getattr(self.m, name)

    b = encryption_layer(Bare(), Bare())  # type: ignore[arg-type]
    with pytest.raises(EncryptionError, match="cannot record"):
        b.put("ab" * 32, b"rdata")
    assert isinstance(encryption_layer(Odd(), Odd()), EncryptedBackend)


def test_invalid_oid_still_rejected(enc):
    with pytest.raises(InvalidArgument):
        enc.get_bytes("../etc/passwd")


def test_import_cairn_does_not_import_cryptography():
    code = "import sys, cairn; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CAIRN_MASTER_KEY": KEY})
    assert out.stdout.strip() == "False", out.stderr


def test_the_key_settings_are_the_declared_ones():
    from cairn import settings
    from cairn.cas import keyprovider

    for name in ("MASTER_KEY", "MASTER_KEY_FILE", "MASTER_KEY_OLD", "KEY_PROVIDER"):
        assert getattr(settings, name).name == getattr(keyprovider, name)
        assert getattr(settings, name) in settings.SETTINGS


@pytest.mark.parametrize("path", ["bad\udc80\ud800name", "nul\0byte"])
def test_key_file_names_that_cannot_be_files(tmp_path, monkeypatch, path):
    from cairn.cas.keyprovider import read_key_file

    with pytest.raises(EncryptionError, match="usable file name|does not exist"):
        read_key_file(path)
    if "\0" not in path:
        monkeypatch.setenv("CAIRN_MASTER_KEY_FILE", path.replace("\ud800", ""))
        with pytest.raises(EncryptionError):
            ObjectStore.local(tmp_path / "objects")


def test_cli_encrypt_existing_and_status(tmp_path):
    import json

    from serving import CAIRN

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_MASTER", "CAIRN_KEY"))}
    plain = ObjectStore.local(tmp_path / "objects")
    oids = [plain.put_bytes(b"legacy %d " % i * 20) for i in range(5)]
    status = subprocess.run([*CAIRN, "encryption", "status", "--objects", str(tmp_path / "objects"),
                             "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["encrypted"] is False
    keyed = {**env, "CAIRN_MASTER_KEY": KEY}
    out = subprocess.run([*CAIRN, "encryption", "encrypt-existing", "--objects",
                          str(tmp_path / "objects"), "--json"], env=keyed, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rewritten"] == 5 and report["complete"]
    assert all(LocalBackend(tmp_path / "objects").get(o).startswith(MAGIC) for o in oids)
    status = subprocess.run([*CAIRN, "encryption", "status", "--objects", str(tmp_path / "objects")],
                            env=keyed, capture_output=True, text=True, timeout=60)
    assert "encrypted (AES-256-GCM)" in status.stdout and "is the store's" in status.stdout
    assert KEY not in status.stdout + status.stderr + out.stdout + out.stderr
