"""examples/quickstart.py (the first thing `make demo` runs): it ends by telling the user how to
open the web UI, once, with a command that works in the environment that ran it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from serving import free_port, wait_ready

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


@pytest.mark.slow
def test_quickstart_prints_a_ui_command_that_works(tmp_path):
    pytest.importorskip("sklearn")
    env = {"PATH": "/usr/bin:/bin", "CAIRN_TRACKING_URI": str(tmp_path / "store"),
           "HOME": str(tmp_path), "COLUMNS": "120"}
    out = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    hints = re.findall(r"start it with: (.+) --store (\S+) ui\)", out.stdout)
    assert len(hints) == 1, out.stdout
    cli, store = hints[0]
    assert Path(cli).is_file() and Path(cli).parent == Path(sys.executable).parent
    assert Path(store) == tmp_path / "store"
    # The printed command starts the UI (its server packages are installed), on a free port.
    port = free_port()
    proc = subprocess.Popen([cli, "--store", store, "ui", "--port", str(port), "--no-browser"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60, proc=proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()
    # Run from `make demo`, the script leaves the hint to the Makefile's last line.
    quiet = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path,
                           env={**env, "CAIRN_QUICKSTART_HINT": "0"},
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "start it with" not in quiet.stdout
    makefile = (EXAMPLE.parents[1] / "Makefile").read_text()
    assert makefile.count("start it with") == 1 and "CAIRN_QUICKSTART_HINT=0" in makefile
