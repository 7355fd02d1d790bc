"""sensor_state.revision: bumped by every writer other than the owning consumer (operator feedback)

The consumer checks it in its batch transaction: a state changed under it makes the batch stale, so it
re-reads the state and replays from the stored offsets instead of overwriting the change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sensor_state') as batch:
        batch.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sensor_state') as batch:
        batch.drop_column('revision')
