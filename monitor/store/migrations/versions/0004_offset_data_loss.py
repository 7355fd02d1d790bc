"""consumer_offsets.lost_records / lost_at: records that expired from the log before they were read

When a stored offset is below its partition's log start (retention deleted records the consumer never read),
the consumer moves the offset to the log start in a fenced update that adds the gap to ``lost_records`` and
sets ``lost_at``: data loss is recorded where the operator looks for progress, never skipped silently.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('consumer_offsets') as batch:
        batch.add_column(sa.Column('lost_records', sa.BigInteger(), server_default='0', nullable=False))
        batch.add_column(sa.Column('lost_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consumer_offsets') as batch:
        batch.drop_column('lost_at')
        batch.drop_column('lost_records')
