"""benchmarks/drift_bench.py still runs: Cairn's side only, at the --quick sizes (the Evidently
side needs its own virtualenv, which the test suite does not build).  Besides running, the
verdicts must be the ones the generated data was built for: a benchmark whose Cairn side
stopped detecting a 0.3-sd shift would otherwise keep printing a fine speed-up.  About 4 s
(120k rows x 50 columns generated, then one pass), so not marked slow."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "drift_bench.py"


def test_quick_cairn_side_gives_the_designed_verdicts(tmp_path):
    out = tmp_path / "drift.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--side", "cairn",
                           "--cache", str(tmp_path / "data"), "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    cairn = result["sides"]["cairn"]
    assert len(cairn["columns"]) == result["columns"] == 50
    assert result["against_design"]["cairn"] == []
    methods = {c["kind"]: c["method"] for c in cairn["columns"].values()}
    assert methods == {"numerical": "wasserstein", "categorical": "jensenshannon"}
    assert "cairn" in proc.stdout and "evidently" not in result["sides"]
