"""campaigns.lease_*: the one engine that owns a campaign, and its heartbeat.

An engine takes the lease with a conditional UPDATE (free, expired, or its dead owner's) and
renews `lease_heartbeat` every few seconds; a lease whose heartbeat is older than the TTL is
expired, and its campaign shows as interrupted. `lease_owner` is the fencing token: every write
of an engine checks it in the same transaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("lease_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("lease_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lease_heartbeat", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for column in ("lease_heartbeat", "lease_since", "lease_pid", "lease_host", "lease_owner"):
            batch_op.drop_column(column)
