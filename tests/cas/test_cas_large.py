"""Large files: chunk-level dedup and bounded memory (slow: hundreds of MB of I/O)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from cairn.cas import ObjectStore

MiB = 2**20


@pytest.mark.slow
def test_one_percent_change_stores_about_one_percent(tmp_path: Path) -> None:
    store = ObjectStore.local(tmp_path / "objects")
    path = tmp_path / "checkpoint.bin"
    with open(path, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(10 * MiB))

    tracemalloc.start()
    try:
        first = store.put_file(path, "checkpoint.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.size == 200 * MiB
    assert peak < 80 * MiB, f"put_file held {peak / MiB:.0f} MiB for a 200 MiB file"

    before = set(store.backend.iter_oids())
    with open(path, "r+b") as f:  # change one contiguous 2 MiB region (1%) in place
        f.seek(123 * MiB + 12345)
        f.write(os.urandom(2 * MiB))
    second = store.put_file(path, "checkpoint.bin")

    assert second.digest != first.digest
    new = set(store.backend.iter_oids()) - before
    new_bytes = sum(store.backend.size(oid) for oid in new)
    assert new_bytes < 6 * MiB, f"a 2 MiB change stored {new_bytes / MiB:.1f} MiB"
    assert len(set(second.chunks) & set(first.chunks)) > 0.95 * len(first.chunks)

    restored = store.checkout(second, tmp_path / "restored.bin")
    assert restored.stat().st_size == second.size
    assert store.verify(new).ok
