"""order sync (reserved; fill in or leave empty)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 07:20:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
