"""The README's serving section runs as written: its Python registers a model, its shell
commands serve it, answer the curl and list the prediction log."""

import json
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from serving import CAIRN, free_port, wait_ready

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.slow  # a child server process


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_serving_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_TRACKING_URI", str(tmp_path / ".cairn"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    section = _section()
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(python, "README.md#serving", "exec"), {"__name__": "readme"})
    shell = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [ln.split("#")[0].strip() for ln in shell.replace("\\\n", " ").splitlines()]
    serve, wait, curl, stop, ls, predict = [ln for ln in lines if ln]
    assert stop == "kill %1 && wait"  # done below with SIGTERM to the server's group
    assert serve.endswith("&") and serve.startswith("cairn serve")
    assert wait.startswith("until curl -sf localhost:8080/ping")  # readiness, as wait_ready
    args = shlex.split(serve.rstrip("&"))[1:]
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    env = {**os.environ, "CAIRN_TRACKING_URI": str(tmp_path / ".cairn")}
    proc = subprocess.Popen([*CAIRN, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 90, proc)
        body = re.search(r"-d '(.*?)'", curl).group(1)
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", content=body,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json() == {"predictions": [True]}, r.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    out = subprocess.run([*CAIRN, *shlex.split(ls)[1:], "--json"], env=env, capture_output=True,
                         text=True, check=True)
    assert [entry["rows"] for entry in json.loads(out.stdout)] == [1], out.stdout
    assert (tmp_path / "rows.csv").read_text().startswith("0,1,2\n")  # the Python wrote it
    done = subprocess.run([*CAIRN, *shlex.split(predict)[1:], "--json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scored = (tmp_path / "scored.csv").read_text().splitlines()
    assert scored[0].endswith("prediction") and len(scored) == 11
