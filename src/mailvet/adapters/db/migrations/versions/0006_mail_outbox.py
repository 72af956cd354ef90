"""mail_outbox: outgoing mail kept until delivered

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:00:00

Plain SQLAlchemy types only (see 0001); defaults are Python-side in the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("given_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
        sa.UniqueConstraint("key", name="uq_mail_outbox_key"),
    )
    op.create_index(
        "ix_mail_outbox_next_attempt_at", "mail_outbox", ["next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
