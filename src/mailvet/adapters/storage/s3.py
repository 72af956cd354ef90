"""ObjectStorage on S3 (AWS, MinIO, Ceph, moto...) through the `minio` client.

Behaves like LocalStorage and MemoryStorage: the same key rules (`check_key`), ObjectNotFound
for a missing key, `delete_prefix` with plain S3 prefix semantics (`a/b` also matches `a/bc`).

The minio client is synchronous: each call runs in a worker thread (`asyncio.to_thread`).
When S3 cannot be reached (connection refused or reset, timeouts, 5xx, throttling) an
operation is retried through the storage's RetryPolicy (adapters/retry.py: exponential
backoff for up to its `retry_for` seconds; the process's one policy, from build_deps), then
StorageUnavailable is raised. The client's own
urllib3 retries are off so that this backoff is the only one. Answers that retrying cannot
change (NoSuchKey, NoSuchBucket, AccessDenied, bad requests) are not retried.

Beyond the port: pre-signed GET links (PresignedStorage) and pre-signed POST forms with
`stat` (PresignedUpload), signed locally for `public_endpoint`, the address browsers use.

Limits: `move` is a server-side copy then a delete (S3 has no rename): if it fails between
the two, both keys exist until it is retried, never neither. minio switches the copy to a
multipart UploadPartCopy (compose) by itself for sources over 5 GiB.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import os
import secrets
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import certifi
import structlog
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteError, DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name

from mailvet.adapters.retry import RetriesExhausted, RetryPolicy
from mailvet.adapters.storage.key_check import check_key
from mailvet.domain.ports import ObjectNotFound, StoredObject, UploadForm

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_PRESIGN_EXPIRY = timedelta(days=7)  # the SigV4 limit
META = "x-amz-meta-"  # user metadata: the form field, and the header a stat answers with
CHUNK = 1024 * 1024

# S3 error codes worth retrying even when the HTTP status is not 5xx (e.g. 400 RequestTimeout).
_TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
)


class StorageUnavailable(Exception):
    """S3 kept being unreachable (or failing with server errors) for the policy's time."""

    def __init__(self, op: str, endpoint: str, attempts: int, elapsed: float, error: str):
        self.op = op
        self.endpoint = endpoint
        self.attempts = attempts
        self.elapsed = elapsed
        super().__init__(
            f"S3 at {endpoint} unavailable: {op} failed {attempts} time(s) over "
            f"{elapsed:.1f} s; last error: {error}"
        )


class DeletePrefixError(Exception):
    """S3 refused to delete some of the objects under a prefix."""

    def __init__(self, prefix: str, errors: list[DeleteError]):
        self.prefix = prefix
        self.errors = [(e.name, e.code, e.message) for e in errors]
        self.transient = any(e.code in _TRANSIENT_CODES for e in errors)
        shown = ", ".join(f"{name} ({code})" for name, code, _ in self.errors[:5])
        more = f" and {len(self.errors) - 5} more" if len(self.errors) > 5 else ""
        super().__init__(f"could not delete under {prefix!r}: {shown}{more}")


