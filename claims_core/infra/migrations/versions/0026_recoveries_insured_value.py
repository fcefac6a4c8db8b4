"""recoveries insured value (reserved; fill in or leave empty)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 07:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
