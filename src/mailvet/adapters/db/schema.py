"""Every table of the application on one MetaData: the job tables (models.py) and the SaaS's
(account_models, api_key_models, billing_models, ledger_models, outbox_models, session_models,
webhook_models). The migrations' env.py, `Database.create_all` and the schema tests import
this module, so no table is left out."""

from __future__ import annotations

from mailvet.adapters.db import (  # noqa: F401  (imported for their tables)
    account_models,
    api_key_models,
    billing_models,
    ledger_models,
    outbox_models,
    session_models,
    webhook_models,
)
from mailvet.adapters.db.models import metadata

__all__ = ["metadata"]
