"""recoveries: carrier and insurer claims, their events and money

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 04:55:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
