"""Explicit schema migrations with Alembic (``cairn db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from .engine import current_revision, make_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(url: str, revision: str = "head") -> str:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # No sqlalchemy.url: the migrations run on the connection passed in, and alembic's
    # config would read a '%' of the URL (an escaped password, a search_path option) as
    # interpolation and fail.
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            return current_revision(conn) or ""
    finally:
        engine.dispose()
