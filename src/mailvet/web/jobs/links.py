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


def _sign(secret_key: str, context: bytes, *parts: str) -> str:
    key = hmac.new(secret_key.encode(), context, hashlib.sha256).digest()
    return hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def _valid(wanted: str, sig: str, expires: int, now: datetime) -> bool:
    if expires < now.timestamp():
        return False
    return hmac.compare_digest(wanted.encode(), sig.encode())


def signature(secret_key: str, *, account_id: str, job_id: str, segment: str, expires: int) -> str:
    return _sign(secret_key, _DOWNLOAD, account_id, job_id, segment, str(expires))


def download_url(
    secret_key: str, *, account_id: str, job_id: str, segment: str, now: datetime, seconds: int
) -> str:
    expires = int(now.timestamp()) + seconds
    sig = signature(
        secret_key, account_id=account_id, job_id=job_id, segment=segment, expires=expires
    )
    query = urlencode({"expires": expires, "sig": sig})
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
    wanted = signature(
        secret_key, account_id=account_id, job_id=job_id, segment=segment, expires=expires
    )
    return _valid(wanted, sig, expires, now)


def upload_signature(
    secret_key: str, *, account_id: str, draft_id: str, key: str, expires: int
) -> str:
    return _sign(secret_key, _UPLOADED, account_id, draft_id, key, str(expires))


def uploaded_path(
    secret_key: str, *, account_id: str, draft_id: str, key: str, now: datetime, seconds: int
) -> str:
    """The callback's path and query (the caller puts its origin in front)."""
    expires = int(now.timestamp()) + seconds
    sig = upload_signature(
        secret_key, account_id=account_id, draft_id=draft_id, key=key, expires=expires
    )
    query = urlencode({"expires": expires, "sig": sig})
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
) -> Literal["valid", "expired", "forged"]:
    """Whether the callback was signed for this account, draft and key ("forged" if not),
    and whether it is still in time. An expired one is still known to be the account's: its
    object may be deleted."""
    wanted = upload_signature(
        secret_key, account_id=account_id, draft_id=draft_id, key=key, expires=expires
    )
    if not hmac.compare_digest(wanted.encode(), sig.encode()):
        return "forged"
    return "valid" if _valid(wanted, sig, expires, now) else "expired"
