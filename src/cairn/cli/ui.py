"""`cairn ui`: the web UI on the local store, with no server set-up."""

from __future__ import annotations

import click

from .main import handle_errors, require_server_packages
from .server import checked_tls, tls_options


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@tls_options
@click.pass_obj
@handle_errors
def ui(obj, host: str, port: int, no_browser: bool, tls_cert: str | None, tls_key: str | None,
       tls_key_password_file: str | None) -> None:
    """Open the web UI on the local store (./.cairn, --store or CAIRN_TRACKING_URI).

    It is `cairn server` with the local defaults (no auth), plus a browser tab. For a
    team, run `cairn server` instead: it serves the same UI.

    \b
    Examples:
      cairn ui
      cairn --store ./experiments/.cairn ui --port 8080 --no-browser
      cairn ui --tls-cert server.pem --tls-key server.key
    """
    from ..errors import InvalidArgument
    require_server_packages("cairn ui")  # before cairn.server, which imports FastAPI
    from ..server.serve import ServeConfig, prepare, run

    uri = obj.uri or ".cairn"
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidArgument(f"cairn ui opens a local store directory, not {uri}; "
                              "open the server's address in a browser instead")
    tls = checked_tls(tls_cert, tls_key, tls_key_password_file)
    cfg = ServeConfig(store=uri.removeprefix("file://"), settings={"auth": False})
    prepare(cfg)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{'https' if tls else 'http'}://{shown}:{port}"
    click.echo(f"Cairn UI on {uri}: {url}  (Ctrl+C to stop)", err=True)
    if not no_browser:
        _open_when_ready(url)
    run(cfg, host=host, port=port, log_level="warning", tls=tls)


def _open_when_ready(url: str) -> None:
    """Open a browser tab once the server answers (from a thread: run() blocks)."""
    import ssl
    import threading
    import time
    import urllib.request
    import webbrowser

    # Only asks whether the server this process starts is up yet; the browser checks
    # its certificate (a self-signed one would never pass a probe that checked it).
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE

    def wait_and_open() -> None:
        for _ in range(200):
            try:
                with urllib.request.urlopen(url + "/ready", timeout=1, context=probe):
                    break
            except OSError:
                time.sleep(0.05)
        webbrowser.open(url)

    threading.Thread(target=wait_and_open, daemon=True).start()
