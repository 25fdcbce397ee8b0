"""`cairn ui`: the UI on a local store, no set-up; a browser tab opens unless --no-browser."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from serving import CAIRN, free_port, wait_ready


def start(store, *args, env=None, tmp_path=None):
    port = free_port()
    proc = subprocess.Popen([*CAIRN, "--store", str(store), "ui", "--port", str(port), *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 60, proc)
    except Exception:
        stop(proc)
        raise
    return proc, url


def stop(proc) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=5)
    return out.decode(errors="replace")


def test_cairn_ui_serves_the_local_store_and_opens_a_browser(tmp_path, client):
    client.create_experiment("from-cli")
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    proc, url = start(client.uri, env={"BROWSER": str(browser)})
    try:
        assert '<main id="app">' in httpx.get(url + "/runs/anything", timeout=60).text
        names = [e["name"] for e in httpx.get(url + "/api/v1/experiments", timeout=60).json()["experiments"]]
        assert "from-cli" in names
        deadline = time.monotonic() + 10
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text().strip() == url
    finally:
        out = stop(proc)
    assert f"Cairn UI on {client.uri}: {url}" in out


def test_no_browser_opens_none(tmp_path, client):
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    proc, url = start(client.uri, "--no-browser", env={"BROWSER": str(browser)})
    try:
        assert httpx.get(url + "/", timeout=60).status_code == 200
        time.sleep(0.5)
    finally:
        stop(proc)
    assert not opened.exists()


def test_a_server_address_is_refused_with_a_hint():
    r = subprocess.run([*CAIRN, "--store", "http://example.invalid:5000", "ui", "--no-browser"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "open the server's address in a browser" in r.stderr


def test_without_the_server_packages_cairn_ui_and_server_say_what_to_install(tmp_path):
    """The core install lacks FastAPI and uvicorn (the `server` extra): an ImportError's
    traceback would leave a new user guessing. (sys.modules[name] = None is how Python
    marks a module as not importable.)"""
    import sys

    for command in ("ui", "server"):
        code = ("import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"
                "from cairn.cli.main import main; sys.argv = ['cairn', '--store', sys.argv[1], "
                f"'{command}', '--port', '1']; main()")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert "pip install 'cairn[server]'" in out.stderr and "Traceback" not in out.stderr, \
            out.stderr
