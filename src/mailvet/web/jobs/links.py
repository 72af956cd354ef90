"""Short-lived download links of the app: `/app/jobs/<id>/file/<segment>?expires=&sig=`.

The signature is an HMAC-SHA256, under a key derived from MAILVET_SECRET_KEY, of the job
id, the segment, the account and the expiry time, so a link works for its account only,
for that file only, and until it expires (MAILVET_STORAGE_LINK_SECONDS, as the storage's
own pre-signed links). The download handler also requires the signed-in owner: a link
copied elsewhere is useless, one that leaked from the owner's browser history is dead soon.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlencode

_CONTEXT = b"mailvet download link v1"


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), _CONTEXT, hashlib.sha256).digest()


def signature(secret_key: str, *, account_id: str, job_id: str, segment: str, expires: int) -> str:
    message = f"{account_id}\n{job_id}\n{segment}\n{expires}".encode()
    return hmac.new(_key(secret_key), message, hashlib.sha256).hexdigest()


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
    if expires < now.timestamp():
        return False
    wanted = signature(
        secret_key, account_id=account_id, job_id=job_id, segment=segment, expires=expires
    )
    return hmac.compare_digest(wanted, sig)
