"""billing: the account's Stripe side, tiers, packs, Stripe events, billing mail keys; the
last top-up on the balance row (the low-credits mail)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STRIPE_ID = 255


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=f"fk_{table}_account_id_accounts",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "billing_accounts",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=STRIPE_ID), nullable=True),
        sa.Column("subscription_id", sa.String(length=STRIPE_ID), nullable=True),
        sa.Column("tier", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("cancel_at", sa.BigInteger(), nullable=True),
        sa.Column("current_period_end", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _account_fk("billing_accounts"),
        sa.PrimaryKeyConstraint("account_id", name="pk_billing_accounts"),
        sa.UniqueConstraint("customer", name="uq_billing_accounts_customer"),
    )
    op.create_table(
        "billing_tiers",
        sa.Column("price", sa.String(length=STRIPE_ID), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("monthly_credits", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("product", sa.String(length=STRIPE_ID), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("price", name="pk_billing_tiers"),
    )
    op.create_table(
        "billing_packs",
        sa.Column("session", sa.String(length=STRIPE_ID), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("payment_intent", sa.String(length=STRIPE_ID), nullable=True),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _account_fk("billing_packs"),
        sa.PrimaryKeyConstraint("session", name="pk_billing_packs"),
        sa.UniqueConstraint("payment_intent", name="uq_billing_packs_payment_intent"),
    )
    op.create_index("ix_billing_packs_account_id", "billing_packs", ["account_id"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=STRIPE_ID), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stripe_events"),
    )
    op.create_index("ix_stripe_events_account_id", "stripe_events", ["account_id"])
    op.create_table(
        "billing_mail_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _account_fk("billing_mail_keys"),
        sa.PrimaryKeyConstraint("key", name="pk_billing_mail_keys"),
    )
    op.create_index("ix_billing_mail_keys_account_id", "billing_mail_keys", ["account_id"])
    with op.batch_alter_table("credit_balances") as batch:
        for column in ("last_topup", "last_topup_seq", "low_warned_seq"):
            batch.add_column(sa.Column(column, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("credit_balances") as batch:
        for column in ("low_warned_seq", "last_topup_seq", "last_topup"):
            batch.drop_column(column)
    op.drop_index("ix_billing_mail_keys_account_id", table_name="billing_mail_keys")
    op.drop_table("billing_mail_keys")
    op.drop_index("ix_stripe_events_account_id", table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index("ix_billing_packs_account_id", table_name="billing_packs")
    op.drop_table("billing_packs")
    op.drop_table("billing_tiers")
    op.drop_table("billing_accounts")
