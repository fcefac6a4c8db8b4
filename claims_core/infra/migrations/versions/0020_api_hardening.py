"""API hardening: hashed idempotency keys, a rate limit every instance shares

- ``api_idempotency.idem_key`` (the header as sent, up to 200 characters) becomes ``key_hash``,
  the SHA-256 (hex) of the whole header value; existing rows are hashed in place.
- Claims filed through the API kept ``api:<key id>:<header>`` cut to 128 characters as their
  idempotency key, so two long headers sharing a prefix met on one claim; they now keep
  ``api:<key id>:<SHA-256 of the header>``, and existing API claims are rewritten the same way.
- ``api_rate_counters``: requests per key and fixed window, so every instance counts alike.

Downgrade keeps the hashes (a hash can't be turned back into the header).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 04:20:00
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    idem = sa.table('api_idempotency', sa.column('id', sa.Integer()),
                    sa.column('idem_key', sa.String()))
    for row_id, key in bind.execute(sa.select(idem.c.id, idem.c.idem_key)).all():
        bind.execute(idem.update().where(idem.c.id == row_id).values(idem_key=_sha256(key)))
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.drop_constraint('uq_api_idempotency_key', type_='unique')
        batch_op.alter_column('idem_key', new_column_name='key_hash',
                              existing_type=sa.String(length=200), type_=sa.String(length=64),
                              existing_nullable=False)
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_api_idempotency_key', ['api_key_id', 'key_hash'])

    claims = sa.table('claims', sa.column('id', sa.Integer()),
                      sa.column('idempotency_key', sa.String()))
    rows = bind.execute(sa.select(claims.c.id, claims.c.idempotency_key)
                        .where(claims.c.idempotency_key.like('api:%'))).all()
    for row_id, key in rows:
        parts = key.split(':', 2)  # before 0020 every one holds the header itself
        if len(parts) < 3:
            continue
        _api, key_id, header = parts
        bind.execute(claims.update().where(claims.c.id == row_id)
                     .values(idempotency_key=f'api:{key_id}:{_sha256(header)}'))

    op.create_table('api_rate_counters',
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_api_rate_counters_api_key_id_api_keys')),
    sa.PrimaryKeyConstraint('api_key_id', 'window_start', name=op.f('pk_api_rate_counters'))
    )


def downgrade() -> None:
    op.drop_table('api_rate_counters')
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.drop_constraint('uq_api_idempotency_key', type_='unique')
        batch_op.alter_column('key_hash', new_column_name='idem_key',
                              existing_type=sa.String(length=64), type_=sa.String(length=200),
                              existing_nullable=False)
    with op.batch_alter_table('api_idempotency', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_api_idempotency_key', ['api_key_id', 'idem_key'])
