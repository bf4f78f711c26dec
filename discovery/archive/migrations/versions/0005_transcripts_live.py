"""llm_calls.messages/reply/prompt_hash and campaigns.live: transcripts and an engine's live state.

Each LLM call keeps what was sent (`messages`, as JSON: role and content, never a key), the reply's
text (NULL for a failed request) and `prompt_hash`, the hash a candidate's provenance names, so a
candidate's transcript is one indexed lookup within its campaign. `campaigns.live` holds what the
campaign's engine is doing (phase, queue depth, jobs in flight), written with its lease heartbeat.
Rows stored before this revision keep NULL in all of them: their transcripts were not kept.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


# Plain ALTER TABLE, never batch mode: a batch rebuild of `campaigns` on SQLite drops the old
# table, and with foreign keys on that deletes every candidate, evaluation, call and event of it.
# SQLite has had ADD and DROP COLUMN since 3.35.


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("messages", _JSON, nullable=True))
    op.add_column("llm_calls", sa.Column("reply", sa.Text(), nullable=True))
    op.add_column("llm_calls", sa.Column("prompt_hash", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_llm_calls_campaign_prompt_hash", "llm_calls", ["campaign_id", "prompt_hash"]
    )
    op.add_column("campaigns", sa.Column("live", _JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("campaigns", "live")
    op.drop_index("ix_llm_calls_campaign_prompt_hash", table_name="llm_calls")
    for column in ("prompt_hash", "reply", "messages"):
        op.drop_column("llm_calls", column)