class S3Storage:
    """ObjectStorage in one S3 bucket, created on first use if it is missing."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        retry: RetryPolicy | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        public_endpoint: str = "",
        ca_file: str = "",
    ) -> None:
        """`endpoint` is `host:port` or `http(s)://host:port` (`https` means secure).

        `public_endpoint`, in the same forms, is the address browsers reach S3 at when it
        differs from ours (e.g. `minio:9000` inside compose): download links name it.
        `retry` (default: `RetryPolicy()`) says how an operation is tried again while S3
        is unreachable; `ca_file` is the CA bundle for
        TLS (default: certifi's)."""
        self.endpoint, self.secure = _split_endpoint(endpoint, secure)
        check_bucket_name(bucket, strict=True)
        self.retry = retry or RetryPolicy()
        self.bucket = bucket
        self.region = region
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            # no retries in urllib3: our backoff (with logging and a deadline) is in charge;
            # redirect=False hands 3xx answers to minio, which reports them as S3 errors
            retries=urllib3.Retry(total=0, redirect=False),
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file or certifi.where(),
        )
        self.client = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=self.secure,
            region=region,  # also spares minio a GetBucketLocation call
            http_client=self._http,
        )
        self._bucket_ready = False
        self._signer = self.client
        host, public_secure = self.endpoint, self.secure
        if public_endpoint:  # signing is local: this client never sends a request
            host, public_secure = _split_endpoint(public_endpoint, self.secure)
            self._signer = Minio(
                host,
                access_key=access_key,
                secret_key=secret_key,
                secure=public_secure,
                region=region,
                http_client=self._http,
            )
        # where browsers post uploads (path style: the bucket in the path, as minio signs)
        self.public_url = f"{'https' if public_secure else 'http'}://{host}"

    def close(self) -> None:
        """Close pooled connections (the storage stays usable: they reopen on demand)."""
        self._http.clear()

    # --- ObjectStorage -------------------------------------------------------------------

    async def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        source = str(path)
        await self._ready()
        # fput_object uploads big files in parts (multipart) and aborts the upload on error
        await self._run("put_file", lambda: self.client.fput_object(self.bucket, key, source), key)

    async def get_file(self, key: str, path: Path) -> None:
        """Download to `path` through a temporary file beside it: no half-written file."""
        check_key(key)
        target = Path(path)
        await self._ready()
        await self._run("get_file", lambda: self._get_file(key, target), key)

    async def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        data = bytes(data)
        await self._ready()

        def put() -> None:  # a fresh stream for each attempt
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))

        await self._run("put_bytes", put, key)

    async def get_bytes(self, key: str) -> bytes:
        check_key(key)
        await self._ready()
        return await self._run("get_bytes", lambda: self._get_bytes(key), key)

    async def move(self, src: str, dst: str) -> None:
        check_key(src)
        check_key(dst)
        await self._ready()
        if src == dst:  # S3 refuses to copy an object onto itself
            if not await self.exists(src):
                raise ObjectNotFound(src)
            return
        # each step is retried on its own (both are idempotent): if the delete's answer is
        # lost, only the delete is sent again, not a copy of a source that is gone
        await self._run("move", lambda: self._copy(src, dst), src)
        await self._run("move", lambda: self.client.remove_object(self.bucket, src), src)

    async def exists(self, key: str) -> bool:
        check_key(key)
        await self._ready()
        return await self._run("exists", lambda: self._exists(key), key)

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` (`a/b` also matches `a/bc`)."""
        check_key(prefix, prefix=True)
        await self._ready()
        await self._run("delete_prefix", lambda: self._delete_prefix(prefix), prefix)

    # --- more than the port --------------------------------------------------------------

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (done by the first operation anyway)."""
        await self._run("ensure_bucket", self._ensure_bucket)
        self._bucket_ready = True

    def presigned_get(self, key: str, expires: timedelta = timedelta(seconds=60)) -> str:
        """A pre-signed GET link to `key`, valid for `expires` (1 s to 7 days).

        Computed locally (no request; the object's existence is not checked). Anyone holding
        the link can download the object until it expires: keep it short.
        """
        check_key(key)
        if not isinstance(expires, timedelta):
            raise TypeError("expires must be a timedelta")
        if not timedelta(seconds=1) <= expires <= MAX_PRESIGN_EXPIRY:
            raise ValueError(f"presigned link expiry must be 1 s to 7 days, not {expires}")
        return self._signer.presigned_get_object(self.bucket, key, expires=expires)

    def presigned_post(
        self,
        key: str,
        *,
        max_bytes: int,
        redirect: str,
        expires: timedelta,
        metadata: Sequence[str] = (),
    ) -> UploadForm:
        """A browser form (S3 POST Object) that stores one file of 1..`max_bytes` bytes at
        `key` and then sends the browser to `redirect` (303, S3 appending `bucket`, `key`
        and `etag` to its query), signed for `expires` (1 s to 7 days) on the public
        endpoint. Each `metadata` name is a field `x-amz-meta-<name>` sent empty, which the
        page may fill with anything (`starts-with ""`). Computed locally (no request).

        The policy holds the key exactly and the size range; the redirect is a
        `starts-with` of the whole URL, as minio's PostPolicy refuses an `eq` condition on
        it: only text after the URL could pass, which the app's own signed query ignores.
        S3 enforces the policy, S3 look-alikes may not (moto does not): the app checks the
        stored object itself (`stat`)."""
        check_key(key)
        if not isinstance(expires, timedelta):
            raise TypeError("expires must be a timedelta")
        if not timedelta(seconds=1) <= expires <= MAX_PRESIGN_EXPIRY:
            raise ValueError(f"presigned upload expiry must be 1 s to 7 days, not {expires}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        if not redirect.startswith(("http://", "https://")):
            raise ValueError(f"the redirect must be an absolute http(s) URL: {redirect!r}")
        names = [_meta_name(name) for name in metadata]
        # minio's PostPolicy writes its expiration as naive UTC
        policy = PostPolicy(self.bucket, (datetime.now(UTC) + expires).replace(tzinfo=None))
        policy.add_equals_condition("key", key)
        policy.add_starts_with_condition("success_action_redirect", redirect)
        policy.add_content_length_range_condition(1, max_bytes)
        for name in names:
            policy.add_starts_with_condition(META + name, "")
        signed = self._signer.presigned_post_policy(policy)
        # the form's fields in S3's order: what the policy names, then its signature; the
        # file goes last (S3 ignores any field after it)
        fields = [("key", key), ("success_action_redirect", redirect)]
        fields += [(META + name, "") for name in names]
        fields += list(signed.items())
        return UploadForm(
            url=f"{self.public_url}/{self.bucket}",
            fields=tuple(fields),
            metadata={name: META + name for name in names},
        )

    async def stat(self, key: str) -> StoredObject:
        """The object's size and user metadata (`x-amz-meta-<name>` as `<name>`, names in
        lower case); ObjectNotFound if there is none."""
        check_key(key)
        await self._ready()
        return await self._run("stat", lambda: self._stat(key), key)

    # --- retries -------------------------------------------------------------------------

    async def _ready(self) -> None:
        if not self._bucket_ready:
            await self.ensure_bucket()

    async def _run(self, op: str, call: Callable[[], T], key: str = "") -> T:
        """Run `call` in a thread; retry it with backoff while S3 is unreachable."""

        async def attempt() -> T:
            try:
                return await asyncio.to_thread(call)
            except S3Error as exc:
                if exc.code == "NoSuchBucket":
                    self._bucket_ready = False  # deleted behind our back: recreate next time
                raise

        def warn(attempt: int, exc: BaseException, pause: float) -> None:
            log.warning(
                "s3_retry",
                op=op,
                attempt=attempt,
                error=describe(exc),
                key=key,
                retry_in=round(pause, 3),
            )

        try:
            return await self.retry.run(attempt, transient=is_transient, on_retry=warn)
        except RetriesExhausted as exc:
            raise StorageUnavailable(
                op, self.endpoint, exc.attempts, exc.elapsed, describe(exc.error)
            ) from exc.error

    # --- blocking calls, run in threads --------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:
            # another process won the race (or an earlier attempt's answer was lost)
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            if not self.client.bucket_exists(self.bucket):
                raise

    def _get_bytes(self, key: str) -> bytes:
        with _not_found_as(key):
            response = self.client.get_object(self.bucket, key)
        try:
            return response.read()  # urllib3 raises if the body is cut short
        finally:
            response.close()
            response.release_conn()

    def _get_file(self, key: str, target: Path) -> None:
        with _not_found_as(key):
            response = self.client.get_object(self.bucket, key)
        try:
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
            try:
                # like LocalStorage: a missing destination folder is FileNotFoundError
                with open(tmp, "xb") as out:
                    out.writelines(response.stream(CHUNK))
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        finally:
            response.close()
            response.release_conn()

    def _copy(self, src: str, dst: str) -> None:
        with _not_found_as(src):
            # minio stats the source first and uses UploadPartCopy beyond 5 GiB
            self.client.copy_object(self.bucket, dst, CopySource(self.bucket, src))

    def _exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return False
            raise
        return True

    def _stat(self, key: str) -> StoredObject:
        with _not_found_as(key):
            found = self.client.stat_object(self.bucket, key)
        metadata = {
            name.lower().removeprefix(META): str(value)
            for name, value in (found.metadata or {}).items()
            if name.lower().startswith(META)
        }
        return StoredObject(size=int(found.size or 0), metadata=metadata)

    def _delete_prefix(self, prefix: str) -> None:
        listing = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        doomed = (DeleteObject(str(obj.object_name)) for obj in listing)
        # remove_objects is lazy: nothing is deleted until its error iterator is consumed
        errors = list(self.client.remove_objects(self.bucket, doomed))
        if errors:
            raise DeletePrefixError(prefix, errors)


def _meta_name(name: str) -> str:
    """A user metadata name as S3 keeps it (lower case; letters, digits, `-`, `_`)."""
    cleaned = name.strip().lower()
    if not cleaned or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in cleaned):
        raise ValueError(f"not a metadata name: {name!r}")
    return cleaned


@contextmanager
def _not_found_as(key: str) -> Iterator[None]:
    """Turn minio's NoSuchKey into ObjectNotFound(key)."""
    try:
        yield
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            raise ObjectNotFound(key) from None
        raise


def is_transient(exc: BaseException) -> bool:
    """True if retrying later may succeed: S3 unreachable, overloaded or failing inside."""
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else 0
        return exc.code in _TRANSIENT_CODES or status == 429 or (status >= 500 and status != 501)
    if isinstance(exc, ServerError):
        return exc.status_code == 429 or exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):  # non-XML answer, e.g. a proxy's 502 page
        status = getattr(exc, "_code", 0)
        return isinstance(status, int) and (status == 429 or status >= 500)
    if isinstance(exc, DeletePrefixError):
        return exc.transient
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        return False  # a malformed endpoint
    if isinstance(
        exc,
        urllib3.exceptions.HTTPError | ConnectionError | TimeoutError | http.client.HTTPException,
    ):
        # MaxRetryError, NewConnectionError, ProtocolError (reset), Read/ConnectTimeoutError...
        # but a certificate that does not verify will not start verifying
        return not any(isinstance(e, ssl.SSLCertVerificationError) for e in _causes(exc))
    return False


def describe(exc: BaseException) -> str:
    """A short one-line account of an error (for logs; never any object data)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # the URL and "Max retries exceeded" add nothing
    if isinstance(exc, S3Error):
        text = f"{exc.code}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])


def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """`host:port` for minio, and whether to use TLS."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        if not endpoint or "/" in endpoint:
            raise ValueError(f"S3 endpoint must be host:port or http(s)://host:port: {endpoint!r}")
        return endpoint, secure
    url = urlsplit(endpoint)
    scheme = url.scheme.lower()
    if (
        scheme not in ("http", "https")
        or not url.hostname
        or url.path.strip("/")
        or url.query
        or url.fragment
        or url.username is not None
    ):
        raise ValueError(f"S3 endpoint URL must be http(s)://host[:port]: {endpoint!r}")
    if scheme == "http" and secure:
        raise ValueError(f"S3 endpoint {endpoint!r} is http:// but secure=True")
    return url.netloc, scheme == "https"
