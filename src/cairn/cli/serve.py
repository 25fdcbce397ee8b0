"""`cairn serve`: a registered model behind an HTTP endpoint (MLflow's scoring protocol)."""

from __future__ import annotations

import secrets
import socket
import sys

import click

from .main import emit_json, handle_errors, json_option


def _require_uvicorn() -> None:
    from importlib.util import find_spec

    from ..errors import MissingDependency

    missing = [m for m in ("uvicorn", "pandas", "pyarrow", "prometheus_client")
               if find_spec(m) is None]
    if missing:
        raise MissingDependency(f"cairn serve needs {', '.join(missing)}: "
                                "pip install 'cairn[serve]'")


@click.command()
@click.argument("ref")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (each loads the model and follows the aliases).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 256),
              help="Threads per worker that parse, check and predict (a model that holds "
                   "Python's GIL gains nothing from more; one that releases it may).")
@click.option("--poll", default=0.5, show_default=True, type=click.FloatRange(0, 86_400),
              callback=lambda ctx, param, value: _number(param, value),
              help="Seconds between checks of where the alias points (0: do not follow).")
@click.option("--canary", metavar="REF=SHARE",
              help="Send a share of traffic to a second reference of the same model, "
                   "e.g. models:/fraud@challenger=10%.")
@click.option("--standby", metavar="REF",
              help="Keep a reference (e.g. @green) loaded and warm for blue-green; it "
                   "answers only requests sent with 'Cairn-Arm: standby'.")
@click.option("--max-batch", default=0, show_default=True, type=click.IntRange(0, 65536),
              help="Gather concurrent requests into one predict of up to this many rows "
                   "(0: no micro-batching).")
@click.option("--max-wait-ms", default=2.0, show_default=True,
              type=click.FloatRange(0, 10_000),
              callback=lambda ctx, param, value: _number(param, value),
              help="Longest a request waits for its micro-batch to fill.")
@click.option("--log-sample", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              callback=lambda ctx, param, value: _number(param, value),
              help="Share of requests written to the prediction log (0: no log).")
@click.option("--log-exclude", default="", metavar="COL,...",
              help="Input fields never written to the prediction log.")
@click.option("--log-flush", default=30.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(0.05, 86_400),
              callback=lambda ctx, param, value: _number(param, value),
              help="Longest a logged request (or a label sent to /v1/feedback) waits to be "
                   "written to the store.")
@click.option("--no-feedback", is_flag=True,
              help="No POST /v1/feedback (ground-truth labels for live quality).")
@click.option("--no-metrics", is_flag=True, help="No Prometheus metrics at /metrics.")
@click.option("--no-record", is_flag=True,
              help="Do not record the deployment's start, switches and stop in the "
                   "registry's history.")
@click.option("--max-body", default="32MiB", show_default=True,
              help="Largest request body; larger ones get 413 (bytes, or KiB/MiB/GiB).")
@click.option("--allow-nan", is_flag=True,
              help="Pass null, NaN and infinities in float inputs to the model instead of "
                   "refusing them.")
@click.option("--no-fast-path", is_flag=True,
              help="Call every model's own predict; by default a stock scikit-learn forest "
                   "is predicted without joblib's per-tree overhead, checked identical at "
                   "load.")
@json_option
@click.pass_obj
@handle_errors
def serve(obj, ref: str, host: str, port: int, workers: int, threads: int, poll: float, canary: str | None,
          standby: str | None, max_batch: int, max_wait_ms: float, log_sample: float,
          log_exclude: str, log_flush: float, no_feedback: bool, no_metrics: bool,
          no_record: bool, max_body: str, allow_nan: bool, no_fast_path: bool, as_json: bool) -> None:
    """Serve a registered model over HTTP: MLflow's /invocations, /ping, /health, /version,
    and Cairn's /v1/predict, /v1/feedback, /v1/status and /metrics.

    REF is models:/NAME@ALIAS (a stage or alias: followed, the new version loaded and
    switched to when it moves) or models:/NAME/VERSION (fixed). Every request is written
    to the prediction log (see `cairn predictions`) unless --log-sample 0.

    \b
    Examples:
      cairn serve models:/fraud@production --port 8080
      cairn serve models:/fraud@production --canary models:/fraud@challenger=10%
      cairn serve models:/fraud@blue --standby @green --workers 2 --max-batch 64
      cairn serve models:/fraud/1.2.0 --store ./.cairn --max-body 1MiB --json
      curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\
           -d '{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2]]}}'
    """
    _require_uvicorn()
    limit = _size(max_body)
    from ..serving.assemble import ServeOptions
    from ..serving.predlog import parse_exclude

    obj.must_exist = True  # a mistyped --store must not create an empty store
    options = ServeOptions(
        ref, uri=obj.client.uri, poll=poll, max_body=limit, allow_nan=allow_nan,
        canary=canary, standby=standby, max_batch=max_batch, max_wait_ms=max_wait_ms,
        log_sample=log_sample, log_exclude=list(parse_exclude(log_exclude)),
        metrics=not no_metrics, record=not no_record,
        deployment_id=f"{socket.gethostname()}:{port}", log_salt=secrets.token_hex(16),
        threads=threads, fast_path=not no_fast_path, log_flush=log_flush,
        feedback=not no_feedback)
    if workers > 1:
        _serve_workers(obj, options, host, port, workers, as_json)
        return
    from ..serving import run
    from ..serving.assemble import build

    deployment = build(options, obj.client)
    _announce(deployment, options, host, port, as_json, workers)
    run(deployment, host=host, port=port, log_level="warning")


