"""Model serving: a registered model behind MLflow's scoring protocol, following an alias.

::

    from cairn.serving import deploy, run

    d = deploy(registry, "models:/fraud@production", poll=2)
    run(d, port=8080)          # or mount d.app in any ASGI server

Modules, one job each: :mod:`~cairn.serving.inputs` parses request bodies,
:mod:`~cairn.serving.validate` fits them to the model's signature,
:mod:`~cairn.serving.holder` loads, warms and switches versions,
:mod:`~cairn.serving.routing` picks an arm (primary, canary, standby),
:mod:`~cairn.serving.app` is the ASGI app, :mod:`~cairn.serving.server` wires them to
uvicorn.  Nothing in Cairn imports this package but the ``cairn serve`` command.
"""

from .app import ScoringApp
from .errors import RequestError
from .holder import AliasFollower, ModelHolder, Served, load_version
from .routing import Arm, Router
from .server import Deployment, deploy, run

__all__ = ["AliasFollower", "Arm", "Deployment", "ModelHolder", "RequestError", "Router",
           "ScoringApp", "Served", "deploy", "load_version", "run"]
