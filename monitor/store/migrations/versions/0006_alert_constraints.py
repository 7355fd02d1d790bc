"""alerts: status and severity constrained to their values; top_channels as jsonb on PostgreSQL

SQL over alerts can rely on the values (`status IN ('open', 'acknowledged', 'resolved')`, `severity IN ('minor',
'major', 'critical')`, the rules of monitor/core/incidents.py) and query the channels with jsonb operators
(`top_channels ? 'pressure'`). SQLite keeps JSON text; its check constraints come with a table rebuild
(batch mode).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = "status IN ('open', 'acknowledged', 'resolved')"
SEVERITY = "severity IN ('minor', 'major', 'critical')"


def upgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.create_check_constraint('ck_alerts_status', STATUS)
        batch.create_check_constraint('ck_alerts_severity', SEVERITY)
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('alerts', 'top_channels', type_=postgresql.JSONB(), existing_type=sa.JSON(),
                        postgresql_using='top_channels::jsonb')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('alerts', 'top_channels', type_=sa.JSON(), existing_type=postgresql.JSONB(),
                        postgresql_using='top_channels::json')
    with op.batch_alter_table('alerts') as batch:
        batch.drop_constraint('ck_alerts_severity', type_='check')
        batch.drop_constraint('ck_alerts_status', type_='check')
