"""reference_windows, shadow mode, retrain_runs: the retraining gate's reference set, a shadow model per name,
a report of every retraining run

``reference_windows``: windows of operator-confirmed alerts; a candidate model must still detect every confirmed
true positive the active model detects and raise no more confirmed false positives (monitor/training/reference.py).
``model_pointers.shadow_version``: a version the consumers score alongside the active one without alerting;
``shadow_reports``: each consumer's count of where the shadow's decisions differ (monitor/registry/shadow.py).
``retrain_runs``: one row per retraining run, whatever its outcome (monitor/training/retrain.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('reference_windows',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('sensor_id', sa.String(length=200), nullable=False),
    sa.Column('alert_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alert_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('window_len', sa.Integer(), nullable=False),
    sa.Column('starts', sa.JSON(), nullable=False),
    sa.Column('ends', sa.JSON(), nullable=False),
    sa.Column('values', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'alert_id')
    )
    op.add_column('model_pointers', sa.Column('shadow_version', sa.String(length=64), nullable=True))
    op.create_table('shadow_reports',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('active_version', sa.String(length=64), nullable=False),
    sa.Column('windows', sa.BigInteger(), nullable=False),
    sa.Column('both', sa.BigInteger(), nullable=False),
    sa.Column('only_active', sa.BigInteger(), nullable=False),
    sa.Column('only_shadow', sa.BigInteger(), nullable=False),
    sa.Column('opened_active', sa.BigInteger(), nullable=False),
    sa.Column('opened_shadow', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'version', 'consumer')
    )
    op.create_table('retrain_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('triggered_by', sa.String(length=200), nullable=False),
    sa.Column('trigger_reason', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_retrain_runs_name_started', 'retrain_runs', ['name', 'started_at'])


def downgrade() -> None:
    op.drop_index('ix_retrain_runs_name_started', table_name='retrain_runs')
    op.drop_table('retrain_runs')
    op.drop_table('shadow_reports')
    with op.batch_alter_table('model_pointers') as batch:
        batch.drop_column('shadow_version')
    op.drop_table('reference_windows')
