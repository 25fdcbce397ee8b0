"""`import cairn` stays light: monitoring (and SciPy, pandas) load only when used."""

import subprocess
import sys


def loaded_after(statement):
    code = (f"{statement}\nimport sys\n"
            "print(' '.join(sorted(m for m in ('scipy', 'pandas', 'pyarrow', 'cairn.monitoring')"
            " if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_cairn_loads_no_monitoring():
    assert loaded_after("import cairn") == []


def test_import_monitoring_loads_no_scipy():
    assert "scipy" not in loaded_after("import cairn.monitoring")


def test_cli_start_loads_no_monitoring():
    assert loaded_after("import cairn.cli.main") == []


def test_import_monitoring_loads_no_numpy_until_a_drift_class_is_asked_for():
    code = ("import sys, cairn.monitoring as m\nbefore = 'numpy' in sys.modules\n"
            "m.DriftReport, m.ColumnDrift, m.WindowDrift\nprint(before, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
