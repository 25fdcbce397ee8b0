"""`cairn serve`: a registered model behind an HTTP endpoint (MLflow's scoring protocol)."""

from __future__ import annotations

import sys

import click

from .main import emit_json, handle_errors, json_option


def _require_uvicorn() -> None:
    from importlib.util import find_spec

    from ..errors import MissingDependency

    missing = [m for m in ("uvicorn", "pandas") if find_spec(m) is None]
    if missing:
        raise MissingDependency(f"cairn serve needs {', '.join(missing)}: "
                                "pip install 'cairn[serve]'")


@click.command()
@click.argument("ref")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--poll", default=2.0, show_default=True, type=float,
              help="Seconds between checks of where the alias points (0: do not follow).")
@click.option("--max-body", default="32MiB", show_default=True,
              help="Largest request body; larger ones get 413 (bytes, or KiB/MiB/GiB).")
@click.option("--allow-nan", is_flag=True,
              help="Pass null/NaN in float inputs to the model instead of refusing them.")
@json_option
@click.pass_obj
@handle_errors
def serve(obj, ref: str, host: str, port: int, poll: float, max_body: str,
          allow_nan: bool, as_json: bool) -> None:
    """Serve a registered model over HTTP: MLflow's /invocations, /ping, /health, /version,
    and Cairn's /v1/predict.

    REF is models:/NAME@ALIAS (a stage or alias: followed, the new version loaded and
    switched to when it moves) or models:/NAME/VERSION (fixed).

    \b
    Examples:
      cairn serve models:/fraud@production --port 8080
      cairn serve models:/fraud/1.2.0 --store ./.cairn --max-body 1MiB --json
      curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\
           -d '{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2]]}}'
    """
    _require_uvicorn()
    limit = _size(max_body)
    from ..services import registry_for
    from ..serving import deploy, run

    obj.must_exist = True  # a mistyped --store must not create an empty store
    reg = registry_for(obj.client)
    deployment = deploy(reg, ref, poll=poll, max_body=limit, allow_nan=allow_nan,
                        follow=poll > 0)
    mv = deployment.holder.current.version
    alias = ref.rpartition("@")[2] if deployment.follower else None
    url = f"http://{host}:{port}"
    if as_json:  # one document when the model is loaded, for scripts that start the server
        emit_json({"name": mv.name, "version": mv.version, "flavor": mv.flavor, "url": url,
                   "following": alias, "max_body": limit})
        sys.stdout.flush()
    else:
        following = f", following @{alias}" if alias else ""
        click.echo(f"serving {mv.uri} ({mv.flavor}{following}) on {url}  (Ctrl+C to stop)",
                   err=True)
    run(deployment, host=host, port=port, log_level="warning")


def _size(text: str) -> int:
    from ..errors import InvalidArgument

    units = {"gib": 1 << 30, "mib": 1 << 20, "kib": 1 << 10, "gb": 10**9, "mb": 10**6,
             "kb": 10**3, "b": 1, "": 1}
    low = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if low.endswith(unit):
            number = low[: len(low) - len(unit)].strip()
            try:
                value = int(float(number) * units[unit])
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise InvalidArgument(f"--max-body {text!r}: give a positive size such as 1048576, 512KiB "
                          "or 32MiB")
