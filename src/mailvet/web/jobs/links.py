"""Short-lived signed links of the app.

- Downloads: `/app/jobs/<id>/file/<segment>?expires=&sig=`. The signature is an
  HMAC-SHA256, under a key derived from MAILVET_SECRET_KEY, of the job id, the segment,
  the account and the expiry time, so a link works for its account only, for that file
  only, and until it expires (MAILVET_STORAGE_LINK_SECONDS, as the storage's own
  pre-signed links). The download handler also requires the signed-in owner: a link
  copied elsewhere is useless, one that leaked from the owner's browser history is dead
  soon.
- Direct uploads: `/app/jobs/new/<draft>/uploaded?expires=&sig=`, where S3 sends the
  browser after a pre-signed POST (web/jobs/pages.py). Signed the same way, under a key of
  its own, over the account, the draft id, the object key the upload was signed for and
  the expiry: the callback registers that draft for that account only, once the object at
  that key is checked.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

_DOWNLOAD = b"mailvet download link v1"
_UPLOADED = b"mailvet upload callback v1"


Check = Literal["valid", "expired", "forged"]


def _sign(secret_key: str, context: bytes, *parts: str) -> str:
    key = hmac.new(secret_key.encode(), context, hashlib.sha256).digest()
    return hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def _signed_query(
    secret_key: str, context: bytes, parts: tuple[str, ...], now: datetime, seconds: int
) -> str:
    """`expires=&sig=` of a link for `parts` that works for `seconds` from `now`."""
    expires = int(now.timestamp()) + seconds
    sig = _sign(secret_key, context, *parts, str(expires))
    return urlencode({"expires": expires, "sig": sig})


def _check(
    secret_key: str, context: bytes, parts: tuple[str, ...], expires: int, sig: str, now: datetime
) -> Check:
    """ "forged" unless `sig` signs `parts` and `expires`; else whether it is still in time."""
    wanted = _sign(secret_key, context, *parts, str(expires))
    if not hmac.compare_digest(wanted.encode(), sig.encode()):
        return "forged"
    return "expired" if expires < now.timestamp() else "valid"


def download_url(
    secret_key: str, *, account_id: str, job_id: str, segment: str, now: datetime, seconds: int
) -> str:
    query = _signed_query(secret_key, _DOWNLOAD, (account_id, job_id, segment), now, seconds)
    return f"/app/jobs/{job_id}/file/{segment}?{query}"


def link_valid(
    secret_key: str,
    *,
    account_id: str,
    job_id: str,
    segment: str,
    expires: int,
    sig: str,
    now: datetime,
) -> bool:
    """The signature is right and the link has not expired."""
    parts = (account_id, job_id, segment)
    return _check(secret_key, _DOWNLOAD, parts, expires, sig, now) == "valid"


def uploaded_path(
    secret_key: str, *, account_id: str, draft_id: str, key: str, now: datetime, seconds: int
) -> str:
    """The callback's path and query (the caller puts its origin in front)."""
    query = _signed_query(secret_key, _UPLOADED, (account_id, draft_id, key), now, seconds)
    return f"/app/jobs/new/{draft_id}/uploaded?{query}"


def upload_link(
    secret_key: str,
    *,
    account_id: str,
    draft_id: str,
    key: str,
    expires: int,
    sig: str,
    now: datetime,
) -> Check:
    """Whether the callback was signed for this account, draft and key ("forged" if not),
    and whether it is still in time. An expired one is still known to be the account's: its
    object may be deleted."""
    return _check(secret_key, _UPLOADED, (account_id, draft_id, key), expires, sig, now)
