"""The object-store suites again, on backends wrapped by the encryption layer: a sealed
store must behave like any other (the suites are imported and collected here with this
module's ``backend`` fixture).

Left out: the two backend tests that check ``size(oid) == len(put bytes)``.  An encrypted
backend's ``size`` is what the object takes where it is kept (header and tag included),
which is what garbage collection and tiering account in; see the test below."""

from __future__ import annotations

import base64

import pytest
from test_cas_backends import (  # noqa: F401  (collected again, encrypted)
    test_concurrent_puts_of_one_oid, test_iter_oids_and_delete,
    test_malformed_oid_is_rejected, test_missing_object_is_not_found,
    test_put_accepts_bytearray_and_memoryview_without_aliasing,
    test_put_existing_oid_replaces_harmlessly,
)
from test_cas_odb import (  # noqa: F401
    test_checkout_replaces_existing_file, test_file_round_trip,
    test_flipped_byte_in_compressed_object_detected, test_flipped_byte_in_one_chunk_detected,
    test_flipped_byte_in_small_file_detected, test_get_missing_and_malformed_oid,
    test_get_tree_of_non_tree_object, test_has_and_missing,
    test_manifest_that_does_not_match_content_is_detected,
    test_object_whose_content_does_not_match_its_id_is_corrupt, test_put_bytes_is_idempotent,
    test_put_dir, test_read_missing_object_names_the_file, test_same_file_twice_is_one_object,
    test_tree_round_trip, test_verify_reports_missing_and_healthy,
)

from cairn.cas import LocalBackend, MemoryBackend
from cairn.cas.crypto import EncryptedBackend, encryption_layer


@pytest.fixture(params=["local", "memory"])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_MASTER_KEY", base64.b64encode(b"\x07" * 32).decode())
    raw = LocalBackend(tmp_path / "objects") if request.param == "local" else MemoryBackend()
    wrapped = encryption_layer(raw, raw)
    assert isinstance(wrapped, EncryptedBackend)
    return wrapped


def test_round_trip_and_size_is_the_stored_size(backend):
    oid = "ab" * 32
    for data in (b"", b"stored bytes"):
        backend.put(oid, data)
        assert backend.get(oid) == data
        assert backend.size(oid) == len(backend.inner.get(oid)) > len(data) + 16 + 12
