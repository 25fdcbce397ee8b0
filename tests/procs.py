"""Writer and reader processes for the multi-process tests: started, read line by line, reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

_procs: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def reap_processes():
    """Kill and reap every process a test spawned (a module imports this fixture)."""
    yield
    while _procs:
        p = _procs.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()  # closes the pipes


def _default_signals() -> None:
    # A suite started in the background (nohup, `cmd &` in a script) ignores SIGINT, and a
    # child inherits that: Python then installs no KeyboardInterrupt handler and the
    # Ctrl-C tests would wait for nothing.  Give the writer the disposition a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(store, code: str, *args, env: dict | None = None, stdin: bool = False) -> subprocess.Popen:
    """``python -c code args...`` with ``store`` as its tracking URI, flushing every 0.2 s."""
    full = {**os.environ, "CAIRN_TRACKING_URI": str(store), "CAIRN_FLUSH_INTERVAL": "0.2",
            **(env or {})}
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=full,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         preexec_fn=_default_signals)
    _procs.append(p)
    return p


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60) -> str:
    """The rest of the first line of ``proc``'s output that starts with ``prefix``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line[len(prefix):].strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {prefix!r} line; stderr: {proc.stderr.read()}")
