"""Serving stays out of `import cairn`, and importing it pulls in no framework."""

import subprocess
import sys


def test_import_cairn_does_not_import_serving_and_serving_imports_no_framework():
    code = ("import sys, cairn; before = 'cairn.serving' in sys.modules; import cairn.serving; "
            "heavy = [m for m in ('pandas', 'uvicorn', 'fastapi', 'sklearn', 'torch', 'mlflow') "
            "if m in sys.modules]; print(before, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False []"
