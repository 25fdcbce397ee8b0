"""Putting it together: load the version a reference names, follow it, run uvicorn."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import NotFound
from .app import DEFAULT_MAX_BODY, ScoringApp
from .holder import AliasFollower, ModelHolder, is_alias_ref, load_version

log = logging.getLogger("cairn.serving")


@dataclass
class Deployment:
    """A loaded model behind an app; ``follower`` is set when the reference can move."""

    ref: str
    holder: ModelHolder
    app: ScoringApp
    follower: AliasFollower | None

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()


def deploy(reg: Any, ref: str, *, poll: float = 2.0, max_body: int = DEFAULT_MAX_BODY,
           allow_nan: bool = False, follow: bool = True) -> Deployment:
    """Load ``ref`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) from ``reg`` and build
    the app; an alias or stage is followed every ``poll`` seconds once started (``poll``
    0: not followed).

    Raises :class:`~cairn.errors.NotFound` for a reference that points nowhere and
    :class:`~cairn.errors.CorruptObject` for files that fail their digest check."""
    text = ref.removeprefix("models:/")
    try:
        mv = reg.resolve(text)
    except NotFound as exc:
        raise NotFound(f"nothing to serve: {exc.message}", **exc.details) from None
    holder = ModelHolder(load_version(reg, mv))
    # poll <= 0 means "do not follow": no follower, so no thread that could spin.
    follower = AliasFollower(reg, text, holder, poll) \
        if follow and poll > 0 and is_alias_ref(text) else None
    app = ScoringApp(holder, max_body=max_body, allow_nan=allow_nan)
    return Deployment(text, holder, app, follower)


def run(deployment: Deployment, *, host: str = "127.0.0.1", port: int = 8080,
        log_level: str = "info") -> None:
    """Serve until interrupted (uvicorn), following the alias meanwhile."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    if deployment.follower is not None:
        deployment.follower.start()
    try:
        uvicorn.run(deployment.app, host=host, port=port, log_level=log_level, lifespan="on")
    finally:
        deployment.close()
