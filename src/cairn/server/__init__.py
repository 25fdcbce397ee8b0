"""The Cairn tracking server: ``create_app(store, objects, settings)`` (FastAPI).

Needs the ``server`` extra (``pip install 'cairn[server]'``).  ``cairn server`` runs it
with uvicorn; see ``docs/server.md``.
"""

from .app import create_app
from .config import ServerSettings

__all__ = ["ServerSettings", "create_app"]
