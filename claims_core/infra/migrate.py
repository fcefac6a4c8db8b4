"""Create or upgrade the schema with Alembic (``python -m claims_core init``)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


# Revisions after which the analytics roll-ups are recomputed from the rows (``infra/rollups.py``;
# otherwise every transaction keeps them): 0013 made them, 0015 changed how amounts are counted,
# 0025 added the recoveries, 0027 counts every day as the store's local day (it was the UTC day).
ROLLUPS_REBUILT_AFTER = ("0013", "0015", "0025", "0027")


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    before = current_revision(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    after = current_revision(engine) or ""
    if before is not None and any(before < r <= after for r in ROLLUPS_REBUILT_AFTER):
        from . import rollups  # noqa: PLC0415 - the models (and so the hooks) only when needed
        rollups.rebuild(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
