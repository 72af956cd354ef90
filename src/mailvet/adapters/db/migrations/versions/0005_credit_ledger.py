"""credit_ledger: the append-only credit ledger, each account's balance row, the single
checks charged and not settled yet, the jobs' cost, counts and chosen header row, and the
jobs(owner, created_at) index (for ix_jobs_owner)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=1024), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("account_id", "seq", name="uq_ledger_entries_account_id"),
        sa.UniqueConstraint("key", name="uq_ledger_entries_key"),
    )
    op.create_index("ix_ledger_entries_job_id", "ledger_entries", ["job_id"], unique=False)
    op.create_table(
        "credit_balances",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_credit_balances"),
    )
    op.create_table(
        "pending_checks",
        sa.Column("check_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("check_id", name="pk_pending_checks"),
    )
    op.create_index("ix_pending_checks_created_at", "pending_checks", ["created_at"], unique=False)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cost", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("counts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("header_row", sa.Integer(), nullable=True))
        # the dashboard's page query (owner = ?, newest first); it also serves owner = ? alone
        batch.drop_index("ix_jobs_owner")
        batch.create_index("ix_jobs_owner_created_at", ["owner", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_owner_created_at")
        batch.create_index("ix_jobs_owner", ["owner"], unique=False)
        batch.drop_column("header_row")
        batch.drop_column("counts")
        batch.drop_column("cost")
    op.drop_index("ix_pending_checks_created_at", table_name="pending_checks")
    op.drop_table("pending_checks")
    op.drop_table("credit_balances")
    op.drop_index("ix_ledger_entries_job_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
