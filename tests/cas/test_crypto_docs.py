"""docs/security.md "Encryption at rest": its examples run, and what it names exists."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil

import pytest
from doc_examples import DOCS, blocks, run_python

from cairn.cas import ObjectStore
from cairn.cas.crypto import EncryptedBackend
from cairn.errors import EncryptionError

GUIDE = DOCS / "security.md"
SECTION = "Encryption at rest"
NAMES = ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD", "CAIRN_KEY_PROVIDER")


@pytest.fixture(autouse=True)
def no_key():
    saved = {n: os.environ.pop(n) for n in NAMES if n in os.environ}
    yield
    for n in NAMES:
        os.environ.pop(n, None)
    os.environ.update(saved)


def test_the_examples_run():
    ns = run_python(GUIDE, section=SECTION, at_least=4)
    try:
        marker = json.loads((ns["work"] / "objects" / "encryption.json").read_text())
        assert set(marker) >= {"format", "algorithm", "key_id", "plaintext_objects"}
        assert ns["report"].complete
    finally:
        shutil.rmtree(ns["work"])


def test_every_command_and_option_it_names_exists():
    from click.testing import CliRunner

    from cairn.cli.main import cli

    text = "\n".join(code for _, code in blocks(GUIDE, "bash", section=SECTION))
    runner = CliRunner()
    for line in text.splitlines():
        m = re.search(r"cairn encryption ([a-z-]+)(.*?)(#|$)", line)
        if not m:
            continue
        result = runner.invoke(cli, ["encryption", m.group(1), "--help"])
        assert result.exit_code == 0, line
        for option in re.findall(r"--[a-z-]+", m.group(2)):
            assert option in result.output, (line, option)
    section = GUIDE.read_text().split(f"## {SECTION}")[1].split("\n## ")[0]
    for command in ("new-key", "status", "rotate", "encrypt-existing"):
        assert runner.invoke(cli, ["encryption", command, "--help"]).exit_code == 0
        assert f"cairn encryption {command}" in section
    for option in ("--new-key-file", "--objects", "--endpoint-url"):
        assert option in section
        assert option in runner.invoke(cli, ["encryption", "rotate", "--help"]).output


def test_a_key_provider_named_by_module_and_factory(tmp_path, monkeypatch):
    module = tmp_path / "crypto_doc_kms.py"
    module.write_text(
        "import secrets\n"
        "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
        "class P:\n"
        "    def __init__(self, kid, secret):\n"
        "        self.key_id, self._a = kid, AESGCM(secret)\n"
        "    def wrap(self, dek):\n"
        "        n = secrets.token_bytes(12)\n"
        "        return n + self._a.encrypt(n, dek, None)\n"
        "    def unwrap(self, blob):\n"
        "        from cryptography.exceptions import InvalidTag\n"
        "        try:\n"
        "            return self._a.decrypt(blob[:12], blob[12:], None)\n"
        "        except InvalidTag:\n"
        "            raise ValueError('no') from None\n"
        "NEW, OLD = P('kms-2', b'2' * 32), P('kms-1', b'1' * 32)\n"
        "def both():\n"
        "    return [NEW, OLD]\n"
        "def only_old():\n"
        "    return OLD\n"
        "def not_a_provider():\n"
        "    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setenv("CAIRN_KEY_PROVIDER", "crypto_doc_kms:only_old")
    old_store = ObjectStore.local(tmp_path / "objects")
    early = old_store.put_bytes(b"under kms-1")
    monkeypatch.setenv("CAIRN_KEY_PROVIDER", "crypto_doc_kms:both")
    # The marker names kms-1, which "both" holds: it reads and keeps sealing with kms-1.
    store = ObjectStore.local(tmp_path / "objects")
    assert isinstance(store.backend, EncryptedBackend)
    assert store.get_bytes(early) == b"under kms-1"
    from cairn.cas.rekey import rotate

    mod = importlib.import_module("crypto_doc_kms")
    assert rotate(store, mod.NEW).complete
    assert ObjectStore.local(tmp_path / "objects").get_bytes(early) == b"under kms-1"
    for spec, why in (("crypto_doc_kms:not_a_provider", "not a key provider"),
                      ("crypto_doc_kms:missing", "cannot load"),
                      ("no_such_module_xyz:f", "cannot load"), ("nocolon", "module:factory")):
        monkeypatch.setenv("CAIRN_KEY_PROVIDER", spec)
        with pytest.raises(EncryptionError, match=why):
            ObjectStore.local(tmp_path / "objects")
    monkeypatch.setenv("CAIRN_KEY_PROVIDER", "crypto_doc_kms:both")
    monkeypatch.setenv("CAIRN_MASTER_KEY", "x")
    with pytest.raises(EncryptionError, match="not both"):
        ObjectStore.local(tmp_path / "objects")
