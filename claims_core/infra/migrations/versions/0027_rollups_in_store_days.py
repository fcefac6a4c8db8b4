"""rollups in store days: every roll-up ``day`` becomes the store's local day (it was the UTC
day). No table changes: ``migrate.upgrade`` rebuilds the roll-ups from the rows right after
(``ROLLUPS_REBUILT_AFTER``), with the day of each moment in the store's time zone
(``infra/rollups.day_of``). A downgrade leaves the local days in place (a rebuild at that
revision counted UTC days: ``python -m claims_core rollups --rebuild`` there).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 07:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # the rebuild runs after the whole upgrade, on the schema at its head (``migrate.upgrade``)


def downgrade() -> None:
    pass
