"""alert_evidence: each alert's windows as the engine decided them (score, threshold, contributions)

The alert page plots these values instead of re-scoring the windows, so it shows exactly what fired
(``monitor.core.evidence``). Alerts created before this revision have no rows: the page says so and re-scores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_evidence',
    sa.Column('sensor_id', sa.String(length=200), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('record_offset', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('contributions', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('sensor_id', 'opened_at', 'window_end')
    )


def downgrade() -> None:
    op.drop_table('alert_evidence')