def _announce(deployment, options, host: str, port: int, as_json: bool, workers: int) -> None:
    router = deployment.router
    arms = {name: {"ref": a["ref"], "version": a["version"], "share": a["share"],
                   "fast_path": a["fast_path"]}
            for name, a in router.status().items()}
    mv = deployment.holder.current.version
    alias = options.ref.rpartition("@")[2] if deployment.follower else None
    url = f"http://{host}:{port}"
    if as_json:  # one document when the model is loaded, for scripts that start the server
        emit_json({"name": mv.name, "version": mv.version, "flavor": mv.flavor, "url": url,
                   "following": alias, "max_body": options.max_body, "arms": arms,
                   "workers": workers, "max_batch": options.max_batch,
                   "log_sample": options.log_sample, "deployment": options.deployment_id})
        sys.stdout.flush()
    else:
        following = f", following @{alias}" if alias else ""
        others = "".join(f"; {name} {a['ref']} ({a['version']})" for name, a in arms.items()
                         if name != "primary")
        fast = ", fast path" if arms["primary"]["fast_path"] else ""
        click.echo(f"serving {mv.uri} ({mv.flavor}{fast}{following}{others}) on {url}  "
                   "(Ctrl+C to stop)", err=True)


def _serve_workers(obj, options, host: str, port: int, workers: int, as_json: bool) -> None:
    """Check everything loads here, then let uvicorn start the workers (each builds the
    same deployment from the options); this process records the start and the stop."""
    import dataclasses
    import os
    import tempfile

    import uvicorn

    from ..serving.assemble import ENV, build
    from ..serving.metrics import multiprocess_dir
    from ..serving.server import Recorder

    # Load and check here first: a bad reference or damaged files fail before any worker.
    check = dataclasses.replace(options, metrics=False, log_sample=0.0, record=False, poll=0.0)
    deployment = build(check, obj.client)
    _announce(deployment, options, host, port, as_json, workers)
    router = deployment.router
    recorder = None
    if options.record:
        from ..services import registry_for

        recorder = Recorder(registry_for(obj.client), options.deployment_id or "")
        for arm in router.arms.values():
            recorder.record(arm.name, arm.holder.current.version, "start", None,
                            f"cairn serve started serving {arm.ref} ({arm.name}) "
                            f"with {workers} workers")
    arms = {name: (arm.ref, arm.holder.current.version) for name, arm in router.arms.items()}
    del deployment, router  # the workers hold their own copies
    saved = {k: os.environ.get(k) for k in (ENV, "PROMETHEUS_MULTIPROC_DIR")}
    with tempfile.TemporaryDirectory(prefix="cairn-serve-") as scratch:
        options.claim_dir = os.path.join(scratch, "claims")
        os.mkdir(options.claim_dir)
        if options.metrics:
            multiprocess_dir(os.path.join(scratch, "metrics"))  # sets PROMETHEUS_MULTIPROC_DIR
        os.environ[ENV] = options.to_env()
        try:
            uvicorn.run("cairn.serving.assemble:worker_app", factory=True, host=host,
                        port=port, workers=workers, log_level="warning", lifespan="on")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if recorder is not None:
                reg = recorder.reg
                for name, (ref, started) in arms.items():
                    mv = started
                    if options.poll > 0:  # followed: the workers serve where it points now
                        try:
                            mv = reg.resolve(ref)
                        except Exception:  # noqa: BLE001 (the alias went away: as started)
                            mv = started
                    recorder.record(name, mv, "stop", None, "cairn serve stopped")


def _number(param, value: float) -> float:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if value != value:
        raise click.BadParameter("not a number", param=param)
    return value


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
