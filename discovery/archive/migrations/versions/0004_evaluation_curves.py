"""evaluations.curves: each run's training curves over steps, for the per-evaluation view.

`{"step": [...], "loss": [...], "rewards/margins": [...], "kl/ref": [...]}`, at most 200 points
per curve, JSON null where a value was not finite (evaluator.results.training_curves). Rows stored
before this revision read as {}: their curves were not kept. The leaderboard never reads it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("curves", _JSON, nullable=True, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("curves")
