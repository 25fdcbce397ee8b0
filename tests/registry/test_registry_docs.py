"""docs/registry.md's examples run, in order, against a fresh store; import stays light."""

import os
import subprocess
import sys
from pathlib import Path

import doc_examples
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry.md"


def test_registry_guide_examples_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc_examples.run_python(DOC, at_least=6)


def test_import_cairn_does_not_import_the_registry():
    code = ("import sys, cairn; bad = [m for m in ('cairn.registry', 'cryptography', 'torch', "
            "'sklearn') if m in sys.modules]; m = cairn.models; "
            "print(bad, 'cairn.registry' in sys.modules, 'cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True False"


@pytest.mark.slow
def test_quickstart_registry_example_runs(tmp_path):
    script = DOC.parents[1] / "examples" / "quickstart_registry.py"
    env = {**os.environ, "CAIRN_TRACKING_URI": str(tmp_path / "store"),
           "CAIRN_KEYS_DIR": str(tmp_path / "keys"), "CAIRN_CAPTURE_ENV": "0"}
    out = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "request" in out.stdout and "applied" in out.stdout
    assert "rolled back: production serves digits-classifier/1.0.0 again" in out.stdout
    assert "chain intact" in out.stdout
