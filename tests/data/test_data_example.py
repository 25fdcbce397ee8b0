"""examples/quickstart_data.py runs and shows the model's data lineage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart_data.py"


@pytest.mark.slow
def test_quickstart_data_example(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("pyarrow")
    env = {"PATH": "/usr/bin:/bin", "CAIRN_TRACKING_URI": str(tmp_path / "store"),
           "CAIRN_FLUSH_INTERVAL": "0.2", "HOME": str(tmp_path), "COLUMNS": "120"}
    out = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "versioned digits@1 and digits@2" in out.stdout
    assert "split digits-features@1 into digits-features.train@1, digits-features.test@1" \
        in out.stdout
    text = out.stdout
    assert "model digits-sgd@1.0.0" in text and "← derived data digits@2" in text
    assert "input:train data digits-features.train@1" in text
